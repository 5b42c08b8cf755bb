//! Serving one `/halley/space/1` stream: a libp2p stream, or a connection
//! to the local door ([`super::local`]); both carry the same frames.
//!
//! One task per stream reads request frames and runs each request at once;
//! a request that has to wait (a blocked take, a subscription) joins the
//! set of waiting requests, keyed by its id, that the same task polls, so
//! it never holds up the requests behind it. Answers go through a bounded
//! queue; the stream's task encodes every answer that is ready into one
//! buffer and writes it at once.
//!
//! A bad frame (malformed, or a length over the limit) is logged as a
//! warning with the caller's name ([`Caller`]) and ends this stream only;
//! a stream that breaks (a reset, an end mid-frame) is logged at debug
//! level. When the stream ends for any reason, every waiting take, read
//! and subscription is cancelled, and tuples that were taken but could not
//! be written back to the client are put back in
//! the space: a vanished client never swallows a tuple.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::caller::Caller;
use super::gate::{Door, Verdict};
use super::metrics::Metrics;
use super::shares::{self, Shares};
use super::{Me, Served};
use crate::space::{Space, SpaceError, Step, Subscription, check_steps};
use crate::tuple::Tuple;
use crate::wire::{self, Message, PeerStatus, Request, Response, Status};

/// Requests one stream may have running at once; more are refused.
const MAX_IN_FLIGHT: usize = 4096;
/// Answers of waiting requests queued for the stream's task.
const QUEUE: usize = 256;

/// One answer to write; `taken` when its tuples left the space, so
/// they go back if they cannot be delivered.
#[derive(Debug)]
struct Outgoing {
    id: u64,
    response: Response,
    taken: bool,
}

/// What every served stream shares: the space and who serves it.
#[derive(Debug)]
pub(super) struct Serving<S> {
    pub space: S,
    pub me: Arc<Me>,
    pub spin: crate::spin::Spin,
    pub metrics: Arc<Metrics>,
    pub shares: Arc<Shares>,
}

impl<S: Clone> Clone for Serving<S> {
    fn clone(&self) -> Self {
        Serving {
            space: self.space.clone(),
            me: self.me.clone(),
            spin: self.spin.clone(),
            metrics: self.metrics.clone(),
            shares: self.shares.clone(),
        }
    }
}

/// Serves the stream of `reader` and `writer` from `peer` until it ends or
/// sends a bad frame.
pub(super) async fn serve<S: Served>(
    peer: Caller,
    reader: impl AsyncRead + Unpin,
    mut writer: impl AsyncWrite + Unpin,
    serving: Serving<S>,
) {
    let Serving {
        space,
        me,
        spin,
        metrics,
        shares,
    } = serving;
    metrics.stream_opened();
    let (queue, mut answers) = mpsc::channel(QUEUE);
    let mut frames = wire::frames(reader);
    let mut running = FuturesUnordered::new();
    let mut cancels: HashMap<u64, oneshot::Sender<()>> = HashMap::new();
    let mut outbox = Outbox::default();
    let mut door = Door::new(me.gate.as_ref());
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                None => break,
                Some(Err(e)) if e.is_bad_frame() => {
                    metrics.bad_frame();
                    tracing::warn!(%peer, error = %e, "closing a stream that sent a bad frame");
                    break;
                }
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "a stream broke");
                    break;
                }
                Some(Ok(Message::Request { id, request: Request::Cancel })) => {
                    metrics.request(&Request::Cancel);
                    cancels.remove(&id);
                }
                Some(Ok(Message::Request { id, request })) => {
                    metrics.request(&request);
                    // Refused or answered at once (the gateway's door
                    // first), the answer goes out with the flush below.
                    let place = shares::waits(&request).then(|| shares.take(peer));
                    let answer = match door.check(&peer, &request) {
                        Verdict::Answer(response) => Some(response),
                        Verdict::Run if cancels.contains_key(&id) => {
                            Some(Response::refused("a request with this id is still running"))
                        }
                        Verdict::Run if cancels.len() >= MAX_IN_FLIGHT => {
                            Some(Response::refused("too many requests in flight on this stream"))
                        }
                        Verdict::Run if matches!(place, Some(None)) => {
                            Some(Response::refused(shares::FULL))
                        }
                        Verdict::Run => None,
                    };
                    if let Some(response) = answer {
                        if matches!(response, Response::Error { .. }) {
                            metrics.refused();
                        }
                        outbox.push(Outgoing { id, response, taken: false }, &space).await;
                    } else {
                        // Most requests finish at once: run them here, and
                        // give a task of its own only to one that has to wait.
                        let (cancel, cancelled) = oneshot::channel();
                        let task = run(id, request, space.clone(), me.clone(), queue.clone(), cancelled);
                        // A waiting request holds its place in its client's
                        // share until it ends.
                        let mut task = Box::pin(async move { let _place = place; task.await });
                        if futures::poll!(task.as_mut()).is_pending() {
                            cancels.insert(id, cancel);
                            running.push(task);
                        }
                    }
                }
                Some(Ok(Message::Response { id, .. })) => {
                    tracing::warn!(%peer, id, "closing a stream that sent a response to a node");
                    break;
                }
                Some(Ok(Message::Peer(_) | Message::Link(_))) => {
                    tracing::warn!(%peer, "closing a client stream that sent a peer message");
                    break;
                }
            },
            Some(answer) = answers.recv() => {
                outbox.push(answer, &space).await;
            }
            Some(id) = running.next(), if !running.is_empty() => {
                cancels.remove(&id);
            }
        }
        // Whatever else is ready goes out in the same write.
        for _ in 0..QUEUE {
            let Ok(answer) = answers.try_recv() else {
                break;
            };
            outbox.push(answer, &space).await;
        }
        spin.kick();
        let delivered = outbox.taken.len();
        if let Err(e) = outbox.flush(&mut writer).await {
            tracing::debug!(%peer, error = %e, "cannot write to the stream");
            break;
        }
        metrics.taken(delivered);
    }
    // Cancel what waits; answers that can no longer be written give their
    // taken tuples back to the space (a task whose answer finds the queue
    // closed does the same).
    drop(cancels);
    answers.close();
    while let Ok(answer) = answers.try_recv() {
        outbox.keep(answer);
    }
    while running.next().await.is_some() {}
    outbox.put_back(&space).await;
    metrics.stream_closed();
    tracing::debug!(%peer, "stream closed");
}

