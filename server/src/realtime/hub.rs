//! A shard's rooms: who is joined here (room protocol members and GraphQL
//! subscriptions), and delivery of each room's events in seq order, exactly once.
//!
//! Events come whole through the rings ([`super::fanout`]). For each, the room's
//! continuity decides: the next seq is delivered; an old one is dropped; after a gap
//! the missing events are read from the room's history first, and when the history no
//! longer holds them every subscriber is told (room protocol members get `joined` with
//! `recovered:false` again, GraphQL subscriptions a `HISTORY_UNAVAILABLE` error), never
//! skipped in silence ([`plan`] decides, a pure function).
//!
//! Delivery to room protocol members is synchronous: a frame encoded once per event
//! (shared by every shard) onto each member's queue. A subscription payload is rendered
//! once per (document, operation, variables, and viewer when the selection depends on
//! one) by executing its selection, which can await the store; those renders are jobs
//! that the hub's task runs in order, each with the subscribers the event had when it
//! was delivered, so a subscription's events are rendered in seq order after its
//! replay.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use graphql_exec::coerce::Variables;
use streamhub_pubsub::seq::{continuity, Continuity};
use streamhub_pubsub::{Chat, Event};
use streamhub_ws::queue::SendQueue;
use streamhub_ws::{gqlws, room};
use tokio::sync::Notify;

use super::fanout::{Fanout, Inbox};
use crate::auth::Viewer;
use crate::domain::events::Notice;
use crate::domain::values::date_time;
use crate::domain::{Domain, Obj};
use crate::graphql::documents::Doc;
use crate::http::stream::EventStream;
use crate::rooms::{self, Replay};
use crate::store::cache::Cache;
use crate::store::Change;

/// A connection's id within its shard.
pub type ConnId = u64;

/// Why a join is refused: (code, message) for the protocol's error.
pub type Refusal = (&'static str, String);

/// What a GraphQL subscription listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `chatEvents`: room events.
    ChatEvents,
    /// `streamUpdates`: live status, title, category.
    StreamUpdates,
    /// `viewerCount`: emitted when it changes, at most once a second.
    ViewerCount,
}

impl Topic {
    /// The topic of a subscription root field; None for a field that is not one.
    pub fn of_field(name: &str) -> Option<Topic> {
        match name {
            "chatEvents" => Some(Topic::ChatEvents),
            "streamUpdates" => Some(Topic::StreamUpdates),
            "viewerCount" => Some(Topic::ViewerCount),
            _ => None,
        }
    }
}

/// Where a subscription's events go.
#[derive(Debug)]
pub enum Sink {
    /// A `graphql-transport-ws` connection's send queue: `next` frames with the
    /// subscription's id.
    WebSocket(Rc<SendQueue>),
    /// The HTTP response streaming this one subscription (SSE or multipart).
    Http(Rc<EventStream>),
}

impl Sink {
    fn is_closing(&self) -> bool {
        match self {
            Sink::WebSocket(q) => q.is_closing(),
            Sink::Http(s) => s.is_closing(),
        }
    }
}

/// One GraphQL subscription, over WebSocket or streamed over HTTP.
#[derive(Debug)]
pub struct Subscription {
    /// Its connection (for an HTTP stream, an id of its own from [`Hub::connection`]).
    pub conn: ConnId,
    /// The client's operation id (empty for an HTTP stream: one subscription each).
    pub id: Box<str>,
    /// Where its events go.
    pub sink: Sink,
    /// The prepared document.
    pub doc: Rc<Doc>,
    /// The operation's index in the document.
    pub op: usize,
    /// The coerced variables.
    pub vars: Variables,
    /// The variables as sent, to render once per distinct value.
    pub vars_key: String,
    /// The subscriber, when the selection depends on who asks (then its payload is
    /// rendered per viewer); None renders it once for everyone.
    pub viewer: Option<Rc<Viewer>>,
    /// What it listens to.
    pub topic: Topic,
}

