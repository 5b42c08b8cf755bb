//! [`DirectSpace`]: a client of a ring that sends each operation straight
//! to the peer that holds what it touches, as a Redis Cluster client sends
//! each key to its slot's node.
//!
//! A [`RemoteSpace`] talks to one node, its entry: that node routes every
//! `out` to the tuple's primary and asks the candidate peers of every take,
//! so an operation on another peer's arc costs two more peer messages on
//! its critical path (`Route` and `Stored`, or `Ask` and `Taken`). A
//! `DirectSpace` learns the ring from its entry's `Members` (each member's
//! place and address, from the entry's own view, counting nothing),
//! computes a tuple's index and a template's candidate
//! peers with the same keyspace the peers use, and connects to up to
//! [`MAX_DIRECT`] members:
//!
//! - an `out` goes to each tuple's primary (a batch is split by primary);
//! - a take, read or scan whose template has one candidate peer goes to it;
//!   with several candidates, to one of them (the entry if it is one);
//! - `steps` go to the one peer every step touches, else to the entry;
//! - subscriptions and `status` go to the entry.
//!
//! Routing is only a choice of entry: every member serves any operation
//! and routes what is not its own, so a stale view costs hops, never
//! correctness, and every guarantee is the peers'. The view is refreshed
//! every [`REFRESH`]; a member whose connection is lost is sent nothing
//! more (its operations go to the entry until the next refresh finds the
//! new owner, and it is dialled again while it is still listed). A take,
//! read or scan cut off by a lost member's connection is asked again of
//! the entry; an `out` or `steps` cut off fails with
//! [`SpaceError::Unreachable`], as on a `RemoteSpace` (it may have been
//! stored: sending it again could store it twice).
//!
//! A node's local door (`/unix/<path>`) is refused
//! ([`ConnectError::LocalDoor`]): a direct client reaches the members by
//! their libp2p addresses, which a Unix socket does not give.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use libp2p::Multiaddr;
use tokio::task::AbortHandle;

use super::{ConnectError, RemoteSpace, RemoteSubscription};
use crate::keyspace::{Cover, Covers, Keyspace};
use crate::net::PreSharedKey;
use crate::overlay;
use crate::ring::Ring;
use crate::space::{Space, SpaceError, Step};
use crate::template::Template;
use crate::tuple::Tuple;
use crate::wire::Status;

/// Members connected to directly at most; the others are reached through
/// the entry.
pub const MAX_DIRECT: usize = 16;
/// How often the view of the ring is asked again.
pub const REFRESH: Duration = Duration::from_secs(2);

/// A handle on a ring that sends each operation to the peer holding what
/// it touches. Cheap to clone; the connections close when the last clone
/// is dropped.
#[derive(Clone, Debug)]
pub struct DirectSpace {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    entry: RemoteSpace,
    keyspace: Keyspace,
    /// Templates' covers, remembered as the peers remember them.
    covers: Mutex<Covers>,
    routes: RwLock<Routes>,
    refresher: RwLock<Option<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let refresher = self.refresher.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = refresher.take() {
            task.abort();
        }
    }
}

/// The ring as last seen, and the members connected to.
#[derive(Debug, Default)]
struct Routes {
    ring: Ring,
    members: HashMap<u64, RemoteSpace>,
}

impl Routes {
    /// The member at ring place `id`, if its connection still stands: one
    /// known lost (a crashed peer) is sent nothing more.
    fn member(&self, id: u64) -> Option<&RemoteSpace> {
        self.members.get(&id).filter(|m| m.is_connected())
    }
}

impl DirectSpace {
    /// Connects to the ring member at `addr` (ending in `/p2p/<peer id>`)
    /// and, through what it says of the ring, to up to [`MAX_DIRECT`]
    /// members, each within `timeout`; `secret` is the overlay's
    /// pre-shared key, if it has one. Members that cannot be reached are
    /// left out (their operations go to the entry).
    pub async fn connect_with(
        addr: Multiaddr,
        timeout: Duration,
        secret: Option<PreSharedKey>,
    ) -> Result<DirectSpace, ConnectError> {
        DirectSpace::connect_refreshing(addr, timeout, secret, REFRESH).await
    }

