//! Nodes through Redis (`REDIS_URL`): the orderer that orders every room's events in
//! Redis ([`RedisOrderer`]), so that the nodes behind one load balancer serve the same
//! rooms: a room's seqs come from Redis, every node that watches a room (it has opened
//! it: a member joined, a message was sent) is subscribed to it, and the events other
//! nodes settle enter its rooms' histories and reach its shards through the node's
//! event sink, as the node's own do.
//!
//! A room opens on a node in this order: the node subscribes (confirmed), reads which
//! seqs Redis has given and which are pending, then reads the store's tail: every seq
//! settled before the subscription is in the store (recorded before it was settled) or
//! a void, and every one settled after arrives by the link. What arrives while the room
//! opens waits, and settles once it is open. A room no shard has held for a while is
//! closed and unsubscribed ([`Rooms::close_idle`], from the upkeep thread).
//!
//! Redis may come back empty (it keeps nothing on disk here; in a cluster, one master
//! can): the store holds every acknowledged event, but a
//! void that some node saw may be above the store's last seq, and a seq given twice
//! would be dropped as a duplicate there. So seqs are given in an epoch, one per key
//! slot (kept in the slot, so it goes with the rooms it covers): the first node to
//! find a slot without one makes a new one, which settles for [`settling_time`] before
//! any seq is given in it, and announces it; meanwhile every node that had been
//! connected (it reconnects, or hears the announcement: its link's thread joins at
//! once) raises the counters of the rooms of that slot it has open to the highest seq
//! it has seen, then takes the epoch. A node that comes back after the settling is over cannot prove that no seq it
//! saw was given again: its rooms skip to the seq Redis is at, and their members are
//! told (`recovered:false`).
//!
//! What a mutation changed reaches the other nodes' caches before it answers
//! ([`peers`]).

pub mod peers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use streamhub_pubsub::redis::{
    room_slot, slots, Epoch, Incoming, Link, LinkError, Ordered, RedisRooms, Servers, Voided,
    EPOCHS,
};
use streamhub_pubsub::{wire, Chat, ChatEvent, Event};

use crate::domain::events::{EventSink, Notice};
use crate::realtime::presence::Presence;
use crate::rooms::{Given, Giving, Orderer, Room, Rooms};
use crate::store::{Change, Clock, Millis, SharedStore, StoreError, StoreFuture};
use peers::Peers;

/// Orders room events in Redis and brings other nodes' events to this node's rooms.
#[derive(Debug)]
pub struct RedisOrderer {
    redis: RedisRooms,
    link: Link,
    watched: Arc<Watched>,
    peers: Arc<Peers>,
    /// This node's id among the nodes (random, made at start).
    node: Box<str>,
}

/// The rooms this node watches, where their events go, and what a room catching up
/// after the link was lost reads.
#[derive(Debug)]
struct Watched {
    rooms: Mutex<HashMap<Box<str>, Watch>>,
    events: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
    store: SharedStore,
    redis: OnceLock<RedisRooms>,
    /// The epochs this node gives seqs in, by slot: none until it has joined Redis'
    /// (and none for a slot whose master has not answered yet).
    epochs: Mutex<Option<Vec<Option<Arc<str>>>>>,
    /// Until when the nodes settle a new epoch of every slot (a new or emptied Redis:
    /// the node is not ready meanwhile; a slot settling alone refuses only its rooms'
    /// orders).
    settling_until: Mutex<Option<Instant>>,
    /// One join at a time.
    joining: tokio::sync::Mutex<()>,
    /// The link's runtime, which runs the joins.
    link_rt: OnceLock<tokio::runtime::Handle>,
    /// How long a new epoch settles.
    settle: Duration,
    /// The link's connections so far: a joining that a newer connection superseded
    /// stops trying.
    connections: AtomicU64,
    /// The last connection whose joining is done.
    joined: AtomicU64,
    /// A join is queued: an order found a slot in another epoch while the link stayed
    /// connected (its data was flushed, or its master came back empty), a node
    /// announced a new one, or a master did not answer the last join.
    rejoin: AtomicBool,
    /// The node's rooms, whose idle ones the upkeep closes.
    node_rooms: Arc<OnceLock<Weak<Rooms>>>,
}

/// How long a room no shard holds (no member, no subscription) stays open before the
/// node closes it and unsubscribes from it: a room whose last member leaves and
/// another joins soon after is not churned.
const ROOM_LINGER: Millis = 5_000;