#[derive(Debug)]
struct Room {
    /// The node's room (held while this shard has members or subscriptions there):
    /// its history, for gaps.
    node: rooms::Held,
    /// The last seq delivered to this shard's members.
    delivered: u64,
    members: Vec<(ConnId, Rc<SendQueue>)>,
    subs: Vec<Rc<Subscription>>,
    /// The viewer count last emitted to `viewerCount` subscribers.
    viewers_sent: Option<u32>,
}

impl Room {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.subs.is_empty()
    }

    fn subs_of(&self, topic: Topic) -> Vec<Rc<Subscription>> {
        self.subs
            .iter()
            .filter(|s| s.topic == topic && !s.sink.is_closing())
            .cloned()
            .collect()
    }
}

/// What a room must do with an incoming event (see [`plan`]).
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Deliver these events, in order; the room has then delivered up to `through`
    /// (past the last of them when voids follow it).
    Deliver {
        /// The events.
        events: Vec<Event>,
        /// The seq delivered up to.
        through: u64,
    },
    /// The events up to `last` are lost to this shard: tell every subscriber, then go
    /// on after `last`.
    Resync {
        /// The room's last seq.
        last: u64,
    },
}

/// What a room that delivered up to `delivered` does with `event`, given its history
/// (`since`): nothing for an event it has, the event when it is the next one, the gap
/// and the event when the history holds the gap, else a resync.
pub fn plan(
    delivered: u64,
    event: &Event,
    since: impl FnOnce(u64) -> Option<Replay>,
) -> Option<Step> {
    match continuity(delivered, event.seq) {
        Continuity::Stale => None,
        Continuity::Next => Some(Step::Deliver {
            events: vec![event.clone()],
            through: event.seq,
        }),
        // Voids in the gap are passed over: the history leaves them out.
        Continuity::Gap { .. } => match since(delivered) {
            Some(Replay::Events(events, _)) => Some(Step::Deliver {
                events: events.into_iter().filter(|e| e.seq <= event.seq).collect(),
                through: event.seq,
            }),
            Some(Replay::Lost(last)) => Some(Step::Resync {
                last: last.max(event.seq),
            }),
            // The history is behind the event (it cannot be on one node): deliver what
            // came, as a resync from it.
            None => Some(Step::Resync { last: event.seq }),
        },
    }
}

/// A render the hub's task runs: `root` for each of `subs`.
#[derive(Debug)]
struct Job {
    subs: Vec<Rc<Subscription>>,
    root: Obj,
    /// The room event's seq (SSE's event id).
    seq: Option<u64>,
}

/// One shard's rooms.
#[derive(Debug)]
pub struct Hub {
    domain: Arc<Domain>,
    fanout: Arc<Fanout>,
    cache: Rc<Cache>,
    inbox: Inbox,
    jobs: RefCell<VecDeque<Job>>,
    wake: Notify,
    /// The buffer notices are taken into (kept, so that taking allocates nothing).
    taken: RefCell<Vec<Notice>>,
    rooms: RefCell<HashMap<Box<str>, Room, foldhash::fast::RandomState>>,
    next_conn: Cell<ConnId>,
}

impl Hub {
    /// A hub over the domain, hearing of changes on `inbox` (this shard's end of
    /// `fanout`), keeping `cache` current.
    pub fn new(domain: Arc<Domain>, fanout: Arc<Fanout>, inbox: Inbox, cache: Rc<Cache>) -> Hub {
        Hub {
            domain,
            fanout,
            cache,
            inbox,
            jobs: RefCell::default(),
            wake: Notify::new(),
            taken: RefCell::new(Vec::new()),
            rooms: RefCell::default(),
            next_conn: Cell::new(1),
        }
    }

    /// The shard's cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// A fresh connection id.
    pub fn connection(&self) -> ConnId {
        let id = self.next_conn.get();
        self.next_conn.set(id + 1);
        id
    }

    /// Called before a request reads: when a mutation answered since this shard last
    /// read the rings, reads them now, so the cache has dropped what it changed.
    pub fn sync(&self) {
        let writes = self.fanout.writes();
        if writes > self.cache.applied() {
            self.take();
            self.cache.caught_up(writes);
        }
    }