    /// Like [`DirectSpace::connect_with`], asking for the view of the ring
    /// every `every` instead of every [`REFRESH`].
    pub async fn connect_refreshing(
        addr: Multiaddr,
        timeout: Duration,
        secret: Option<PreSharedKey>,
        every: Duration,
    ) -> Result<DirectSpace, ConnectError> {
        if super::socket_path(&addr).is_some() {
            return Err(ConnectError::LocalDoor(addr));
        }
        let entry = RemoteSpace::connect_with(addr, timeout, secret).await?;
        let config = overlay::Config::default();
        let keyspace = Keyspace::new(config.dims).expect("the overlay's default keyspace is valid");
        let inner = Arc::new(Inner {
            entry,
            keyspace,
            covers: Mutex::new(Covers::new(keyspace, config.max_ranges)),
            routes: RwLock::default(),
            refresher: RwLock::default(),
        });
        refresh(&inner, timeout, secret).await;
        let weak = Arc::downgrade(&inner);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                refresh(&inner, timeout, secret).await;
            }
        });
        *inner.refresher.write().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        Ok(DirectSpace { inner })
    }

    /// Like [`DirectSpace::connect_with`] for a ring without a pre-shared key.
    pub async fn connect(addr: Multiaddr, timeout: Duration) -> Result<DirectSpace, ConnectError> {
        DirectSpace::connect_with(addr, timeout, None).await
    }

    /// The ring as the entry sees it.
    pub async fn status(&self) -> Result<Status, SpaceError> {
        self.inner.entry.status().await
    }

    /// How many members this client talks to directly (the entry included
    /// when it is a member) over connections that still stand.
    pub fn direct_members(&self) -> usize {
        let routes = self.inner.routes();
        routes.members.values().filter(|m| m.is_connected()).count()
    }

    /// The member to send an operation on `template` to.
    fn for_template(&self, template: &Template) -> RemoteSpace {
        let inner = &self.inner;
        let ranges = inner.cover(template);
        let routes = inner.routes();
        let candidates = routes.ring.owners_of(&ranges);
        let entry = inner.entry.peer();
        let mut connected = candidates.iter().filter_map(|&id| routes.member(id));
        if candidates.len() > 1 && connected.clone().any(|m| m.peer() == entry) {
            return inner.entry.clone();
        }
        connected
            .next()
            .cloned()
            .unwrap_or_else(|| inner.entry.clone())
    }

    /// The member that is the primary of index `index`, if connected.
    fn for_index(routes: &Routes, index: u64) -> Option<&RemoteSpace> {
        routes.ring.owner(index).and_then(|id| routes.member(id))
    }

    /// The one member every step touches, if there is one and it is
    /// connected.
    fn for_steps(&self, steps: &[Step]) -> Option<RemoteSpace> {
        let inner = &self.inner;
        let routes = inner.routes();
        let mut owners = steps.iter().flat_map(|step| match step {
            Step::Out { tuples, .. } => tuples
                .iter()
                .map(|t| routes.ring.owner(inner.keyspace.index_of(t)))
                .collect::<Vec<_>>(),
            Step::Take { template, .. } => {
                let owners = routes.ring.owners_of(&inner.cover(template));
                match owners[..] {
                    [one] => vec![Some(one)],
                    _ => vec![None],
                }
            }
        });
        let first = owners.next()??;
        owners.all(|o| o == Some(first)).then_some(())?;
        routes.member(first).cloned()
    }

    /// Whether a query sent to `member` should be asked again of the
    /// entry: its connection was lost and it was not the entry's. Asking
    /// again is safe for a query: a take that was cut off took nothing the
    /// caller has (what the member had reserved for it is the member's to
    /// give back, or its replicas' to serve if it crashed).
    fn lost(&self, member: &RemoteSpace, result: &Result<impl Sized, SpaceError>) -> bool {
        matches!(result, Err(SpaceError::Unreachable(_)))
            && member.peer() != self.inner.entry.peer()
    }
}

impl Inner {
    /// The keyspace cover of `template`, remembered.
    fn cover(&self, template: &Template) -> Cover {
        let mut covers = self.covers.lock().unwrap_or_else(|e| e.into_inner());
        covers.cover(template)
    }

