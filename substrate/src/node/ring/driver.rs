//! The ring driver: one task owning this peer's [`Peer`], the member list
//! and the outbound links. It feeds the peer client operations, peer
//! messages, timers and views, and carries out the commands it answers
//! with.
//!
//! Membership: without `--join` the ring is this peer alone. A joining peer
//! sends `Join` to the member it was given; that member adds it, answers
//! with every member and the view epoch, and announces it to the others.
//! A peer whose stream breaks or ends is dropped from the view and
//! announced gone; so is a peer leaving. A peer declared gone that is
//! alive after all (a message from it arrives) is told so (`Gone` about
//! itself, at most once a second) and its messages are dropped; told, it
//! joins again through the teller, or, once most members have told it,
//! evicts itself (a view without it: it drops what it held, see
//! [`crate::overlay`]) and joins again through the members it knows,
//! which re-admit it like a newcomer ([`members`]). Each change gives a new view
//! (peer ring id: [`checks::ring_id`]) and the next epoch: one past the
//! highest this peer has seen or been told.
//!
//! Whom it believes ([`trust`]): only members (and the peers it joins
//! through) are heard, and only a `Join` naming its own sender is taken
//! from anyone else; every address and epoch passes [`checks`] first. A
//! member's `Gone` about a third peer makes it a suspect that this peer
//! probes (a `CountAsk`) and drops only if it stays silent; a `Gone`
//! about this peer is refuted by joining again through its sender, and
//! leads to an eviction only once most other members have said it.
//!
//! Load ([`balance`]): a member's place on the ring is the one its peer id
//! gives until it moves to spread the load; it then names its place in
//! its `Member` (`at`), a place no other member holds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::checks::{self, ring_id};
use super::links::{self, LinkEvent, peer_of};
use super::trust::{Doubters, Suspects};
use super::{Input, Link};
use crate::overlay::{Command, Config, Event, OpId, OverlayError, Peer, Reply};
use crate::ring::Ring;
use balance::Balancer;

mod balance;
mod members;
use crate::wire::{Member, PeerMessage, PeerStatus, RingMember, Status};

/// How long a graceful leave lets the handover drain.
const DRAIN: Duration = Duration::from_secs(2);
/// How long `status` waits for the members' counts.
const STATUS_WAIT: Duration = Duration::from_secs(2);
/// How long a joining peer waits for the member list before asking again.
const JOIN_RETRY: Duration = Duration::from_secs(2);

/// A status request (or, without an answer, a balancing round) waiting
/// for the members' counts.
struct Counting {
    answer: Option<oneshot::Sender<Status>>,
    counts: BTreeMap<u64, u64>,
    deadline: Instant,
}

struct Driver {
    link: Link,
    me: Member,
    my_id: u64,
    peer: Peer,
    members: BTreeMap<u64, (PeerId, Member)>,
    /// The ring id of each member and departed member, by peer id.
    ids: HashMap<PeerId, u64>,
    epoch: u64,
    links: HashMap<u64, links::Outbound>,
    /// Kicked when a link's writer takes messages off its queue.
    drained: links::Drained,
    /// Peers whose queue was found full: disconnected after this turn.
    stalled: Vec<u64>,
    events: mpsc::Sender<LinkEvent>,
    /// Each operation's reply channel.
    replies: HashMap<OpId, mpsc::Sender<Reply>>,
    timer: Option<u64>,
    start: Instant,
    counting: HashMap<u64, Counting>,
    next_token: u64,
    count: Arc<AtomicU64>,
    /// The members to join through, until one has let us in, and when we
    /// last asked.
    joining: Vec<Multiaddr>,
    asked: Option<Instant>,
    /// Members found lost ([`members::Departed`]).
    departed: BTreeMap<u64, members::Departed>,
    /// Declared gone by the others while alive: out of its own view until
    /// a member lets it in again.
    evicted: bool,
    /// When this peer last refuted a member's word that it is gone.
    refuted: Option<Instant>,
    /// Members said to be gone, being probed.
    suspects: Suspects,
    /// Members that said this peer is gone.
    doubters: Doubters,
    /// Whom the link readers let speak (see [`links::Known`]).
    known: watch::Sender<Arc<HashSet<PeerId>>>,
    config: Config,
    balancer: Balancer,
}

/// Lost members remembered (to tell them if they turn out alive).
const DEPARTED: usize = 256;
/// How often a lost member that is alive after all is told so.
const TELL_EVERY: Duration = Duration::from_secs(1);
/// Members taken from one `Members` message at most.
const MAX_MEMBERS: usize = 4_096;