    /// Takes what the rings hold: the cache drops what changed, members get their
    /// frames, subscriptions' renders are queued.
    fn take(&self) {
        let mut notices = std::mem::take(&mut *self.taken.borrow_mut());
        let lapped = self.inbox.take_now(&mut notices);
        if notices.is_empty() && !lapped {
            *self.taken.borrow_mut() = notices;
            return;
        }
        let now = self.domain.now();
        let mut cleared = lapped;
        for n in notices.drain(..) {
            match n {
                Notice::Room(e) => {
                    self.cache.room_changed(&e.room, now);
                    self.advance(&e);
                }
                Notice::Changed(changes) => {
                    for c in changes.iter() {
                        self.cache.invalidate(c, now);
                        if let Change::Stream(channel) = c {
                            self.stream_changed(channel);
                        }
                    }
                }
                Notice::Cleared => cleared = true,
            }
        }
        if cleared {
            self.cache.clear(now);
        }
        *self.taken.borrow_mut() = notices;
        if lapped {
            // Notices were lost: what they said is read again from the rooms.
            let rooms: Vec<Arc<rooms::Room>> = self
                .rooms
                .borrow()
                .values()
                .map(|r| Arc::clone(&r.node))
                .collect();
            for r in rooms {
                self.catch_up(&r);
                self.stream_changed(&r.id);
            }
        }
        // The hub's task renders what was queued; with nothing queued it sleeps on.
        if !self.jobs.borrow().is_empty() {
            self.wake.notify_one();
        }
    }

    /// Brings the local room up to its node room's last seq.
    fn catch_up(&self, node: &rooms::Room) {
        let last = node.last_seq();
        let Some(delivered) = self.rooms.borrow().get(&*node.id).map(|r| r.delivered) else {
            return;
        };
        if delivered >= last {
            return;
        }
        let step = match node.since(delivered, self.domain.rooms.now()) {
            Ok(Replay::Events(events, through)) => Step::Deliver { events, through },
            // The gap is gone: resync at the last seq.
            Ok(Replay::Lost(_)) | Err(_) => Step::Resync { last },
        };
        self.apply(&node.id, step);
    }

    /// Delivers `event` to its room here, if the room has anyone here.
    fn advance(&self, event: &Event) {
        let step = {
            let rooms = self.rooms.borrow();
            let Some(room) = rooms.get(&*event.room) else {
                return;
            };
            let now = self.domain.rooms.now();
            plan(room.delivered, event, |after| {
                room.node.since(after, now).ok()
            })
        };
        if let Some(step) = step {
            self.apply(&event.room, step);
        }
    }

    fn apply(&self, room_id: &str, step: Step) {
        let mut rooms = self.rooms.borrow_mut();
        let Some(room) = rooms.get_mut(room_id) else {
            return;
        };
        room.members.retain(|(_, q)| !q.is_closing());
        match step {
            Step::Deliver { events, through } => {
                let subs = room.subs_of(Topic::ChatEvents);
                for e in events {
                    if e.seq <= room.delivered {
                        continue;
                    }
                    room.delivered = e.seq;
                    if !room.members.is_empty() {
                        let frame = e.payload.frame(|chat| encode(&e.room, e.seq, chat));
                        for (_, q) in &room.members {
                            // A member past its queue limit is closed with 4008 by its queue.
                            q.push(frame.clone());
                        }
                    }
                    if !subs.is_empty() {
                        self.jobs.borrow_mut().push_back(Job {
                            subs: subs.clone(),
                            seq: Some(e.seq),
                            root: Obj::RoomEvent(Rc::new(e)),
                        });
                    }
                }
                room.delivered = room.delivered.max(through);
            }
            Step::Resync { last } => {
                tracing::warn!(
                    room = room_id,
                    from = room.delivered,
                    to = last,
                    "a shard fell behind the room's history; its subscribers resync"
                );
                room.delivered = last;
                let frame = room::joined(room_id, last, false);
                for (_, q) in &room.members {
                    q.push(frame.clone());
                }
                let lost: Vec<Rc<Subscription>> = room.subs_of(Topic::ChatEvents);
                room.subs.retain(|s| s.topic != Topic::ChatEvents);
                for s in lost {
                    history_lost(&s);
                }
                if room.is_empty() {
                    rooms.remove(room_id);
                }
            }
        }
    }