/// How long a new epoch settles before any seq is given in it, with Redis calls that
/// give up after `timeout`: long enough for every node that was connected to hear of it
/// (its link reconnects, waiting at most a second between tries, or it hears the
/// announcement) and raise its rooms' counters (a join's first reads and a room's call
/// each take at most a timeout), twice over.
pub fn settling_time(timeout: Duration) -> Duration {
    2 * (Duration::from_secs(1) + 2 * timeout)
}

/// The most events one room reads from the store to catch up; a longer gap is not
/// replayed (its members are told: `recovered:false`).
const CATCH_UP_MAX: usize = 10_000;

/// The longest gap a room fills from its Redis stream (which keeps about the history's
/// length of events); a longer one is read from the store.
const STREAM_CATCH_UP_MAX: usize = 1_000;

/// A watched room.
#[derive(Debug)]
enum Watch {
    /// Opening (`openers` of them at once): the events that came meanwhile, in order.
    Opening {
        openers: usize,
        early: Vec<(u64, Option<Chat>)>,
    },
    /// Open: events settle in it as they come.
    Open(Arc<Room>),
}

impl RedisOrderer {
    /// Connects the node to Redis (`servers`; lazily: a node starts while Redis is
    /// down, and its room calls fail fast until it is back); settled events go to
    /// `events` (`on_link_thread` runs first on the link's thread: it attaches the
    /// thread to the event sink). Redis calls give up after `timeout`; each room's Redis
    /// stream keeps about `stream_len` events.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        servers: Servers,
        timeout: Duration,
        stream_len: usize,
        store: SharedStore,
        events: Arc<dyn EventSink>,
        on_link_thread: Box<dyn FnOnce() + Send>,
        clock: Arc<dyn Clock>,
    ) -> Result<RedisOrderer, LinkError> {
        let watched = Arc::new(Watched {
            rooms: Mutex::default(),
            events,
            clock,
            store,
            redis: OnceLock::new(),
            epochs: Mutex::default(),
            settling_until: Mutex::default(),
            joining: tokio::sync::Mutex::const_new(()),
            link_rt: OnceLock::new(),
            settle: settling_time(timeout),
            connections: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            rejoin: AtomicBool::new(false),
            node_rooms: Arc::default(),
        });
        let node = format!("{:016x}", fastrand::u64(..));
        let peers = Arc::new(Peers::new(&node, Arc::clone(&watched.events), timeout));
        let always = vec![
            peers::CHANGES.to_owned(),
            peers::answers(&node),
            EPOCHS.to_owned(),
        ];
        let receiver = Arc::clone(&watched);
        let heard = Arc::clone(&peers);
        let (redis, link) = streamhub_pubsub::redis::start(
            servers,
            timeout,
            stream_len,
            always,
            on_link_thread,
            {
                move |incoming| match incoming {
                    Incoming::Message { channel, .. } if channel == EPOCHS => {
                        Watched::queue_join(&receiver, Duration::ZERO);
                    }
                    Incoming::Message { channel, bytes } => {
                        if !heard.receive(channel, bytes) {
                            receiver.receive(channel, bytes);
                        }
                    }
                    Incoming::Subscribed { again } => {
                        if again {
                            heard.resubscribed();
                        }
                        Watched::subscribed(&receiver, again);
                    }
                }
            },
        )?;
        let _ = watched.redis.set(redis.clone());
        peers.connect(redis.clone(), link.clone());
        Ok(RedisOrderer {
            redis,
            link,
            watched,
            peers,
            node: node.into(),
        })
    }
}

impl RedisOrderer {
    /// The node's Redis commands (for what else nodes share there: APQ registrations).
    pub fn redis(&self) -> RedisRooms {
        self.redis.clone()
    }

    /// Where the node's rooms go once they exist (the orderer is theirs, so it comes
    /// first): the upkeep closes the idle ones.
    pub fn rooms_slot(&self) -> Arc<OnceLock<Weak<Rooms>>> {
        Arc::clone(&self.watched.node_rooms)
    }

    /// The other nodes, as this node's mutations reach their caches.
    pub fn peers(&self) -> Arc<Peers> {
        Arc::clone(&self.peers)
    }

