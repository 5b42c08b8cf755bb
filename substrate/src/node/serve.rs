//! Serving one `/halley/space/1` stream.
//!
//! The reading loop decodes request frames and starts one task per request,
//! keyed by its id, so a blocked take never holds up the requests behind it.
//! Answers go through a bounded queue to one writer task, which encodes
//! whatever is queued into one buffer and writes it at once.
//!
//! A bad frame (malformed, or a length over the limit) is logged with the
//! peer's id and ends this stream only. When the stream ends for any reason,
//! every waiting take, read and subscription is cancelled, and tuples that
//! were taken but could not be written back to the client are put back in
//! the space: a vanished client never swallows a tuple.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{Me, Served};
use crate::space::{Space, SpaceError, Subscription};
use crate::tuple::Tuple;
use crate::wire::{self, Message, PeerStatus, Request, Response, Status};

/// Requests one stream may have running at once; more are refused.
const MAX_IN_FLIGHT: usize = 4096;
/// Answers queued for the writer.
const QUEUE: usize = 256;
/// Answers the writer encodes into one write.
const BATCH: usize = 64;

/// One answer for the writer; `taken` when its tuples left the space, so
/// they go back if they cannot be delivered.
#[derive(Debug)]
struct Outgoing {
    id: u64,
    response: Response,
    taken: bool,
}

/// Serves `stream` from `peer` until it ends or sends a bad frame.
pub(super) async fn serve<S: Served>(peer: PeerId, stream: Stream, space: S, me: Arc<Me>) {
    let (reader, writer) = stream.split();
    let (queue, answers) = mpsc::channel(QUEUE);
    let (stop, stopped) = oneshot::channel();
    let writer = tokio::spawn(write(writer, answers, stopped, space.clone()).in_current_span());
    let mut frames = wire::frames(reader);
    let mut running = JoinSet::new();
    let mut cancels: HashMap<u64, oneshot::Sender<()>> = HashMap::new();
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "closing a stream that sent a bad frame");
                    break;
                }
                Some(Ok(Message::Request { id, request: Request::Cancel })) => {
                    cancels.remove(&id);
                }
                Some(Ok(Message::Request { id, request })) => {
                    let refusal = if cancels.contains_key(&id) {
                        Some("a request with this id is still running")
                    } else if cancels.len() >= MAX_IN_FLIGHT {
                        Some("too many requests in flight on this stream")
                    } else {
                        None
                    };
                    if let Some(refusal) = refusal {
                        let answer = Outgoing { id, response: Response::refused(refusal), taken: false };
                        if queue.send(answer).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    let (cancel, cancelled) = oneshot::channel();
                    cancels.insert(id, cancel);
                    let task = run(id, request, space.clone(), me.clone(), queue.clone(), cancelled);
                    running.spawn(task.in_current_span());
                }
                Some(Ok(Message::Response { id, .. })) => {
                    tracing::warn!(%peer, id, "closing a stream that sent a response to a node");
                    break;
                }
                Some(Ok(Message::Peer(_))) => {
                    tracing::warn!(%peer, "closing a client stream that sent a peer message");
                    break;
                }
            },
            Some(done) = running.join_next(), if !running.is_empty() => match done {
                Ok(id) => {
                    cancels.remove(&id);
                }
                Err(e) => tracing::error!(%peer, error = %e, "a request's task failed"),
            },
        }
    }
    // Cancel what waits, let the writer put back what it cannot deliver,
    // then let every task finish (their answers fail fast: the queue closes).
    drop(cancels);
    drop(stop);
    drop(queue);
    while running.join_next().await.is_some() {}
    if let Err(e) = writer.await {
        tracing::error!(%peer, error = %e, "a stream's writer failed");
    }
    tracing::debug!(%peer, "stream closed");
}

/// Runs one request to its end and queues its answer(s); returns its id.
async fn run<S: Served>(
    id: u64,
    request: Request,
    space: S,
    me: Arc<Me>,
    queue: mpsc::Sender<Outgoing>,
    mut cancelled: oneshot::Receiver<()>,
) -> u64 {
    let answer = |response| Outgoing {
        id,
        response,
        taken: false,
    };
    let response = match request {
        Request::Out { tuples, ttl } => match space.out_all(tuples, ttl).await {
            Ok(()) => Response::Ack,
            Err(e) => Response::error(&e),
        },
        Request::Take {
            template,
            max,
            timeout,
        } => {
            let max = usize::try_from(max).unwrap_or(usize::MAX).max(1);
            tokio::select! {
                taken = space.take_up_to(template, max, timeout) => match taken {
                    Ok(tuples) => return send_tuples(id, tuples, true, &space, &queue).await,
                    Err(e) => Response::error(&e),
                },
                _ = &mut cancelled => return id,
            }
        }
        Request::Read { template, timeout } => tokio::select! {
            read = space.read(template, timeout) => match read {
                Ok(tuple) => Response::Tuples(tuple.into_iter().collect()),
                Err(e) => Response::error(&e),
            },
            _ = &mut cancelled => return id,
        },
        Request::Scan { template, limit } => {
            let limit = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
            match space.scan(template, limit).await {
                Ok(tuples) => return send_tuples(id, tuples, false, &space, &queue).await,
                Err(e) => Response::error(&e),
            }
        }
        Request::Subscribe { template } => match space.subscribe(template).await {
            Ok(subscription) => {
                notify(id, subscription, &queue, cancelled).await;
                return id;
            }
            Err(e) => Response::error(&e),
        },
        Request::Status => match space.status().await {
            Some(status) => Response::Status(status),
            None => single_status(&space, &me),
        },
        // Handled by the reading loop; nothing to run.
        Request::Cancel => return id,
    };
    // A failed send means the stream is gone: nothing left to tell.
    let _ = queue.send(answer(response)).await;
    id
}