    /// Queues `streamUpdates` renders for a channel's room.
    fn stream_changed(&self, room_id: &str) {
        let subs = match self.rooms.borrow().get(room_id) {
            Some(room) => room.subs_of(Topic::StreamUpdates),
            None => return,
        };
        if !subs.is_empty() {
            self.jobs.borrow_mut().push_back(Job {
                subs,
                root: Obj::ChannelRoot(Rc::new(room_id.to_owned())),
                seq: None,
            });
        }
    }

    /// The local room for `room_id`, made (from the node's room) when it is not here,
    /// and brought up to date.
    async fn open(&self, room_id: &str) -> Result<(), Refusal> {
        if !self.rooms.borrow().contains_key(room_id) {
            let node = loop {
                let node = self
                    .domain
                    .rooms
                    .open(room_id)
                    .await
                    .map_err(|e| ("SERVICE_UNAVAILABLE", e.to_string()))?
                    .ok_or_else(|| ("NOT_FOUND", format!("no channel has id `{room_id}`")))?;
                // Closed since it was opened (idle): the channel's next room is opened.
                if let Some(held) = node.hold() {
                    break held;
                }
            };
            // Notices still in the rings for seqs up to the history's last are stale
            // for the new room and dropped when taken below.
            self.rooms
                .borrow_mut()
                .entry(room_id.into())
                .or_insert_with(|| Room {
                    delivered: node.last_seq(),
                    node,
                    members: Vec::new(),
                    subs: Vec::new(),
                    viewers_sent: None,
                });
        }
        self.take();
        let node = self
            .rooms
            .borrow()
            .get(room_id)
            .map(|r| Arc::clone(&r.node));
        if let Some(node) = node {
            self.catch_up(&node);
        }
        Ok(())
    }

    /// The events of `room_id` after `since`, up to what this shard delivered: Ok(None)
    /// when the gap is older than the history kept.
    fn replay(&self, room_id: &str, since: u64) -> Result<(u64, Option<Vec<Event>>), Refusal> {
        let rooms = self.rooms.borrow();
        let room = rooms
            .get(room_id)
            .ok_or_else(|| ("NOT_FOUND", format!("no channel has id `{room_id}`")))?;
        let last = room.delivered;
        if since > last {
            return Err((
                "BAD_USER_INPUT",
                format!("`since` {since} is past the room's last seq {last}"),
            ));
        }
        Ok(match room.node.since(since, self.domain.rooms.now()) {
            Ok(Replay::Events(events, _)) => (
                last,
                Some(events.into_iter().filter(|e| e.seq <= last).collect()),
            ),
            Ok(Replay::Lost(_)) | Err(_) => (last, None),
        })
    }

    /// Joins `conn` to `room` (room protocol). Queues `joined` (with the room's last
    /// seq) and, when `since` is given and within the history kept, every event after it,
    /// in order; later events come by delivery. Returns false when already joined.
    pub async fn join(
        &self,
        conn: ConnId,
        queue: &Rc<SendQueue>,
        room_id: &str,
        since: Option<u64>,
    ) -> Result<bool, Refusal> {
        let joined = |rooms: &HashMap<Box<str>, Room, _>| {
            rooms
                .get(room_id)
                .is_some_and(|r| r.members.iter().any(|(c, _)| *c == conn))
        };
        if joined(&self.rooms.borrow()) {
            return Ok(false);
        }
        self.open(room_id).await?;
        if joined(&self.rooms.borrow()) {
            return Ok(false);
        }
        let (last, replay) = match since {
            None => (
                self.rooms.borrow().get(room_id).map_or(0, |r| r.delivered),
                Some(Vec::new()),
            ),
            Some(s) => self.replay(room_id, s)?,
        };
        queue.push(room::joined(
            room_id,
            last,
            since.is_some() && replay.is_some(),
        ));
        for e in replay.into_iter().flatten() {
            queue.push(e.payload.frame(|chat| encode(&e.room, e.seq, chat)));
        }
        if let Some(room) = self.rooms.borrow_mut().get_mut(room_id) {
            room.members.push((conn, Rc::clone(queue)));
        }
        self.domain.presence.joined(room_id);
        Ok(true)
    }

