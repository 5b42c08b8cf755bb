//! [`RemoteSpace`]: the [`Space`] of a remote node, reached over libp2p.
//!
//! A client runs its own small swarm with a throwaway identity, dials the
//! node's address (which names its peer id), opens one `/halley/space/1`
//! stream, checks with a `Status` probe that the node serves it (opening
//! another if the node dropped it, see [`open_served`]) and keeps it: every
//! request travels on it under its own id, so any number are in flight at
//! once. A caller registers in the pending table ([`pending`]) and waits on
//! a oneshot; the reader task
//! ([`connection::read`]) hands it the answer. Dropping a call before its
//! answer cancels the request on the node (what a take had taken by then
//! goes back to the space); dropping a subscription ends it.
//! When the connection is lost every waiting call fails with
//! [`SpaceError::Unreachable`], and so does every later one.
//!
//! A `/unix/<path>` address reaches the node's local door ([`local`])
//! instead: a Unix-domain socket, no swarm, the same frames, the same
//! reader, writer and pending table.

mod connection;
mod direct;
pub mod local;
mod pending;

pub use direct::{DirectSpace, MAX_DIRECT, REFRESH};
pub use local::{local_address, parse_address, socket_path};

use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::net::{self, DialFailure, NetError, PreSharedKey};
use crate::space::{Space, SpaceError, Step, Subscription, check_steps};
use crate::template::Template;
use crate::tuple::Tuple;
use crate::wire::{self, Message, Request, Response, RingMember, Status};

use pending::{Pending, Waiter};

/// Requests queued for the writer.
const QUEUE: usize = 256;
/// Tuples a subscriber may fall behind by before its subscription ends.
const FEED: usize = 4096;
/// Pause before opening another stream when the node dropped one unserved.
const REOPEN: Duration = Duration::from_millis(10);

/// Why a client could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the address {0} does not end in /p2p/<peer id>")]
    NoPeerId(Multiaddr),
    #[error(transparent)]
    Net(#[from] NetError),
    /// No connection: nobody there, or the handshake failed (a missing or
    /// different pre-shared key).
    #[error(transparent)]
    Reach(#[from] DialFailure),
    #[error("cannot dial {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    /// A direct client needs the ring's members' libp2p addresses; a
    /// local door has none to give.
    #[error(
        "{0} is a local door: a direct client needs a ring peer's libp2p address (use a plain client for the local door)"
    )]
    LocalDoor(Multiaddr),
    #[error("no answer from {addr} within {}", humanize(*.timeout))]
    Timeout { addr: Multiaddr, timeout: Duration },
}