/// Answers encoded and waiting for the next write, with the taken tuples
/// among them kept until the write succeeds.
#[derive(Debug, Default)]
struct Outbox {
    buf: Vec<u8>,
    taken: Vec<Tuple>,
}

impl Outbox {
    /// Encodes `answer`; one too large for a frame becomes a refusal (and
    /// its taken tuples go back to the space).
    async fn push<S: Space>(&mut self, mut answer: Outgoing, space: &S) {
        if let Err(e) = wire::encode_response(&mut self.buf, answer.id, &answer.response) {
            tracing::warn!(id = answer.id, error = %e, "an answer does not fit in a frame");
            let refusal = Response::refused(format!("the answer does not fit in a frame: {e}"));
            let too_big = std::mem::replace(&mut answer.response, refusal);
            if std::mem::take(&mut answer.taken) {
                put_back(space, Response::into_tuples(too_big)).await;
            }
            if let Err(e) = wire::encode_response(&mut self.buf, answer.id, &answer.response) {
                tracing::error!(error = %e, "cannot encode a refusal");
            }
        }
        self.keep(answer);
    }

    /// Keeps the tuples `answer` took until they are written.
    fn keep(&mut self, answer: Outgoing) {
        if answer.taken {
            self.taken.extend(Response::into_tuples(answer.response));
        }
    }

    /// Writes everything encoded so far.
    async fn flush<W: futures::AsyncWrite + Unpin>(
        &mut self,
        stream: &mut W,
    ) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        stream.write_all(&self.buf).await?;
        stream.flush().await?;
        self.buf.clear();
        self.taken.clear();
        if self.buf.capacity() > wire::MAX_FRAME {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Gives back to the space the taken tuples that were never written.
    async fn put_back<S: Space>(self, space: &S) {
        if !self.taken.is_empty() {
            tracing::debug!(count = self.taken.len(), "putting back undelivered tuples");
            put_back(space, self.taken).await;
        }
    }
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
            // Cancellation first: a tuple reserved for a cancelled take
            // is declined (so it stays in the space), never taken.
            tokio::select! {
                biased;
                _ = &mut cancelled => Response::Cancelled,
                taken = space.take_up_to(template, max, timeout) => match taken {
                    Ok(tuples) => return send_tuples(id, tuples, true, &space, &queue).await,
                    Err(e) => Response::error(&e),
                },
            }
        }
        Request::Read { template, timeout } => tokio::select! {
            biased;
            _ = &mut cancelled => Response::Cancelled,
            read = space.read(template, timeout) => match read {
                Ok(tuple) => Response::Tuples(tuple.into_iter().collect()),
                Err(e) => Response::error(&e),
            },
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
        Request::Steps(steps) => return run_steps(id, steps, &space, &queue, cancelled).await,
        Request::Members => Response::Members(space.members().await),
        Request::Status => match space.status().await {
            Some(status) => Response::Status(status),
            None => single_status(&space, &me),
        },
        // Handled by the reading loop and the door; nothing to run.
        Request::Cancel | Request::Present { .. } => return id,
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
                let mut back = Response::into_tuples(lost.response);
                back.extend(chunks.flatten());
                put_back(space, back).await;
            }
            break;
        }
    }
    id
}