    /// Removes `conn` from `room`; false if it was not there.
    pub fn leave(&self, conn: ConnId, room_id: &str) -> bool {
        {
            let mut rooms = self.rooms.borrow_mut();
            let Some(room) = rooms.get_mut(room_id) else {
                return false;
            };
            let before = room.members.len();
            room.members.retain(|(c, _)| *c != conn);
            if room.members.len() == before {
                return false;
            }
            if room.is_empty() {
                rooms.remove(room_id);
            }
        }
        self.domain.presence.left(room_id);
        true
    }

    /// Starts a GraphQL subscription on `room`. For `chatEvents` with `since`, the events
    /// after it are sent first; a gap older than the history kept is refused with
    /// `HISTORY_UNAVAILABLE`.
    pub async fn subscribe(
        &self,
        sub: Rc<Subscription>,
        room_id: &str,
        since: Option<u64>,
    ) -> Result<(), Refusal> {
        self.open(room_id).await?;
        if let Some(s) = since {
            let (_, replay) = self.replay(room_id, s)?;
            let Some(events) = replay else {
                return Err((
                    "HISTORY_UNAVAILABLE",
                    "`sinceSeq` is older than the history kept".to_owned(),
                ));
            };
            let mut jobs = self.jobs.borrow_mut();
            for e in events {
                jobs.push_back(Job {
                    subs: vec![Rc::clone(&sub)],
                    seq: Some(e.seq),
                    root: Obj::RoomEvent(Rc::new(e)),
                });
            }
        }
        if let Some(room) = self.rooms.borrow_mut().get_mut(room_id) {
            room.subs.push(sub);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Stops subscription `id` of `conn` on `room`.
    pub fn unsubscribe(&self, conn: ConnId, id: &str, room_id: &str) {
        let mut rooms = self.rooms.borrow_mut();
        if let Some(room) = rooms.get_mut(room_id) {
            room.subs.retain(|s| !(s.conn == conn && &*s.id == id));
            if room.is_empty() {
                rooms.remove(room_id);
            }
        }
    }

    /// Delivers what the rings bring and runs the renders, in order, until the shard
    /// stops.
    pub async fn run(self: Rc<Self>) {
        loop {
            if self.jobs.borrow().is_empty() {
                tokio::select! {
                    () = self.inbox.ready() => {}
                    () = self.wake.notified() => {}
                }
            }
            self.take();
            loop {
                let job = self.jobs.borrow_mut().pop_front();
                let Some(job) = job else { break };
                self.deliver_to(&job.subs, job.root, job.seq).await;
            }
        }
    }

    /// Emits changed viewer counts to `viewerCount` subscribers, once a second at most,
    /// until the shard stops.
    pub async fn run_viewer_counts(self: Rc<Self>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let changed: Vec<(Vec<Rc<Subscription>>, Rc<String>)> = {
                let mut rooms = self.rooms.borrow_mut();
                rooms
                    .iter_mut()
                    .filter_map(|(id, room)| {
                        let subs = room.subs_of(Topic::ViewerCount);
                        let now = self.domain.presence.count(id);
                        if subs.is_empty() || room.viewers_sent == Some(now) {
                            return None;
                        }
                        room.viewers_sent = Some(now);
                        Some((subs, Rc::new(id.to_string())))
                    })
                    .collect()
            };
            for (subs, channel) in changed {
                self.deliver_to(&subs, Obj::ChannelRoot(channel), None)
                    .await;
            }
        }
    }

    /// Renders `root` once per distinct (document, operation, variables, and viewer
    /// for selections that depend on one) and queues it on every subscription.
    async fn deliver_to(&self, subs: &[Rc<Subscription>], root: Obj, seq: Option<u64>) {
        type Key<'a> = (*const Doc, usize, &'a str, Option<&'a str>);
        let mut rendered: Vec<(Key<'_>, Option<Vec<u8>>)> = Vec::new();
        for s in subs {
            if s.sink.is_closing() {
                continue;
            }
            let key = (
                Rc::as_ptr(&s.doc),
                s.op,
                s.vars_key.as_str(),
                s.viewer.as_deref().map(|v| &*v.id),
            );
            let at = match rendered.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    let p = self.render(s, root.clone()).await;
                    rendered.push((key, p));
                    rendered.len() - 1
                }
            };
            push_next(s, rendered[at].1.as_deref(), seq);
        }
    }