fn humanize(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// A handle on a remote node's space. Cheap to clone; the connection closes
/// when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct RemoteSpace {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    peer: PeerId,
    pending: Arc<Pending>,
    requests: mpsc::Sender<(u64, Request)>,
    tasks: Vec<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RemoteSpace {
    /// Connects to the node at `addr` (ending in `/p2p/<peer id>`, or a
    /// local door's `/unix/<path>`: [`parse_address`]), giving up after
    /// `timeout`. For a node of a private overlay (one started
    /// with a pre-shared key), use [`RemoteSpace::connect_with`].
    pub async fn connect(addr: Multiaddr, timeout: Duration) -> Result<RemoteSpace, ConnectError> {
        RemoteSpace::connect_with(addr, timeout, None).await
    }

    /// Like [`RemoteSpace::connect`], holding the overlay's pre-shared key
    /// `secret` when it has one. A node with a different key, or none (or
    /// a client without the node's key), fails the handshake:
    /// [`ConnectError::Reach`] with [`DialFailure::Handshake`]. A local
    /// door needs no key (it serves its own user): `secret` is not used.
    pub async fn connect_with(
        addr: Multiaddr,
        timeout: Duration,
        secret: Option<PreSharedKey>,
    ) -> Result<RemoteSpace, ConnectError> {
        if let Some(path) = socket_path(&addr) {
            let (peer, reader, writer) = local::open(&addr, &path, timeout).await?;
            let span = tracing::debug_span!("client", peer = %peer, door = %path.display());
            return Ok(RemoteSpace::over(peer, reader, writer, Vec::new(), span));
        }
        let Some(Protocol::P2p(peer)) = addr.iter().last() else {
            return Err(ConnectError::NoPeerId(addr));
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut swarm = net::swarm(Keypair::generate_ed25519(), secret)?;
        let mut control = swarm.behaviour().stream.new_control();
        net::dial(&mut swarm, &addr, timeout).await?;
        let span = tracing::debug_span!("client", peer = %peer);
        let driver = tokio::spawn(connection::drive(swarm).instrument(span.clone()));
        let stream = loop {
            match tokio::time::timeout_at(deadline, open_served(&mut control, peer)).await {
                Ok(Ok(Some(stream))) => break stream,
                Ok(Ok(None)) => {
                    tracing::debug!(%peer, "the node dropped the stream unserved; opening another");
                    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + REOPEN))
                        .await;
                }
                Ok(Err(e)) => {
                    driver.abort();
                    let reason = e.to_string();
                    return Err(ConnectError::Dial { addr, reason });
                }
                Err(_) => {
                    driver.abort();
                    return Err(ConnectError::Timeout { addr, timeout });
                }
            }
        };
        let (reader, writer) = stream.split();
        let driver = vec![driver.abort_handle()];
        Ok(RemoteSpace::over(peer, reader, writer, driver, span))
    }

    /// The space of `peer` over a connection served by the node, with the
    /// tasks that keep the connection (a swarm's driver) in `tasks`.
    fn over(
        peer: PeerId,
        reader: impl AsyncRead + Unpin + Send + 'static,
        writer: impl AsyncWrite + Unpin + Send + 'static,
        mut tasks: Vec<AbortHandle>,
        span: tracing::Span,
    ) -> RemoteSpace {
        let pending = Arc::new(Pending::default());
        let (requests, queue) = mpsc::channel(QUEUE);
        let spin = crate::spin::Spin::start();
        let read = connection::read(reader, peer, pending.clone(), requests.clone());
        let write = connection::write(writer, queue, pending.clone(), spin);
        tasks.push(tokio::spawn(read.instrument(span.clone())).abort_handle());
        tasks.push(tokio::spawn(write.instrument(span)).abort_handle());
        RemoteSpace {
            inner: Arc::new(Inner {
                peer,
                pending,
                requests,
                tasks,
            }),
        }
    }

    /// The node's peer id.
    pub fn peer(&self) -> PeerId {
        self.inner.peer
    }

    /// Whether the connection still stands: false once it was lost (every
    /// call then fails with [`SpaceError::Unreachable`]).
    pub fn is_connected(&self) -> bool {
        !self.inner.pending.is_closed()
    }

    /// The space as the node sees it: its peers and what they hold.
    pub async fn status(&self) -> Result<Status, SpaceError> {
        match self.call(Request::Status, false).await? {
            Response::Status(status) => Ok(status),
            other => Err(unexpected(&other)),
        }
    }

    /// The ring's members as the node sees them, without counting anything
    /// (where [`RemoteSpace::status`] has every member count what it
    /// holds): empty from a node serving alone.
    pub async fn members(&self) -> Result<Vec<RingMember>, SpaceError> {
        match self.call(Request::Members, false).await? {
            Response::Members(members) => Ok(members),
            other => Err(unexpected(&other)),
        }
    }

    /// Presents a job's capability (its text form) to a gateway: from now
    /// on this client may do what it allows, and nothing else. A gateway
    /// that does not hold it (revoked, forged, malformed) refuses it.
    pub async fn present(&self, capability: &str) -> Result<(), SpaceError> {
        let request = Request::Present {
            capability: capability.to_owned(),
        };
        match self.call(request, false).await? {
            Response::Ack => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends `request` and waits for its final answer; errors come back as
    /// `Err`. `takes`: what it returns leaves the space, so goes back if the
    /// caller gives up.
    async fn call(&self, request: Request, takes: bool) -> Result<Response, SpaceError> {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter::Reply {
            reply,
            more: Vec::new(),
        };
        let mut call = self.start(waiter, request, takes).await?;
        let answer = call.answer.insert(answer);
        let response = answer.await.map_err(|_| self.lost())?;
        call.finish();
        match response {
            Response::Error { kind, message } => Err(kind.into_error(message)),
            other => Ok(other),
        }
    }

    /// Registers `waiter` under a fresh id and queues `request`.
    async fn start(
        &self,
        waiter: Waiter,
        request: Request,
        takes: bool,
    ) -> Result<Call, SpaceError> {
        let id = self.inner.pending.register(waiter)?;
        let mut call = Call {
            id,
            pending: self.inner.pending.clone(),
            requests: self.inner.requests.clone(),
            takes,
            live: true,
            sent: false,
            answer: None,
        };
        self.inner
            .requests
            .send((id, request))
            .await
            .map_err(|_| self.lost())?;
        call.sent = true;
        Ok(call)
    }

    fn lost(&self) -> SpaceError {
        SpaceError::Unreachable(format!("the connection to {} is gone", self.inner.peer))
    }
}

/// A request in flight; dropped before [`Call::finish`], its caller gives
/// up and the node is told to cancel it. What a take had taken by then goes
/// back to the space: chunks already in, an answer delivered but not yet
/// read from `answer`, or (through the reader) one still on its way.
#[derive(Debug)]
struct Call {
    id: u64,
    pending: Arc<Pending>,
    requests: mpsc::Sender<(u64, Request)>,
    takes: bool,
    live: bool,
    /// Whether the request was queued for the node at all.
    sent: bool,
    /// Where the final answer arrives, for a call with one.
    answer: Option<oneshot::Receiver<Response>>,
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        if !self.sent {
            self.pending.forget(self.id);
            return;
        }
        match self.pending.give_up(self.id, self.takes) {
            Some(partial) => {
                self.queue(self.id, Request::Cancel);
                self.put_back(partial);
            }
            // The answer came: if it is waiting unread, a take's tuples
            // in it go back.
            None if self.takes => {
                if let Some(Ok(answer)) = self.answer.as_mut().map(oneshot::Receiver::try_recv) {
                    self.put_back(answer.into_tuples());
                }
            }
            None => {}
        }
    }
}

impl Call {
    fn finish(mut self) {
        self.live = false;
    }

    /// Writes `tuples` back to the space (nobody waits for the ack).
    fn put_back(&self, tuples: Vec<Tuple>) {
        if tuples.is_empty() {
            return;
        }
        let nobody = Waiter::GaveUp {
            put_back: false,
            subscription: false,
        };
        match self.pending.register(nobody) {
            Ok(id) => self.queue(id, Request::Out { tuples, ttl: None }),
            Err(e) => {
                tracing::error!(count = tuples.len(), error = %e, "cannot put back the tuples of a take given up");
            }
        }
    }

    /// Queues `request`, from a task if the queue is full rather than not
    /// at all.
    fn queue(&self, id: u64, request: Request) {
        if let Err(mpsc::error::TrySendError::Full(queued)) = self.requests.try_send((id, request))
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let requests = self.requests.clone();
            runtime.spawn(async move { requests.send(queued).await });
        }
    }
}