    /// Starts the node's Redis upkeep on a thread of its own, every third of
    /// `presence_ttl` (at least every second): shares this node's viewer counts with
    /// the other nodes and theirs with it (each node's kept for `presence_ttl`), and
    /// voids a seq a room has waited for longer than `stale_after` while later events
    /// settled (its orderer died, or lost Redis, between ordering and settling it).
    /// `on_thread` runs first on the thread (it attaches it to the event sink).
    pub fn start_upkeep(
        &self,
        presence: Arc<Presence>,
        presence_ttl: Duration,
        stale_after: Duration,
        on_thread: Box<dyn FnOnce() + Send>,
    ) -> std::io::Result<()> {
        let redis = self.redis.clone();
        let watched = Arc::clone(&self.watched);
        let node = self.node.clone();
        let every = (presence_ttl / 3)
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("redis-upkeep".into())
            .spawn(move || {
                on_thread();
                rt.block_on(async move {
                    let mut tick = tokio::time::interval(every);
                    let mut failing = false;
                    let mut holes = HashMap::new();
                    loop {
                        tick.tick().await;
                        let shared = async {
                            redis
                                .report_presence(&node, &presence.local(), presence_ttl)
                                .await?;
                            redis.others_presence(&node).await
                        }
                        .await;
                        match shared {
                            Ok(sums) => {
                                presence.set_remote(&sums);
                                failing = false;
                            }
                            Err(e) if !failing => {
                                failing = true;
                                tracing::warn!(error = %e, "presence: other nodes' counts are not shared while Redis is unreachable");
                            }
                            Err(_) => {}
                        }
                        watched.sweep(&redis, &mut holes, stale_after).await;
                        if let Some(rooms) = watched.node_rooms.get().and_then(Weak::upgrade) {
                            rooms.close_idle(ROOM_LINGER);
                        }
                    }
                })
            })?;
        Ok(())
    }
}