    /// The execution result of a subscription's selection for one event; None when
    /// execution failed inside the server (a panic, i.e. a bug), which is logged and
    /// costs only the subscriptions that asked for this payload, not the shard's hub.
    async fn render(&self, sub: &Subscription, root: Obj) -> Option<Vec<u8>> {
        let domain = &self.domain;
        let run = async {
            let req = match domain.request(&self.cache, sub.viewer.as_deref()).await {
                Ok(req) => req,
                Err(e) => return unavailable(&e.to_string()),
            };
            graphql_exec::exec::execute(
                &domain.schema,
                sub.doc.plan_at(sub.op),
                &req,
                root,
                &sub.vars,
            )
            .await
        };
        CatchUnwind(Box::pin(run))
            .await
            .map_err(|_| {
                tracing::error!("a subscription's execution failed; closing its connection")
            })
            .ok()
    }
}

/// A future that turns a panic while it is polled into an `Err`.
struct CatchUnwind<'a, T>(Pin<Box<dyn Future<Output = T> + 'a>>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = Result<T, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// A result whose only error is `SERVICE_UNAVAILABLE`.
fn unavailable(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "errors": [{"message": message, "extensions": {"code": "SERVICE_UNAVAILABLE"}}]
    }))
    .unwrap_or_default()
}

/// Queues `payload` (the event at `seq`, for room events) for `sub` as `next`; without
/// one (its execution failed), closes the subscriber's connection with 4500, or ends
/// its HTTP stream with an `INTERNAL_SERVER_ERROR`.
fn push_next(sub: &Subscription, payload: Option<&[u8]>, seq: Option<u64>) {
    match (&sub.sink, payload) {
        (Sink::WebSocket(q), Some(p)) => {
            q.push(gqlws::next(&sub.id, p));
        }
        (Sink::WebSocket(q), None) => q.close_with(streamhub_ws::frame::close(
            gqlws::close::INTERNAL,
            "Internal server error",
        )),
        (Sink::Http(s), Some(p)) => {
            s.next(p, seq);
        }
        (Sink::Http(s), None) => {
            s.next(INTERNAL_ERROR, None);
            s.complete();
        }
    }
}

/// Tells a `chatEvents` subscription that events it should have had are lost: a
/// `HISTORY_UNAVAILABLE` error (graphql-ws `error`, which ends it; on an HTTP stream a
/// result with the error, then the end), so it can subscribe again from what it has.
fn history_lost(sub: &Subscription) {
    let errors = serde_json::json!([{
        "message": "events of this room were lost to this subscription; subscribe again with `sinceSeq`",
        "extensions": {"code": "HISTORY_UNAVAILABLE"}
    }]);
    match &sub.sink {
        Sink::WebSocket(q) => {
            q.push(gqlws::error(&sub.id, &errors));
        }
        Sink::Http(s) => {
            let body =
                serde_json::to_vec(&serde_json::json!({ "errors": errors })).unwrap_or_default();
            s.next(&body, None);
            s.complete();
        }
    }
}

/// The result an HTTP stream gets when its payload could not be rendered.
const INTERNAL_ERROR: &[u8] =
    br#"{"errors":[{"message":"Internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#;