fn unexpected(response: &Response) -> SpaceError {
    SpaceError::Refused(format!("unexpected answer from the node: {response:?}"))
}

fn tuples(response: Response) -> Result<Vec<Tuple>, SpaceError> {
    match response {
        Response::Tuples(tuples) => Ok(tuples),
        other => Err(unexpected(&other)),
    }
}

/// Opens a `/halley/space/1` stream to `peer` and checks that the node
/// serves it: `None` if it ends before answering a `Status` request.
///
/// libp2p-stream hands inbound streams to the node through a queue of one
/// and drops (closes) a stream that arrives while another waits to be
/// accepted, so clients connecting at the same moment can get a stream that
/// nobody serves. Its first request would fail as "connection closed"; so
/// `connect` only returns a stream the node has answered on. The probe uses
/// id 0, which the pending table never hands out.
async fn open_served(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
) -> Result<Option<libp2p::Stream>, libp2p_stream::OpenStreamError> {
    let mut stream = control.open_stream(peer, wire::PROTOCOL).await?;
    let mut probe = Vec::new();
    if wire::encode_request(&mut probe, 0, &Request::Status).is_err() {
        return Ok(None);
    }
    if stream.write_all(&probe).await.is_err() || stream.flush().await.is_err() {
        return Ok(None);
    }
    let answer = wire::frames(&mut stream).next().await;
    Ok(match answer {
        Some(Ok(Message::Response { id: 0, .. })) => Some(stream),
        _ => None,
    })
}