/// Runs the steps of request `id` in order and queues their answers: the
/// last step's taken tuples as `More` chunks but the last, then one
/// `Steps`. A step that fails ends the run; only the last step may wait,
/// and only it is cancelled (the steps before it stand, and what they took
/// goes to the client with the answer, or back to the space).
async fn run_steps<S: Space>(
    id: u64,
    steps: Vec<Step>,
    space: &S,
    queue: &mpsc::Sender<Outgoing>,
    mut cancelled: oneshot::Receiver<()>,
) -> u64 {
    if let Err(e) = check_steps(&steps) {
        let refusal = Outgoing {
            id,
            response: Response::error(&e),
            taken: false,
        };
        let _ = queue.send(refusal).await;
        return id;
    }
    let last = steps.len() - 1;
    let mut answers = Vec::with_capacity(steps.len());
    let mut chunks = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        let answer = match step {
            Step::Out { tuples, ttl } => match space.out_all(tuples, ttl).await {
                Ok(()) => Response::Ack,
                Err(e) => Response::error(&e),
            },
            Step::Take {
                template,
                max,
                timeout,
            } => {
                let max = usize::try_from(max).unwrap_or(usize::MAX).max(1);
                let take = space.take_up_to(template, max, timeout);
                let taken = if i == last {
                    tokio::select! {
                        biased;
                        _ = &mut cancelled => None,
                        taken = take => Some(taken),
                    }
                } else {
                    Some(take.await)
                };
                match taken {
                    None => Response::Cancelled,
                    Some(Ok(tuples)) if i == last => {
                        chunks = wire::chunks(tuples);
                        Response::Tuples(chunks.pop().unwrap_or_default())
                    }
                    Some(Ok(tuples)) => Response::Tuples(tuples),
                    Some(Err(e)) => Response::error(&e),
                }
            }
        };
        let ends = !matches!(answer, Response::Ack | Response::Tuples(_));
        answers.push(answer);
        if ends {
            break;
        }
    }
    let mut outgoing = chunks
        .into_iter()
        .map(Response::More)
        .chain([Response::Steps(answers)])
        .map(|response| Outgoing {
            id,
            response,
            taken: true,
        });
    while let Some(next) = outgoing.next() {
        if let Err(mpsc::error::SendError(lost)) = queue.send(next).await {
            let mut back = lost.response.into_tuples();
            back.extend(outgoing.flat_map(|o| o.response.into_tuples()));
            put_back(space, back).await;
            break;
        }
    }
    id
}

/// Forwards a subscription's tuples as `Notify` after an `Ack`, until the
/// request is cancelled (then answers `Cancelled`) or the stream is gone.
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
            biased;
            _ = &mut cancelled => {
                let _ = queue.send(answer(Response::Cancelled)).await;
                return;
            }
            next = subscription.next() => match next {
                Some(tuple) => Response::Notify(tuple),
                None => {
                    let gone = SpaceError::Unreachable("the space has closed".into());
                    let _ = queue.send(answer(Response::error(&gone))).await;
                    return;
                }
            },
        };
        if queue.send(answer(response)).await.is_err() {
            return;
        }
    }
}

async fn put_back<S: Space>(space: &S, tuples: Vec<Tuple>) {
    let count = tuples.len();
    if let Err(e) = space.out_all(tuples, None).await {
        tracing::error!(count, error = %e, "lost taken tuples that could not be delivered");
    }
}

/// The status of a node serving alone; through the local door, also the
/// node's greeting (it names the node).
pub(super) fn single_status<S: Served>(space: &S, me: &Me) -> Response {
    let tuples = space.tuple_count();
    Response::Status(Status {
        peers: vec![PeerStatus {
            id: me.id.clone(),
            addr: me.addr.clone(),
            tuples,
            place: None,
        }],
        tuples,
    })
}