impl Watched {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Watch>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Voids what open rooms have waited for since longer than `stale_after` (`holes`:
    /// the seq each room waited for when last looked at, and since when). A seq that
    /// is not pending any more settled without this node hearing it: the room catches
    /// up.
    async fn sweep(
        &self,
        redis: &RedisRooms,
        holes: &mut HashMap<Box<str>, (u64, std::time::Instant)>,
        stale_after: Duration,
    ) {
        let open = self.open_rooms();
        let now = std::time::Instant::now();
        holes.retain(|id, _| open.iter().any(|r| *r.id == **id));
        for room in open {
            let Some(hole) = room.hole() else {
                holes.remove(&*room.id);
                continue;
            };
            let since = match holes.get(&*room.id) {
                Some((seq, since)) if *seq == hole => *since,
                _ => {
                    holes.insert(Box::from(&*room.id), (hole, now));
                    continue;
                }
            };
            if now.duration_since(since) < stale_after {
                continue;
            }
            let swept = match redis.void_stale(&room.id, hole, stale_after).await {
                Ok(Voided::Recent) => continue,
                Ok(Voided::Voided) => Ok("voided"),
                Ok(Voided::NotPending) => self.catch_up(&room, false).await.map(|()| "caught up"),
                Err(e) => Err(unavailable(e)),
            };
            match swept {
                Ok(how) => {
                    tracing::info!(room = %room.id, seq = hole, how, "rooms: a seq waited for too long was settled")
                }
                Err(e) => {
                    tracing::warn!(room = %room.id, seq = hole, error = %e, "rooms: a seq waited for too long could not be settled")
                }
            }
        }
    }

    /// The rooms open on this node.
    fn open_rooms(&self) -> Vec<Arc<Room>> {
        self.lock()
            .values()
            .filter_map(|w| match w {
                Watch::Open(room) => Some(Arc::clone(room)),
                Watch::Opening { .. } => None,
            })
            .collect()
    }

    /// Room `id` is opening: what comes for it waits until it is open (a room of the
    /// channel that was closed gives way).
    fn opening(&self, id: &str) {
        let mut rooms = self.lock();
        let watch = rooms.entry(id.into()).or_insert(Watch::Opening {
            openers: 0,
            early: Vec::new(),
        });
        if matches!(watch, Watch::Open(old) if old.is_closed()) {
            *watch = Watch::Opening {
                openers: 0,
                early: Vec::new(),
            };
        }
        match watch {
            Watch::Opening { openers, .. } => *openers += 1,
            Watch::Open(_) => {}
        }
    }

    /// These rooms were closed: they are no longer watched (unless the channel's next
    /// room is already opening), and `link` unsubscribes from their channels. Asked
    /// with the rooms locked, so that an opening after it subscribes after it.
    fn closed(&self, closed: &[Arc<Room>], link: &Link) {
        let mut rooms = self.lock();
        let mut channels = Vec::new();
        for room in closed {
            if matches!(rooms.get(&*room.id), Some(Watch::Open(r)) if Arc::ptr_eq(r, room)) {
                rooms.remove(&*room.id);
                channels.push(streamhub_pubsub::redis::channel(&room.id));
            }
        }
        link.unsubscribe(channels);
    }

    /// An opening of room `id` failed: once no other is under way, what came for it is
    /// dropped (it is in the store by the next try's reads).
    fn failed(&self, id: &str) {
        let mut rooms = self.lock();
        if let Some(Watch::Opening { openers, .. }) = rooms.get_mut(id) {
            *openers -= 1;
            if *openers == 0 {
                rooms.remove(id);
            }
        }
    }

    /// `room` is open: what came while it opened settles in it, in order.
    fn opened(&self, room: &Arc<Room>) {
        let mut rooms = self.lock();
        let Some(watch) = rooms.get_mut(&*room.id) else {
            return;
        };
        if let Watch::Opening { early, .. } =
            std::mem::replace(watch, Watch::Open(Arc::clone(room)))
        {
            for (seq, chat) in early {
                self.settle(room, seq, chat);
            }
        }
    }

    /// A message of the link: an event (or a void) settled by some node.
    fn receive(&self, channel: &str, bytes: &[u8]) {
        let Some(id) = streamhub_pubsub::redis::room_of(channel) else {
            return;
        };
        let (seq, chat) = match wire::decode(bytes) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(room = id, error = %e, "redis link: an event that cannot be read");
                return;
            }
        };
        let mut rooms = self.lock();
        match rooms.get_mut(id) {
            Some(Watch::Opening { early, .. }) => early.push((seq, chat)),
            Some(Watch::Open(room)) => self.settle(room, seq, chat),
            None => {}
        }
    }

    /// Settles an event in `room` and publishes what entered its history (called with
    /// the rooms locked, so that the link's events leave in the order they came).
    fn settle(&self, room: &Room, seq: u64, chat: Option<Chat>) {
        self.settle_event(room, seq, chat.map(|c| Arc::new(ChatEvent::new(c))));
    }

    fn settle_event(&self, room: &Room, seq: u64, event: Option<Arc<ChatEvent>>) {
        self.publish(room.settle(seq, event, self.clock.now()));
    }

    /// Publishes events that entered a room's history here; a ban from another node also
    /// drops what this node's caches know of the user in the room, so the banned user
    /// cannot go on sending here.
    fn publish(&self, ready: crate::rooms::Ready) {
        for event in ready {
            if let Chat::Banned { user_id, .. } = &event.payload.chat {
                self.events
                    .publish(Notice::Changed(Arc::from([Change::Membership {
                        user_id: user_id.clone(),
                        channel_id: Box::from(&*event.room),
                    }])));
            }
            self.events.publish(Notice::Room(event));
        }
    }

    /// The link is connected (`again`: after a loss): the node joins Redis' epochs, and
    /// every open room catches up on what was settled meanwhile (on the link's thread,
    /// while what comes next waits in the rooms).
    fn subscribed(this: &Arc<Watched>, again: bool) {
        let connection = this.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = this.link_rt.set(tokio::runtime::Handle::current());
        let this = Arc::clone(this);
        tokio::spawn(async move {
            let _one = this.joining.lock().await;
            this.join_epoch(again, connection).await;
        });
    }

    /// Queues a join (one at most: a join that starts takes every ask made before it)
    /// on the link's thread, after `delay`.
    fn queue_join(this: &Arc<Watched>, delay: Duration) {
        if this.rejoin.swap(true, Ordering::Relaxed) {
            return;
        }
        let Some(rt) = this.link_rt.get() else {
            // Not connected yet: the first join comes with the link.
            this.rejoin.store(false, Ordering::Relaxed);
            return;
        };
        let this = Arc::clone(this);
        rt.spawn(async move {
            tokio::time::sleep(delay).await;
            let _one = this.joining.lock().await;
            this.rejoin.store(false, Ordering::Relaxed);
            let connection = this.connections.load(Ordering::Relaxed);
            this.join_epoch(false, connection).await;
        });
    }

    /// Joins Redis' epochs (made now in the slots that have none): first the open
    /// rooms catch up (`again`; in a slot whose epoch changed, always) and raise their
    /// counters to the highest seq this node has seen, then the node gives seqs in
    /// them. Once a new epoch has settled, those rooms catch up once more, on the
    /// voids other nodes raised the counters by. The slots of the open rooms are read
    /// first, so that their counters are raised while a new epoch settles, however
    /// long reading all 16,384 takes; a room opened meanwhile in a slot whose epoch
    /// changed is raised after. A slot whose master does not answer keeps the epoch
    /// the node held (its rooms' orders fail meanwhile), and the join is tried again.
    async fn join_epoch(self: &Arc<Self>, again: bool, connection: u64) {
        let Some(redis) = self.redis.get() else {
            return;
        };
        let held = self
            .epochs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let differs = |slot: u16, epoch: &Epoch| {
            held.as_ref()
                .and_then(|h| h[usize::from(slot)].as_deref())
                .is_some_and(|h| *h != *epoch.id)
        };
        let open: BTreeSet<u16> = self.open_rooms().iter().map(|r| room_slot(&r.id)).collect();
        let first = redis.epochs(open.iter().copied(), self.settle).await;
        announce_made(redis, &first).await;
        let mut changed = vec![false; slots::SLOTS];
        // The slots read here (a master that did not answer is read again below).
        let mut read = vec![false; slots::SLOTS];
        for (slot, epoch) in open.iter().zip(&first) {
            if let Ok(epoch) = epoch {
                changed[usize::from(*slot)] = differs(*slot, epoch);
                read[usize::from(*slot)] = true;
            }
        }
        let catching_up = again || changed.contains(&true);
        if catching_up {
            self.catch_up_all(again, &changed).await;
        }
        let all = redis.epochs(0..slots::SLOTS as u16, self.settle).await;
        announce_made(redis, &all).await;
        // Rooms opened meanwhile (or whose slot's master did not answer above), in
        // slots whose epoch changed.
        let mut late = vec![false; slots::SLOTS];
        for (slot, epoch) in all.iter().enumerate() {
            if let (Ok(epoch), false) = (epoch, read[slot]) {
                late[slot] = differs(slot as u16, epoch);
            }
        }
        let late_changes = late.contains(&true);
        if late_changes {
            self.catch_up_all(false, &late).await;
        }
        let failed = all.iter().filter(|e| e.is_err()).count();
        if failed == all.len() {
            if let Some(Err(e)) = all.first() {
                tracing::warn!(error = %e, "rooms: Redis' epochs could not be read");
            }
            if self.connections.load(Ordering::Relaxed) == connection {
                Watched::queue_join(self, Duration::from_millis(100));
            }
            return;
        }
        let longest = first
            .iter()
            .chain(&all)
            .flatten()
            .map(|e| e.settling)
            .max()
            .unwrap_or_default();
        // Every slot that answered settling: a new or emptied Redis (a slot that did
        // not answer in time, as happens under load, must not make the node ready
        // while the others settle).
        if all.iter().flatten().all(|e| !e.settling.is_zero()) {
            *self
                .settling_until
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + longest);
        }
        let slots_changed = (0..slots::SLOTS).filter(|&s| changed[s] || late[s]).count();
        if slots_changed > 0 {
            tracing::warn!(slots = slots_changed, settling = ?longest, "rooms: Redis came back empty: seqs go on past the highest any node has seen, in a new epoch");
        }
        // One id per epoch, shared by its slots; the open rooms' slots as they were
        // read when their counters were raised; a slot that did not answer as held.
        let mut ids: HashMap<String, Arc<str>> = HashMap::new();
        let mut id = |epoch: Epoch| {
            Arc::clone(
                ids.entry(epoch.id)
                    .or_insert_with_key(|id| Arc::from(&**id)),
            )
        };
        let mut joined: Vec<Option<Arc<str>>> = all
            .into_iter()
            .enumerate()
            .map(|(slot, epoch)| match epoch {
                Ok(epoch) => Some(id(epoch)),
                Err(_) => held.as_ref().and_then(|h| h[slot].clone()),
            })
            .collect();
        for (slot, epoch) in open.iter().zip(first) {
            if let Ok(epoch) = epoch {
                joined[usize::from(*slot)] = Some(id(epoch));
            }
        }
        *self.epochs.lock().unwrap_or_else(|e| e.into_inner()) = Some(joined);
        self.joined.fetch_max(connection, Ordering::Relaxed);
        tracing::info!(epochs = ids.len(), failed, "rooms: joined Redis' epoch");
        if failed > 0 {
            tracing::warn!(
                slots = failed,
                "rooms: some slots' epochs could not be read: tried again in a second"
            );
            Watched::queue_join(self, Duration::from_secs(1));
        }
        if (catching_up || late_changes) && !longest.is_zero() {
            let this = Arc::clone(self);
            let changed: Vec<bool> = (0..slots::SLOTS).map(|s| changed[s] || late[s]).collect();
            tokio::spawn(async move {
                tokio::time::sleep(longest).await;
                this.catch_up_all(again, &changed).await;
            });
        }
    }

    /// Open rooms catch up: every one (`all`), or those of the slots whose epoch
    /// `changed` (into a new epoch).
    async fn catch_up_all(&self, all: bool, changed: &[bool]) {
        for room in self.open_rooms() {
            let new = changed
                .get(usize::from(room_slot(&room.id)))
                .is_some_and(|c| *c);
            if !all && !new {
                continue;
            }
            if let Err(e) = self.catch_up(&room, new).await {
                tracing::warn!(room = %room.id, error = %e, "redis link: a room could not catch up");
            }
        }
    }

    /// The epoch this node gives room `room`'s seqs in, once it has joined Redis'.
    fn epoch(&self, room: &str) -> Option<Arc<str>> {
        self.epochs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|epochs| epochs[usize::from(room_slot(room))].clone())
    }

    /// Why the node gives no seq now, if it does not.
    fn unready(&self) -> Option<String> {
        if self
            .epochs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
            || self.joined.load(Ordering::Relaxed) < self.connections.load(Ordering::Relaxed)
        {
            return Some("joining Redis' epoch".into());
        }
        let until = *self
            .settling_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        until
            .is_some_and(|t| Instant::now() < t)
            .then(|| "settling a new epoch: Redis came back empty".into())
    }

    /// Settles every seq given in `room` after its last settled one, as a room opens:
    /// from the store (recorded before settled), a void where the store lacks one that
    /// is not pending. A gap longer than [`CATCH_UP_MAX`] restarts the room's history
    /// after it, so its members are told instead of skipping it silently; so does a
    /// new epoch (`changed`) that settled before this node raised the room's counter.
    async fn catch_up(&self, room: &Arc<Room>, changed: bool) -> Result<(), StoreError> {
        let redis = self.redis.get().ok_or_else(|| unavailable("not started"))?;
        let floor = self.floor(room).await?;
        let given = redis.given(&room.id, floor).await.map_err(unavailable)?;
        if changed && !given.settling {
            tracing::warn!(room = %room.id, seq = given.last, "rooms: a new epoch settled before this node raised the room's counter: its members are told to reload");
            let _order = self.lock();
            self.publish(room.skip_to(given.last.max(floor), self.clock.now()));
            return Ok(());
        }
        let (given, pending) = (given.last, given.pending);
        let mut from = room.last_seq();
        if given <= from {
            return Ok(());
        }
        if self
            .catch_up_from_stream(redis, room, from, given, &pending)
            .await
        {
            return Ok(());
        }
        let gap = usize::try_from(given - from).unwrap_or(usize::MAX);
        let mut want = gap.saturating_add(pending.len()).saturating_add(16);
        let tail = loop {
            let max = want.min(CATCH_UP_MAX);
            let tail =
                self.store.tail(&room.id, max).await?.ok_or_else(|| {
                    StoreError::NotFound(format!("the room `{}` is gone", room.id))
                })?;
            let whole = tail.events.len() < max;
            let reaches = tail.events.first().is_none_or(|(s, _)| *s <= from + 1);
            if whole || reaches || want >= CATCH_UP_MAX {
                break tail;
            }
            want = want.saturating_mul(4);
        };
        let _order = self.lock();
        // What the store no longer gives back (or a counter far ahead) is not replayed.
        let cut = match tail.events.first() {
            Some((first, _)) if *first > from + 1 && tail.events.len() >= CATCH_UP_MAX => first - 1,
            _ => from,
        }
        .max(given.saturating_sub(CATCH_UP_MAX as u64));
        if cut > from {
            self.publish(room.skip_to(cut, self.clock.now()));
            from = room.last_seq().max(cut);
        }
        let mut events = tail.events.into_iter().peekable();
        for seq in from + 1..=given {
            while events.next_if(|(s, _)| *s < seq).is_some() {}
            match events.next_if(|(s, _)| *s == seq) {
                Some((_, event)) => self.settle_event(room, seq, Some(event)),
                None if pending.contains(&seq) => {}
                None => self.settle_event(room, seq, None),
            }
        }
        Ok(())
    }

    /// Settles `room`'s seqs after `from` up to `given` from the room's Redis stream,
    /// when it still holds every one of them that is not pending (it keeps the last
    /// events settled, voids included): true when it did. Otherwise (trimmed, lost,
    /// or a gap longer than [`STREAM_CATCH_UP_MAX`]) the store fills it.
    async fn catch_up_from_stream(
        &self,
        redis: &RedisRooms,
        room: &Arc<Room>,
        from: u64,
        given: u64,
        pending: &[u64],
    ) -> bool {
        let gap = usize::try_from(given - from).unwrap_or(usize::MAX);
        if gap > STREAM_CATCH_UP_MAX {
            return false;
        }
        let Ok(entries) = redis.stream_tail(&room.id, gap + pending.len() + 1).await else {
            return false;
        };
        let mut settled: BTreeMap<u64, Option<Chat>> = BTreeMap::new();
        for bytes in entries {
            if let Ok((seq, chat)) = wire::decode(&bytes) {
                if seq > from && seq <= given {
                    settled.insert(seq, chat);
                }
            }
        }
        let complete =
            (from + 1..=given).all(|seq| settled.contains_key(&seq) || pending.contains(&seq));
        if !complete {
            return false;
        }
        let _order = self.lock();
        let events = settled.len();
        for (seq, chat) in settled {
            self.settle(room, seq, chat);
        }
        tracing::info!(room = %room.id, events, "rooms: caught up from the Redis stream");
        true
    }

    /// The seq a room's Redis counter must not be below: the highest this node knows
    /// of, and the store's last (another node's acknowledged events are there).
    async fn floor(&self, room: &Room) -> Result<u64, StoreError> {
        let stored = self
            .store
            .tail(&room.id, 0)
            .await?
            .map_or(0, |t| t.last_seq);
        Ok(stored.max(room.highest_seq()))
    }
}