impl Space for RemoteSpace {
    type Subscription = RemoteSubscription;

    /// Sends the tuples in chunks below the frame limit, all at once.
    async fn out_all(&self, tuples: Vec<Tuple>, ttl: Option<Duration>) -> Result<(), SpaceError> {
        let calls = wire::chunks(tuples).into_iter().map(|tuples| async move {
            match self.call(Request::Out { tuples, ttl }, false).await? {
                Response::Ack => Ok(()),
                other => Err(unexpected(&other)),
            }
        });
        futures::future::try_join_all(calls).await.map(|_| ())
    }

    async fn take_up_to(
        &self,
        template: Template,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Tuple>, SpaceError> {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        tuples(
            self.call(
                Request::Take {
                    template,
                    max,
                    timeout,
                },
                true,
            )
            .await?,
        )
    }

    /// One `Steps` request: one round trip for all of them, unless the
    /// tuples they put would not fit in one frame (then one a step, the
    /// outs in chunks).
    async fn steps(&self, steps: Vec<Step>) -> Result<Vec<Vec<Tuple>>, SpaceError> {
        check_steps(&steps)?;
        let putting: usize = steps
            .iter()
            .map(|step| match step {
                Step::Out { tuples, .. } => tuples.iter().map(Tuple::encoded_len_hint).sum(),
                Step::Take { .. } => 0,
            })
            .sum();
        if putting > wire::CHUNK_BYTES {
            return crate::space::one_by_one(self, steps).await;
        }
        let count = steps.len();
        let answers = match self.call(Request::Steps(steps), true).await? {
            Response::Steps(answers) => answers,
            other => return Err(unexpected(&other)),
        };
        let mut taken = Vec::with_capacity(count);
        let mut failure = None;
        for answer in answers {
            match answer {
                Response::Ack => taken.push(Vec::new()),
                Response::Tuples(tuples) => taken.push(tuples),
                Response::Error { kind, message } => failure = Some(kind.into_error(message)),
                other => failure = Some(unexpected(&other)),
            }
        }
        if failure.is_none() && taken.len() != count {
            failure = Some(SpaceError::Refused(format!(
                "{} answers to {count} steps",
                taken.len()
            )));
        }
        match failure {
            None => Ok(taken),
            Some(e) => {
                let back: Vec<Tuple> = taken.into_iter().flatten().collect();
                if !back.is_empty() {
                    self.out_all(back, None).await?;
                }
                Err(e)
            }
        }
    }

    async fn read(
        &self,
        template: Template,
        timeout: Option<Duration>,
    ) -> Result<Option<Tuple>, SpaceError> {
        let found = tuples(
            self.call(Request::Read { template, timeout }, false)
                .await?,
        )?;
        Ok(found.into_iter().next())
    }

    async fn scan(
        &self,
        template: Template,
        limit: Option<usize>,
    ) -> Result<Vec<Tuple>, SpaceError> {
        let limit = limit.map(|l| u64::try_from(l).unwrap_or(u64::MAX));
        tuples(self.call(Request::Scan { template, limit }, false).await?)
    }

    async fn subscribe(&self, template: Template) -> Result<RemoteSubscription, SpaceError> {
        let (ack, acked) = oneshot::channel();
        let (feed, tuples) = mpsc::channel(FEED);
        let waiter = Waiter::Feed {
            ack: Some(ack),
            feed,
        };
        let call = self
            .start(waiter, Request::Subscribe { template }, false)
            .await?;
        match acked.await.map_err(|_| self.lost())? {
            Response::Ack => Ok(RemoteSubscription {
                tuples,
                _call: call,
            }),
            Response::Error { kind, message } => Err(kind.into_error(message)),
            other => Err(unexpected(&other)),
        }
    }
}

/// The tuples of a remote subscription; dropping it unsubscribes.
#[derive(Debug)]
pub struct RemoteSubscription {
    tuples: mpsc::Receiver<Tuple>,
    _call: Call,
}

impl Subscription for RemoteSubscription {
    async fn next(&mut self) -> Option<Tuple> {
        self.tuples.recv().await
    }
}