/// Queues `tuples` as `More` chunks and a final `Tuples`; taken tuples that
/// cannot be queued go back to the space.
async fn send_tuples<S: Space>(
    id: u64,
    tuples: Vec<Tuple>,
    taken: bool,
    space: &S,
    queue: &mpsc::Sender<Outgoing>,
) -> u64 {
    let mut chunks = wire::chunks(tuples).into_iter().peekable();
    while let Some(chunk) = chunks.next() {
        let response = if chunks.peek().is_some() {
            Response::More(chunk)
        } else {
            Response::Tuples(chunk)
        };
        let outgoing = Outgoing {
            id,
            response,
            taken,
        };
        if let Err(mpsc::error::SendError(lost)) = queue.send(outgoing).await {
            if taken {
                let mut back = tuples_of(lost.response);
                back.extend(chunks.flatten());
                put_back(space, back).await;
            }
            break;
        }
    }
    id
}

/// Forwards a subscription's tuples as `Notify` after an `Ack`, until the
/// request is cancelled or the stream is gone.
async fn notify<T: Subscription>(
    id: u64,
    mut subscription: T,
    queue: &mpsc::Sender<Outgoing>,
    mut cancelled: oneshot::Receiver<()>,
) {
    let answer = |response| Outgoing {
        id,
        response,
        taken: false,
    };
    if queue.send(answer(Response::Ack)).await.is_err() {
        return;
    }
    loop {
        let response = tokio::select! {
            next = subscription.next() => match next {
                Some(tuple) => Response::Notify(tuple),
                None => {
                    let gone = SpaceError::Unreachable("the space has closed".into());
                    let _ = queue.send(answer(Response::error(&gone))).await;
                    return;
                }
            },
            _ = &mut cancelled => return,
        };
        if queue.send(answer(response)).await.is_err() {
            return;
        }
    }
}

/// Writes queued answers until the queue closes or `stopped` fires; then
/// puts back the taken tuples it could not deliver.
async fn write<W, S>(
    mut stream: W,
    mut answers: mpsc::Receiver<Outgoing>,
    mut stopped: oneshot::Receiver<()>,
    space: S,
) where
    W: futures::AsyncWrite + Unpin,
    S: Space,
{
    let mut buf = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::select! {
            answer = answers.recv() => answer,
            _ = &mut stopped => None,
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < BATCH {
            match answers.try_recv() {
                Ok(answer) => batch.push(answer),
                Err(_) => break,
            }
        }
        buf.clear();
        for answer in &mut batch {
            encode(&mut buf, answer, &space).await;
        }
        let written = tokio::select! {
            written = async {
                stream.write_all(&buf).await?;
                stream.flush().await
            } => written.is_ok(),
            _ = &mut stopped => false,
        };
        if !written {
            break;
        }
        batch.clear();
        if buf.capacity() > wire::MAX_FRAME {
            buf = Vec::new();
        }
    }
    answers.close();
    while let Ok(answer) = answers.try_recv() {
        batch.push(answer);
    }
    let lost: Vec<Tuple> = batch
        .into_iter()
        .filter(|a| a.taken)
        .flat_map(|a| tuples_of(a.response))
        .collect();
    if !lost.is_empty() {
        tracing::debug!(count = lost.len(), "putting back undelivered tuples");
        put_back(&space, lost).await;
    }
}

/// Encodes `answer` into `buf`; an answer too large for a frame becomes a
/// refusal (and its taken tuples go back to the space).
async fn encode<S: Space>(buf: &mut Vec<u8>, answer: &mut Outgoing, space: &S) {
    let Err(e) = wire::encode_response(buf, answer.id, &answer.response) else {
        return;
    };
    tracing::warn!(id = answer.id, error = %e, "an answer does not fit in a frame");
    let refusal = Response::refused(format!("the answer does not fit in a frame: {e}"));
    let too_big = std::mem::replace(&mut answer.response, refusal);
    if std::mem::take(&mut answer.taken) {
        put_back(space, tuples_of(too_big)).await;
    }
    if let Err(e) = wire::encode_response(buf, answer.id, &answer.response) {
        tracing::error!(error = %e, "cannot encode a refusal");
    }
}

fn tuples_of(response: Response) -> Vec<Tuple> {
    match response {
        Response::Tuples(tuples) | Response::More(tuples) => tuples,
        _ => Vec::new(),
    }
}

async fn put_back<S: Space>(space: &S, tuples: Vec<Tuple>) {
    let count = tuples.len();
    if let Err(e) = space.out_all(tuples, None).await {
        tracing::error!(count, error = %e, "lost taken tuples that could not be delivered");
    }
}

/// The status of a node serving alone.
fn single_status<S: Served>(space: &S, me: &Me) -> Response {
    let tuples = space.tuple_count();
    Response::Status(Status {
        peers: vec![PeerStatus {
            id: me.id.clone(),
            addr: me.addr.clone(),
            tuples,
        }],
        tuples,
    })
}