/// The view epoch a peer message claims, if any.
fn epoch_of(msg: &PeerMessage) -> Option<u64> {
    match msg {
        PeerMessage::Members { epoch, .. }
        | PeerMessage::Joined { epoch, .. }
        | PeerMessage::Gone { epoch, .. }
        | PeerMessage::Overlay { epoch, .. }
        | PeerMessage::Moved { epoch, .. } => Some(*epoch),
        PeerMessage::Join { .. }
        | PeerMessage::CountAsk { .. }
        | PeerMessage::Count { .. }
        | PeerMessage::Move { .. } => None,
    }
}

/// Where a new overlay peer of this node numbers its tuples from: the
/// wall clock in milliseconds, times 2^20, so that a peer at a place an
/// earlier one held (a restart with the same key, a move) does not reuse
/// its tuple ids unless that one wrote a million tuples a millisecond.
fn first_seq() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let ms = since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    ms.saturating_mul(1 << 20)
}

/// Starts the driver task.
pub(super) fn spawn(
    link: Link,
    join: Vec<Multiaddr>,
    config: Config,
    inputs: mpsc::Receiver<Input>,
    controls: mpsc::UnboundedReceiver<Input>,
    count: Arc<AtomicU64>,
) {
    let me_peer = peer_of(&link.address).expect("a node's address ends in its peer id");
    let my_id = ring_id(&me_peer).expect("a node's own id is its key's");
    let me = Member {
        addr: link.address.to_string(),
        at: None,
    };
    let mut view = Ring::new();
    view.insert(my_id);
    let mut peer = Peer::new(my_id, config, Arc::new(view)).expect("the default keyspace is valid");
    peer.number_ids_from(first_seq());
    let (events, received) = mpsc::channel(links::EVENTS);
    let (known, heard) = watch::channel(Arc::new(HashSet::new()));
    links::accept(link.control.clone(), events.clone(), heard);
    let mut driver = Driver {
        link,
        me: me.clone(),
        my_id,
        peer,
        members: BTreeMap::from([(my_id, (me_peer, me))]),
        ids: HashMap::from([(me_peer, my_id)]),
        epoch: 0,
        links: HashMap::new(),
        drained: links::Drained::default(),
        stalled: Vec::new(),
        events,
        replies: HashMap::new(),
        timer: None,
        start: Instant::now(),
        counting: HashMap::new(),
        next_token: 0,
        count,
        joining: join,
        asked: None,
        departed: BTreeMap::new(),
        evicted: false,
        refuted: None,
        suspects: Suspects::default(),
        doubters: Doubters::default(),
        known,
        config,
        balancer: Balancer::new(),
    };
    driver.publish_known();
    driver.ask_to_join();
    tokio::spawn(driver.run(inputs, controls, received).in_current_span());
}