    fn routes(&self) -> std::sync::RwLockReadGuard<'_, Routes> {
        self.routes.read().unwrap_or_else(|e| e.into_inner())
    }

    fn routes_mut(&self) -> std::sync::RwLockWriteGuard<'_, Routes> {
        self.routes.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Asks the entry for the ring, connects to members not yet connected (at
/// most [`MAX_DIRECT`] in all) and forgets those that left. On a failed
/// `Members` the routes stay as they were.
async fn refresh(inner: &Inner, timeout: Duration, secret: Option<PreSharedKey>) {
    // The entry's own view: asking for `status` would have it ask every
    // member for its count, every refresh, for every direct client.
    let members = match inner.entry.members().await {
        Ok(members) => members,
        Err(e) => {
            tracing::debug!(error = %e, "no view of the ring this time");
            return;
        }
    };
    let places: Vec<(u64, String, String)> = members
        .into_iter()
        .map(|m| (m.place, m.id, m.addr))
        .collect();
    let ring: Ring = places.iter().map(|(place, ..)| *place).collect();
    // By peer id: a member that moved to spread the load keeps its
    // connection.
    let known: HashMap<String, RemoteSpace> = inner
        .routes()
        .members
        .values()
        .filter(|m| m.is_connected())
        .map(|m| (m.peer().to_string(), m.clone()))
        .collect();
    let entry = inner.entry.peer().to_string();
    let mut members = HashMap::new();
    let mut dials = Vec::new();
    for (place, id, addr) in places.into_iter().take(MAX_DIRECT) {
        if let Some(member) = known.get(&id) {
            members.insert(place, member.clone());
        } else if id == entry {
            members.insert(place, inner.entry.clone());
        } else {
            let Ok(addr) = addr.parse::<Multiaddr>() else {
                tracing::warn!(%addr, "a member's address does not parse; reached through the entry");
                continue;
            };
            dials.push(async move {
                let connected = RemoteSpace::connect_with(addr, timeout, secret).await;
                (place, id, connected)
            });
        }
    }
    for (place, id, connected) in futures::future::join_all(dials).await {
        match connected {
            // The address names the peer; the handshake proved it.
            Ok(member) if member.peer().to_string() == id => {
                members.insert(place, member);
            }
            Ok(member) => {
                tracing::warn!(expected = %id, got = %member.peer(), "a member answered under another id");
            }
            Err(e) => tracing::debug!(member = %id, error = %e, "reached through the entry"),
        }
    }
    *inner.routes_mut() = Routes { ring, members };
}

impl Space for DirectSpace {
    type Subscription = RemoteSubscription;

    /// Splits the tuples by primary and sends each peer its share, all at
    /// once; tuples whose primary is not connected go to the entry.
    async fn out_all(&self, tuples: Vec<Tuple>, ttl: Option<Duration>) -> Result<(), SpaceError> {
        let inner = &self.inner;
        let mut shares: Vec<(RemoteSpace, Vec<Tuple>)> = Vec::new();
        {
            let routes = inner.routes();
            for tuple in tuples {
                let index = inner.keyspace.index_of(&tuple);
                let member = DirectSpace::for_index(&routes, index).unwrap_or(&inner.entry);
                match shares.iter_mut().find(|(m, _)| m.peer() == member.peer()) {
                    Some((_, share)) => share.push(tuple),
                    None => shares.push((member.clone(), vec![tuple])),
                }
            }
        }
        let sends = shares
            .into_iter()
            .map(|(member, share)| async move { member.out_all(share, ttl).await });
        futures::future::try_join_all(sends).await.map(|_| ())
    }

    async fn take_up_to(
        &self,
        template: Template,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Tuple>, SpaceError> {
        let member = self.for_template(&template);
        let result = member.take_up_to(template.clone(), max, timeout).await;
        match self.lost(&member, &result) {
            true => self.inner.entry.take_up_to(template, max, timeout).await,
            false => result,
        }
    }

    async fn read(
        &self,
        template: Template,
        timeout: Option<Duration>,
    ) -> Result<Option<Tuple>, SpaceError> {
        let member = self.for_template(&template);
        let result = member.read(template.clone(), timeout).await;
        match self.lost(&member, &result) {
            true => self.inner.entry.read(template, timeout).await,
            false => result,
        }
    }

    async fn scan(
        &self,
        template: Template,
        limit: Option<usize>,
    ) -> Result<Vec<Tuple>, SpaceError> {
        let member = self.for_template(&template);
        let result = member.scan(template.clone(), limit).await;
        match self.lost(&member, &result) {
            true => self.inner.entry.scan(template, limit).await,
            false => result,
        }
    }

    async fn subscribe(&self, template: Template) -> Result<RemoteSubscription, SpaceError> {
        self.inner.entry.subscribe(template).await
    }

    async fn steps(&self, steps: Vec<Step>) -> Result<Vec<Vec<Tuple>>, SpaceError> {
        let member = self
            .for_steps(&steps)
            .unwrap_or_else(|| self.inner.entry.clone());
        member.steps(steps).await
    }
}