/// The room protocol frame of an event.
fn encode(room_id: &str, seq: u64, chat: &Chat) -> Bytes {
    match chat {
        Chat::Message {
            author,
            body,
            sent_at,
        } => room::message(
            room_id,
            seq,
            &format!("msg_{room_id}_{seq}"),
            room::Author {
                id: &author.id,
                login: &author.login,
                display_name: &author.display_name,
            },
            body,
            &date_time(*sent_at),
        ),
        Chat::Deleted { message_seq } => room::deleted(room_id, seq, *message_seq),
        Chat::Banned { user_id, until } => {
            room::banned(room_id, seq, user_id, until.map(date_time).as_deref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::EventSink;
    use crate::domain::DataLayer;
    use crate::metrics::ShardMetrics;
    use crate::store::cache::CacheLimits;
    use crate::store::memory::demo::DemoSize;
    use crate::store::SystemClock;
    use serde_json::{json, Value};
    use std::task::Waker;
    use streamhub_pubsub::history::HistoryLimits;
    use streamhub_pubsub::ChatEvent;

    /// The JSON frames written to `queue` so far (server frames: unmasked, short).
    fn written(queue: &SendQueue) -> Vec<Value> {
        let mut bytes = Vec::new();
        let _ = queue.poll_write_to(&mut Context::from_waker(Waker::noop()), &mut bytes);
        let mut b = &bytes[..];
        let mut out = Vec::new();
        while b.len() >= 2 {
            let (len, head) = match b[1] & 0x7f {
                126 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
                n => (usize::from(n), 2),
            };
            out.push(serde_json::from_slice(&b[head..head + len]).unwrap());
            b = &b[head + len..];
        }
        out
    }

    /// Orders `chat` in `room` and settles it as recorded (not published).
    async fn settled(rooms: &crate::rooms::Rooms, room: &rooms::Room, chat: Chat) -> Event {
        let e = rooms.order(room, chat, rooms.now()).await.unwrap();
        room.settle(e.seq, Some(Arc::clone(&e.payload)), rooms.now());
        e
    }

    /// A hub on one shard whose rooms keep 3 events, and its fan-out.
    fn hub() -> (Rc<Hub>, Arc<Fanout>) {
        let schema = Arc::new(crate::schema::build().unwrap());
        let limits = HistoryLimits {
            max_events: 3,
            max_age: None,
        };
        let data = DataLayer::embedded(DemoSize::SMALL, limits, Arc::new(SystemClock));
        let fanout = Arc::new(Fanout::new(1, 0));
        let domain = Arc::new(Domain::new(schema, data, fanout.clone()));
        let inbox = fanout.attach(0);
        let cache = Rc::new(Cache::new(
            CacheLimits {
                entries: 100,
                ttl: 60_000,
                primary_after_change: 0,
            },
            Arc::new(ShardMetrics::new(0)),
        ));
        (
            Rc::new(Hub::new(domain, fanout.clone(), inbox, cache)),
            fanout,
        )
    }

    #[tokio::test]
    async fn a_shard_lapped_past_its_history_resyncs_its_members_and_delivers_after() {
        let (hub, fanout) = hub();
        let member = SendQueue::new(1 << 20);
        assert_eq!(hub.join(1, &member, "ch_u1", None).await, Ok(true));
        let joined = written(&member);
        let start = joined[0]["seq"].as_u64().unwrap();
        // Ten events are ordered while this shard's ring laps (their notices are lost
        // under a flood of others); the room's history keeps only the last three.
        let rooms = &hub.domain.rooms;
        let room = rooms.open("ch_u1").await.unwrap().unwrap();
        for n in 0..10 {
            settled(rooms, &room, Chat::Deleted { message_seq: n }).await;
        }
        for _ in 0..5000 {
            fanout.publish(Notice::Changed(vec![Change::Live].into()));
        }
        hub.take();
        let frames = written(&member);
        assert_eq!(
            frames,
            vec![json!({"type": "joined", "room": "ch_u1", "seq": start + 10, "recovered": false})],
            "told, never skipped in silence"
        );
        // Then delivery goes on from there.
        let next = settled(rooms, &room, Chat::Deleted { message_seq: 1 }).await;
        fanout.publish(Notice::Room(next));
        hub.take();
        let frames = written(&member);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            (frames[0]["type"].as_str(), frames[0]["seq"].as_u64()),
            (Some("deleted"), Some(start + 11))
        );
    }

    #[test]
    fn a_request_after_a_mutation_answered_never_reads_what_it_changed_from_the_cache() {
        let (hub, fanout) = hub();
        let row = Rc::new(crate::store::Channel {
            id: "ch_u1".into(),
            owner_id: "u1".into(),
            login: "alice".into(),
            title: "old".into(),
            language: "en".into(),
            tags: Vec::new(),
            category_id: None,
            stream_id: None,
            follower_count: 0,
            moderator_ids: Vec::new(),
        });
        hub.cache.put_channel(&row, 0, hub.cache.fill());
        hub.sync();
        assert!(
            hub.cache.channel("ch_u1", 1).is_some(),
            "nothing changed yet"
        );
        // Another shard's mutation: published, the write counter bumped, answered. This
        // shard's hub task has not run; the next request's sync reads the rings.
        fanout.publish(Notice::Changed(
            vec![Change::Channel("ch_u1".into())].into(),
        ));
        assert!(
            hub.cache.channel("ch_u1", 1).is_some(),
            "stale until synced"
        );
        hub.sync();
        assert!(hub.cache.channel("ch_u1", 1).is_none());
        assert_eq!(hub.cache.applied(), fanout.writes());
    }

    #[tokio::test]
    async fn a_gap_the_history_holds_is_filled_in_order() {
        let (hub, fanout) = hub();
        let member = SendQueue::new(1 << 20);
        hub.join(1, &member, "ch_u2", None).await.unwrap();
        let start = written(&member)[0]["seq"].as_u64().unwrap();
        let rooms = &hub.domain.rooms;
        let room = rooms.open("ch_u2").await.unwrap().unwrap();
        let a = settled(rooms, &room, Chat::Deleted { message_seq: 1 }).await;
        let b = settled(rooms, &room, Chat::Deleted { message_seq: 2 }).await;
        // The later event's notice comes first (another shard published it sooner).
        fanout.publish(Notice::Room(b));
        fanout.publish(Notice::Room(a));
        hub.take();
        let seqs: Vec<u64> = written(&member)
            .iter()
            .map(|f| f["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, vec![start + 1, start + 2], "each once, in order");
    }

    fn event(seq: u64) -> Event {
        Event::new(
            "ch_1",
            seq,
            Arc::new(ChatEvent::new(Chat::Deleted { message_seq: 1 })),
        )
    }

    fn seqs(step: &Option<Step>) -> Vec<u64> {
        match step {
            Some(Step::Deliver { events, .. }) => events.iter().map(|e| e.seq).collect(),
            other => panic!("not a delivery: {other:?}"),
        }
    }

    #[test]
    fn the_next_event_is_delivered_and_an_old_one_dropped() {
        let never = |_| -> Option<Replay> { panic!("no history needed") };
        assert_eq!(seqs(&plan(4, &event(5), never)), vec![5]);
        assert_eq!(plan(5, &event(5), never), None);
        assert_eq!(plan(9, &event(5), never), None);
    }

    #[test]
    fn a_gap_is_filled_from_the_history_when_it_holds_it() {
        let step = plan(4, &event(7), |after| {
            assert_eq!(after, 4);
            Some(Replay::Events((5..=8).map(event).collect(), 8))
        });
        // 8 is in the history too, but comes by its own notice.
        assert_eq!(seqs(&step), vec![5, 6, 7]);
    }

    #[test]
    fn voids_in_a_gap_are_passed_over_not_resynced() {
        // 5 and 6 were refused (voids): the history leaves them out.
        let step = plan(4, &event(7), |_| {
            Some(Replay::Events(vec![event(7), event(8)], 8))
        });
        assert_eq!(
            step,
            Some(Step::Deliver {
                events: vec![event(7)],
                through: 7
            })
        );
    }

    #[test]
    fn a_lapped_shard_whose_history_lost_the_gap_resyncs_instead_of_skipping() {
        let step = plan(4, &event(20), |_| Some(Replay::Lost(22)));
        assert_eq!(step, Some(Step::Resync { last: 22 }));
    }
}