impl Driver {
    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut controls: mpsc::UnboundedReceiver<Input>,
        mut events: mpsc::Receiver<LinkEvent>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            // A deadline past what an Instant holds (a wait of u64::MAX
            // ms) is as good as never.
            let never = Instant::now() + Duration::from_secs(3600);
            let wake = self
                .timer
                .and_then(|at| self.start.checked_add(Duration::from_millis(at)))
                .map_or(never, |at| at.min(never));
            // Client operations wait while a peer's queue is long; the
            // peers' own messages do not (see [`links`]).
            let congested = self.links.values().any(links::Outbound::congested);
            let drained = self.drained.clone();
            tokio::select! {
                biased;
                Some(control) = controls.recv() => self.on_input(control),
                input = inputs.recv(), if !congested => match input {
                    None => break,
                    Some(Input::Leave(done)) => {
                        self.leave().await;
                        let _ = done.send(());
                        break;
                    }
                    Some(input) => self.on_input(input),
                },
                Some(event) = events.recv() => self.on_link(event),
                _ = tokio::time::sleep_until(wake), if self.timer.is_some() => {
                    self.timer = None;
                    self.feed(Event::Timer);
                }
                _ = tick.tick() => {
                    self.finish_counts(false);
                    self.ask_to_join();
                    self.drop_silent();
                    self.retell_departed();
                    self.balance_round();
                }
                () = drained.notified(), if congested => {}
            }
            self.drop_stalled();
        }
    }

    /// Disconnects the peers whose queues were found full.
    fn drop_stalled(&mut self) {
        for id in std::mem::take(&mut self.stalled) {
            if self.links.remove(&id).is_some() {
                tracing::warn!(
                    id,
                    queued = links::QUEUE,
                    "disconnecting a peer that does not drain its messages"
                );
                self.drop_lost(id);
            }
        }
    }

    /// Asks every member we were given to let us in, again every
    /// [`JOIN_RETRY`] until one has.
    fn ask_to_join(&mut self) {
        if self.joining.is_empty() || self.asked.is_some_and(|at| at.elapsed() < JOIN_RETRY) {
            return;
        }
        self.asked = Some(Instant::now());
        for addr in self.joining.clone() {
            if let Some(to) = self.connect(&addr) {
                let member = self.me.clone();
                self.send(to, PeerMessage::Join { member });
            }
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Op {
                op,
                request,
                replies,
            } => {
                self.replies.insert(op, replies);
                self.feed(Event::Client { op, request });
            }
            Input::Cancel(op) => {
                // Already answered: nothing to cancel.
                if self.replies.remove(&op).is_some() {
                    self.feed(Event::Cancel { op });
                }
            }
            Input::PutBack(tuples) => self.put_back(tuples),
            Input::Status(answer) => self.start_count(Some(answer)),
            Input::Members(answer) => {
                let members = self
                    .members
                    .iter()
                    .map(|(place, (peer, member))| RingMember {
                        id: peer.to_string(),
                        addr: member.addr.clone(),
                        place: *place,
                    })
                    .collect();
                let _ = answer.send(members);
            }
            Input::Leave(_) => unreachable!("handled by the loop"),
        }
    }

    fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Ended { peer } => {
                // Alive peers keep their streams open (a writer whose
                // stream broke opens another): probe the link, which
                // reports `Lost` if the peer cannot be reached.
                let Some(id) = self.id_of(&peer) else { return };
                if let Some(link) = self.links.get(&id) {
                    link.probe();
                } else if let Some((_, member)) = self.members.get(&id).cloned()
                    && let Ok(addr) = member.addr.parse()
                {
                    self.connect(&addr);
                }
            }
            LinkEvent::Lost { peer } => {
                if let Some(id) = self.id_of(&peer) {
                    tracing::info!(%peer, "peer lost");
                    self.drop_lost(id);
                }
            }
            LinkEvent::Message { from, msg } => self.on_message(from, msg),
        }
    }

    fn on_message(&mut self, from: PeerId, msg: PeerMessage) {
        // A joiner is where its Join says (checked below), else where it
        // is known to be.
        let named = match &msg {
            PeerMessage::Join { member } => checks::member(member).ok().map(|c| c.id),
            _ => None,
        };
        let Some(from_id) = named.or_else(|| self.id_of(&from)) else {
            return;
        };
        if let Some(epoch) = epoch_of(&msg)
            && !checks::epoch_plausible(epoch, self.epoch)
        {
            tracing::warn!(%from, epoch, "dropping a peer message with an epoch far ahead");
            return;
        }
        if let Some(accuser) = self.suspects.heard(from_id) {
            tracing::warn!(%from, accuser, "a member said to be gone answered its probe: it stays");
        }
        let join = matches!(msg, PeerMessage::Join { .. });
        if !join && self.departed.contains_key(&from_id) {
            if self.names_me(&msg) {
                // Each found the other gone: whoever hears it first asks
                // to be let in again, which heals both views.
                self.rejoin_through(from_id);
            } else {
                self.tell_departed(from_id);
            }
            return;
        }
        if !join && !self.hears(from_id, from) {
            tracing::debug!(%from, "dropping a message from a peer that is not a member");
            return;
        }
        match msg {
            PeerMessage::Join { member } => {
                match checks::member(&member) {
                    Ok(checked)
                        if self
                            .members
                            .get(&checked.id)
                            .is_some_and(|(held_by, _)| *held_by != from) =>
                    {
                        tracing::warn!(%from, at = checked.id, "refusing a Join at a place another member holds");
                        return;
                    }
                    Ok(checked) if checked.peer == from => {}
                    Ok(checked) => {
                        tracing::warn!(%from, named = %checked.peer, "refusing a Join naming another peer");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%from, error = %e, "refusing a Join with a bad address");
                        return;
                    }
                }
                // A member asking again missed our answer: answer again.
                let added = self.add(&member).is_some();
                let epoch = self.epoch;
                let members = self.members.values().map(|(_, m)| m.clone()).collect();
                self.send(from_id, PeerMessage::Members { members, epoch });
                // Announced when new here (a member that had found it
                // lost lets it back in too). The newcomer also asks every
                // member it learns of itself, so no member depends on
                // this announcement reaching it.
                if added {
                    for other in self.others().into_iter().filter(|&o| o != from_id) {
                        let member = member.clone();
                        self.send(other, PeerMessage::Joined { member, epoch });
                    }
                }
            }
            PeerMessage::Members { members, epoch } => {
                let admitted = !self.joining.is_empty() || self.evicted;
                self.joining.clear();
                self.doubters.clear();
                if std::mem::take(&mut self.evicted) {
                    tracing::info!("re-admitted to the ring");
                }
                self.epoch = self.epoch.max(epoch.saturating_sub(1));
                let new: Vec<u64> = members
                    .iter()
                    .take(MAX_MEMBERS)
                    .filter_map(|member| self.add_quietly(member))
                    .collect();
                self.epoch = self.epoch.max(epoch);
                // Every member learnt of is asked directly, first on its
                // link, so it knows this peer before anything else arrives.
                for &id in new.iter().filter(|&&id| id != from_id) {
                    let member = self.me.clone();
                    self.send(id, PeerMessage::Join { member });
                }
                if admitted || !new.is_empty() {
                    self.publish_known();
                    self.new_view(self.my_id);
                }
            }
            PeerMessage::Joined { member, epoch } => {
                self.epoch = self.epoch.max(epoch.saturating_sub(1));
                self.add(&member);
            }
            PeerMessage::Gone { member, epoch } => {
                let id = match checks::member(&member) {
                    Ok(checked) => checked.id,
                    Err(e) => {
                        tracing::warn!(%from, error = %e, "ignoring a Gone with a bad address");
                        return;
                    }
                };
                self.epoch = self.epoch.max(epoch.saturating_sub(1));
                if id == from_id {
                    // Leaving: its own word about itself.
                    self.remove(id);
                } else if id == self.my_id {
                    self.doubted_by(from_id);
                } else if self.members.contains_key(&id)
                    && self.suspects.suspect(id, from_id, Instant::now())
                {
                    tracing::warn!(%from, addr = %member.addr, "probing a member said to be gone");
                    self.probe(id);
                }
            }
            PeerMessage::Overlay { msg, epoch } => {
                if let Err(e) = checks::overlay(&msg) {
                    tracing::warn!(%from, error = %e, "dropping a malformed overlay message");
                    return;
                }
                self.feed(Event::Message {
                    from: from_id,
                    msg,
                    epoch,
                });
            }
            PeerMessage::CountAsk { token } => {
                self.link.metrics.count_asked();
                let tuples = self.primaries();
                self.send(from_id, PeerMessage::Count { token, tuples });
            }
            PeerMessage::Count { token, tuples } => {
                if let Some(counting) = self.counting.get_mut(&token) {
                    counting.counts.insert(from_id, tuples);
                }
                self.finish_counts(false);
            }
            PeerMessage::Move { at } => self.move_asked(from_id, at),
            PeerMessage::Moved { member, epoch } => self.moved(from, from_id, &member, epoch),
        }
    }

    fn new_view(&mut self, changed: u64) {
        self.balancer.changed = Instant::now();
        let mut view = Ring::new();
        for &id in self.members.keys() {
            if id != self.my_id || !self.evicted {
                view.insert(id);
            }
        }
        let epoch = self.epoch;
        self.feed(Event::View {
            view: Arc::new(view),
            changed,
            epoch,
        });
    }

    /// The ring id of a member (or departed member), else the place its
    /// peer id gives (a peer not yet known, or not a real key's: `None`).
    fn id_of(&self, peer: &PeerId) -> Option<u64> {
        self.ids.get(peer).copied().or_else(|| ring_id(peer))
    }

    /// Opens the link to the peer at `addr`; its ring id.
    fn connect(&mut self, addr: &Multiaddr) -> Option<u64> {
        let peer = peer_of(addr)?;
        let id = self.id_of(&peer)?;
        if id != self.my_id && !self.links.contains_key(&id) {
            let queue = links::open(
                self.link.control.clone(),
                self.link.dial.clone(),
                peer,
                addr.clone(),
                self.events.clone(),
                (self.link.spin.clone(), self.drained.clone()),
            );
            self.links.insert(id, queue);
        }
        Some(id)
    }

    fn others(&self) -> Vec<u64> {
        self.members
            .keys()
            .copied()
            .filter(|&id| id != self.my_id)
            .collect()
    }

    fn send(&mut self, to: u64, msg: PeerMessage) {
        // A closed queue: its writer has stopped and reports the peer lost.
        if let Some(link) = self.links.get(&to)
            && link.send(msg) == Err(links::Unsent::Full)
        {
            self.stalled.push(to);
        }
    }

    fn broadcast(&mut self, msg: PeerMessage) {
        for id in self.others() {
            self.send(id, msg.clone());
        }
    }

    /// Feeds `event` to the peer and carries out what it answers, its own
    /// messages to itself included.
    fn feed(&mut self, event: Event) {
        let mut queue = vec![event];
        while let Some(event) = queue.pop() {
            let now = self.now();
            for command in self.peer.handle(event, now) {
                match command {
                    Command::Send { to, msg, epoch } if to == self.my_id => {
                        queue.push(Event::Message {
                            from: to,
                            msg,
                            epoch,
                        });
                    }
                    Command::Send { to, msg, epoch } => {
                        self.send(to, PeerMessage::Overlay { msg, epoch });
                    }
                    Command::Reply { op, reply } => self.reply(op, reply),
                    Command::ArmTimer { at } => self.timer = Some(at),
                }
            }
        }
        self.primaries();
    }

    fn reply(&mut self, op: OpId, reply: Reply) {
        if let Reply::Notified(_) = reply {
            return self.notify(op, reply);
        }
        let Some(sent) = self.replies.remove(&op).map(|r| r.try_send(reply)) else {
            return;
        };
        // The client went away as the answer came: its tuples go back.
        if let Err(
            TrySendError::Closed(Reply::Taken(tuples)) | TrySendError::Full(Reply::Taken(tuples)),
        ) = sent
            && !tuples.is_empty()
        {
            self.put_back(tuples.into_iter().map(|t| t.tuple).collect());
        }
    }

    /// Hands a subscription its notification; one whose reader left
    /// [`super::NOTIFY_BUFFER`] unread is told it is too slow (the last
    /// slot is kept for that) and ended.
    fn notify(&mut self, op: OpId, reply: Reply) {
        let Some(replies) = self.replies.get(&op) else {
            return;
        };
        if replies.capacity() > 1 {
            let _ = replies.try_send(reply);
            return;
        }
        tracing::warn!(
            unread = super::NOTIFY_BUFFER,
            "ending a subscription whose reader does not keep up"
        );
        let _ = replies.try_send(Reply::Failed(OverlayError::Busy));
        self.replies.remove(&op);
        self.feed(Event::Cancel { op });
    }

    fn put_back(&mut self, tuples: Vec<crate::tuple::Tuple>) {
        tracing::debug!(count = tuples.len(), "putting back undelivered tuples");
        let tuples = tuples.into_iter().map(|t| (t, None)).collect();
        self.feed(Event::PutBack { tuples });
    }

    fn primaries(&self) -> u64 {
        let count = self.peer.primary_count() as u64;
        self.count.store(count, Ordering::Relaxed);
        count
    }

    /// Asks every member its count: for `answer`, or for a balancing
    /// round without one.
    fn start_count(&mut self, answer: Option<oneshot::Sender<Status>>) {
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1);
        let counts = BTreeMap::from([(self.my_id, self.primaries())]);
        self.counting.insert(
            token,
            Counting {
                answer,
                counts,
                deadline: Instant::now() + STATUS_WAIT,
            },
        );
        self.broadcast(PeerMessage::CountAsk { token });
        self.finish_counts(false);
    }

    /// Answers the status requests every member has counted for (or whose
    /// wait is over: a silent member counts 0).
    fn finish_counts(&mut self, all: bool) {
        let now = Instant::now();
        let done: Vec<u64> = self
            .counting
            .iter()
            .filter(|(_, c)| {
                all || now >= c.deadline || self.members.keys().all(|id| c.counts.contains_key(id))
            })
            .map(|(&token, _)| token)
            .collect();
        for token in done {
            let Some(counting) = self.counting.remove(&token) else {
                continue;
            };
            let Some(answer) = counting.answer else {
                self.balance_counted(counting.counts);
                continue;
            };
            let peers: Vec<PeerStatus> = self
                .members
                .iter()
                .map(|(id, (peer, member))| PeerStatus {
                    id: peer.to_string(),
                    addr: member.addr.clone(),
                    tuples: counting.counts.get(id).copied().unwrap_or(0),
                    place: Some(*id),
                })
                .collect();
            let tuples = peers
                .iter()
                .fold(0u64, |sum, p| sum.saturating_add(p.tuples));
            let _ = answer.send(Status { peers, tuples });
        }
    }

    /// Hands everything over, tells the others, and lets the links drain.
    async fn leave(&mut self) {
        self.feed(Event::Leave);
        let member = self.me.clone();
        let epoch = self.epoch.saturating_add(1);
        self.broadcast(PeerMessage::Gone { member, epoch });
        self.finish_counts(true);
        self.links.clear();
        // A lone peer has no one to hand anything to.
        if !self.others().is_empty() {
            tokio::time::sleep(DRAIN).await;
        }
    }
}