/// Tells every node that epochs were made (if this read made any), so that they raise
/// their rooms' counters while the new epochs settle.
async fn announce_made<E>(redis: &RedisRooms, read: &[Result<Epoch, E>]) {
    if read.iter().flatten().any(|e| e.made) {
        if let Err(e) = redis.publish(EPOCHS, b"").await {
            tracing::warn!(error = %e, "rooms: new epochs could not be announced (the other nodes learn of them as their orders are refused)");
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl Orderer for RedisOrderer {
    fn order<'a>(&'a self, room: &'a Room, chat: Chat, _now: Millis) -> Giving<'a> {
        Giving::Later(Box::pin(async move {
            let epoch = self
                .watched
                .epoch(&room.id)
                .ok_or_else(|| unavailable("this node has not joined Redis' epoch yet"))?;
            let mut seeded = false;
            let seq = loop {
                match self
                    .redis
                    .order(&room.id, &epoch)
                    .await
                    .map_err(unavailable)?
                {
                    Ordered::Seq(seq) => break seq,
                    Ordered::Unseeded if !seeded => {
                        // The room has no counter in this epoch: it continues past
                        // every seq this node knows of and the store holds.
                        let floor = self.watched.floor(room).await?;
                        self.redis
                            .given(&room.id, floor)
                            .await
                            .map_err(unavailable)?;
                        seeded = true;
                    }
                    Ordered::Unseeded => return Err(unavailable("the room's counter is gone")),
                    Ordered::OtherEpoch => {
                        Watched::queue_join(&self.watched, Duration::ZERO);
                        return Err(unavailable(
                            "Redis came back empty: this node is joining its new epoch",
                        ));
                    }
                    Ordered::Settling => {
                        return Err(unavailable(
                            "Redis came back empty: the nodes are settling its new epoch",
                        ))
                    }
                }
            };
            Ok(Event::new(
                Arc::clone(&room.id),
                seq,
                Arc::new(ChatEvent::new(chat)),
            ))
        }))
    }

    fn watch<'a>(&'a self, id: &'a str, floor: u64) -> StoreFuture<'a, Option<Given>> {
        Box::pin(async move {
            self.watched.opening(id);
            let given = async {
                self.link
                    .subscribe(streamhub_pubsub::redis::channel(id))
                    .await
                    .map_err(unavailable)?;
                self.redis.given(id, floor).await.map_err(unavailable)
            }
            .await;
            match given {
                Ok(given) => Ok(Some(Given {
                    last: given.last,
                    pending: given.pending,
                })),
                Err(e) => {
                    self.watched.failed(id);
                    Err(e)
                }
            }
        })
    }

    fn opened(&self, room: &Arc<Room>) {
        self.watched.opened(room);
    }

    fn closes_idle(&self) -> bool {
        true
    }

    fn closed(&self, rooms: &[Arc<Room>]) {
        self.watched.closed(rooms, &self.link);
    }

    fn abandon(&self, id: &str) {
        self.watched.failed(id);
    }

    fn unready(&self) -> Option<String> {
        self.link.down().or_else(|| self.watched.unready())
    }

    fn publish<'a>(
        &'a self,
        room: &'a Room,
        seq: u64,
        chat: Option<&'a Chat>,
    ) -> Option<StoreFuture<'a, ()>> {
        Some(Box::pin(async move {
            match self
                .redis
                .settle(&room.id, seq, &wire::encode(seq, chat))
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(unavailable(
                    "the event was voided by another node before it settled",
                )),
                Err(e) => Err(unavailable(e)),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::{LocalOrderer, Rooms};
    use crate::store::memory::demo::DemoSize;
    use crate::store::memory::MemoryStore;
    use crate::store::SystemClock;
    use streamhub_pubsub::HistoryLimits;

    /// The seqs of the room events published, in order, and the changes.
    #[derive(Debug, Default)]
    struct Seqs(Mutex<Vec<u64>>, Mutex<Vec<Change>>);

    impl EventSink for Seqs {
        fn publish(&self, notice: Notice) {
            match notice {
                Notice::Room(e) => self.0.lock().unwrap().push(e.seq),
                Notice::Changed(c) => self.1.lock().unwrap().extend(c.iter().cloned()),
                Notice::Cleared => {}
            }
        }
    }

    impl Seqs {
        fn seen(&self) -> Vec<u64> {
            self.0.lock().unwrap().clone()
        }
    }

    fn watched(events: Arc<Seqs>) -> Watched {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (store, _) = MemoryStore::demo(
            DemoSize::SMALL,
            HistoryLimits::default(),
            Arc::clone(&clock),
        );
        Watched {
            rooms: Mutex::default(),
            events,
            clock,
            store: Arc::new(store),
            redis: OnceLock::new(),
            epochs: Mutex::default(),
            settling_until: Mutex::default(),
            joining: tokio::sync::Mutex::const_new(()),
            link_rt: OnceLock::new(),
            settle: Duration::from_secs(3),
            connections: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            rejoin: AtomicBool::new(false),
            node_rooms: Arc::default(),
        }
    }

    /// Room `ch_u2` of the demo data, opened on one node.
    async fn ch_u2() -> Arc<Room> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let limits = HistoryLimits::default();
        let (store, _) = MemoryStore::demo(DemoSize::SMALL, limits, Arc::clone(&clock));
        let rooms = Rooms::new(Arc::new(store), Box::new(LocalOrderer), clock, limits);
        rooms.open("ch_u2").await.unwrap().unwrap()
    }

    fn deleted(n: u64) -> Chat {
        Chat::Deleted { message_seq: n }
    }

    #[tokio::test]
    async fn what_comes_while_a_room_opens_settles_in_order_once_it_is_open() {
        let room = ch_u2().await;
        let last = room.last_seq();
        let events = Arc::new(Seqs::default());
        let watched = watched(Arc::clone(&events));
        let channel = streamhub_pubsub::redis::channel("ch_u2");
        watched.receive(&channel, &wire::encode(last + 1, None));
        assert!(events.seen().is_empty(), "a room not watched takes nothing");

        watched.opening("ch_u2");
        watched.receive(&channel, &wire::encode(last + 3, Some(&deleted(3))));
        watched.receive(&channel, &wire::encode(last + 1, Some(&deleted(1))));
        watched.receive(&channel, b"not an event");
        assert!(events.seen().is_empty(), "nothing settles while it opens");
        watched.opened(&room);
        assert_eq!(events.seen(), [last + 1], "+3 waits for +2");
        watched.receive(&channel, &wire::encode(last + 2, None));
        assert_eq!(
            events.seen(),
            [last + 1, last + 3],
            "the void lets +3 through"
        );
        watched.receive(&channel, &wire::encode(last + 3, Some(&deleted(3))));
        assert_eq!(
            events.seen(),
            [last + 1, last + 3],
            "a duplicate is dropped"
        );
        assert_eq!(room.last_seq(), last + 3);
    }

    #[tokio::test]
    async fn a_ban_from_another_node_drops_what_the_caches_know_of_the_user_here() {
        let room = ch_u2().await;
        let events = Arc::new(Seqs::default());
        let watched = watched(Arc::clone(&events));
        watched.opening("ch_u2");
        watched.opened(&room);
        let ban = Chat::Banned {
            user_id: "u7".into(),
            until: None,
        };
        let seq = room.last_seq() + 1;
        watched.receive("sh:{ch_u2}", &wire::encode(seq, Some(&ban)));
        assert_eq!(events.seen(), [seq]);
        assert_eq!(
            *events.1.lock().unwrap(),
            [Change::Membership {
                user_id: "u7".into(),
                channel_id: "ch_u2".into()
            }]
        );
    }

    #[test]
    fn a_failed_opening_drops_what_came_once_no_other_is_under_way() {
        let watched = watched(Arc::default());
        watched.opening("ch_u2");
        watched.opening("ch_u2");
        watched.receive("sh:{ch_u2}", &wire::encode(9, None));
        watched.failed("ch_u2");
        assert!(
            watched.lock().contains_key("ch_u2"),
            "one opening is still under way"
        );
        watched.failed("ch_u2");
        assert!(watched.lock().is_empty());
    }
}
