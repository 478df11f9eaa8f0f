//! A shard's rooms: who is joined here (room protocol members and GraphQL
//! subscriptions), and delivery of each room's events in seq order, exactly once:
//! a room protocol frame is encoded once for all of this shard's members, a
//! subscription payload rendered once per (document, operation, variables) and spliced
//! with each subscriber's framing: a `graphql-transport-ws` `next` with its id on a
//! WebSocket's send queue, or an SSE event or multipart part on an HTTP stream.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use graphql_exec::coerce::Variables;
use streamhub_ws::queue::SendQueue;
use streamhub_ws::{gqlws, room};

use super::fanout::{Inbox, Notice};
use crate::auth::Viewer;
use crate::domain::values::date_time;
use crate::domain::{Domain, Obj};
use crate::graphql::documents::Doc;
use crate::http::stream::EventStream;
use crate::store::{ChannelIx, Data, RoomEvent};

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
    channel: ChannelIx,
    /// The last seq delivered to this shard's members.
    delivered: u32,
    /// The last seq rendered for its `chatEvents` subscriptions (at most `delivered`);
    /// only the hub's task moves it (see [`Hub::render_chat`]).
    rendered: u32,
    members: Vec<(ConnId, Rc<SendQueue>)>,
    subs: Vec<Rc<Subscriber>>,
    /// The viewer count last emitted to `viewerCount` subscribers.
    viewers_sent: Option<u32>,
}

impl Room {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.subs.is_empty()
    }
}

/// A subscription as its room holds it, with where it stands in the room's events.
#[derive(Debug)]
struct Subscriber {
    sub: Rc<Subscription>,
    /// The last room event it was given, or the seq it starts after.
    after: Cell<u32>,
    /// Its `sinceSeq` replay is running: deliveries pass it by, the replay sends them.
    replaying: Cell<bool>,
    /// It left: a payload still being rendered when it did is not sent to it (its id
    /// may already name a new subscription).
    ended: Cell<bool>,
}

/// One shard's rooms.
///
/// Rendering a subscription payload awaits the executor, so other tasks run in
/// between; a room's order still holds: members are delivered to synchronously, and a
/// room's `chatEvents` subscriptions are rendered for by the hub's task alone, one event
/// after another (each subscription's `after` says what it has had), while a
/// subscription that replays `sinceSeq` sends itself what passes meanwhile.
#[derive(Debug)]
pub struct Hub {
    domain: Arc<Domain>,
    inbox: RefCell<Option<Inbox>>,
    rooms: RefCell<HashMap<Box<str>, Room, foldhash::fast::RandomState>>,
    next_conn: Cell<ConnId>,
}

impl Hub {
    /// A hub over the domain's store, hearing of changes on `inbox`.
    pub fn new(domain: Arc<Domain>, inbox: Inbox) -> Hub {
        Hub {
            domain,
            inbox: RefCell::new(Some(inbox)),
            rooms: RefCell::default(),
            next_conn: Cell::new(1),
        }
    }

    /// A fresh connection id.
    pub fn connection(&self) -> ConnId {
        let id = self.next_conn.get();
        self.next_conn.set(id + 1);
        id
    }

    /// The room with its members brought up to date, its last seq, and the seqs to
    /// replay after `since`: None when the gap is older than the history kept. What its
    /// subscriptions have not had yet, the hub's task renders when it hears of it.
    fn open(
        &self,
        room_id: &str,
        since: Option<u64>,
    ) -> Result<(ChannelIx, u64, Option<std::ops::Range<u64>>), Refusal> {
        let (channel, last, replayable) = {
            let mut rooms = self.rooms.borrow_mut();
            let d = self.domain.store.read();
            let channel = d
                .channel_by_id(room_id)
                .ok_or_else(|| ("NOT_FOUND", format!("no channel has id `{room_id}`")))?;
            let log = &d.channel(channel).log;
            let room = rooms.entry(room_id.into()).or_insert_with(|| Room {
                channel,
                delivered: log.last_seq(),
                rendered: log.last_seq(),
                members: Vec::new(),
                subs: Vec::new(),
                viewers_sent: None,
            });
            // Bring the room up to date first, so a newcomer starts exactly at `delivered`.
            catch_up(&d, room_id, room);
            let last = u64::from(room.delivered);
            let replayable = since
                .is_some_and(|s| s <= last && log.replayable_after(s as u32, d.now(), d.retention));
            (channel, last, replayable)
        };
        let replay = match since {
            None => Some(0..0),
            Some(s) if s > last => {
                return Err((
                    "BAD_USER_INPUT",
                    format!("`since` {s} is past the room's last seq {last}"),
                ))
            }
            Some(s) if replayable => Some(s + 1..last + 1),
            Some(_) => None,
        };
        Ok((channel, last, replay))
    }

    /// Joins `conn` to `room` (room protocol). Queues `joined` (with the room's last
    /// seq) and, when `since` is given and within the history kept, every event after it,
    /// in order; later events come by delivery. Returns false when already joined.
    pub fn join(
        &self,
        conn: ConnId,
        queue: &Rc<SendQueue>,
        room_id: &str,
        since: Option<u64>,
    ) -> Result<bool, Refusal> {
        if self
            .rooms
            .borrow()
            .get(room_id)
            .is_some_and(|r| r.members.iter().any(|(c, _)| *c == conn))
        {
            return Ok(false);
        }
        let (channel, last, replay) = self.open(room_id, since)?;
        queue.push(room::joined(
            room_id,
            last,
            since.is_some() && replay.is_some(),
        ));
        if let Some(seqs) = replay {
            let d = self.domain.store.read();
            for seq in seqs {
                if let Some(frame) = encode(&d, room_id, channel, seq as u32) {
                    queue.push(frame);
                }
            }
        }
        if let Some(room) = self.rooms.borrow_mut().get_mut(room_id) {
            room.members.push((conn, Rc::clone(queue)));
        }
        self.domain.store.write().channels[channel.0 as usize].viewers += 1;
        Ok(true)
    }

    /// Removes `conn` from `room`; false if it was not there.
    pub fn leave(&self, conn: ConnId, room_id: &str) -> bool {
        let channel = {
            let mut rooms = self.rooms.borrow_mut();
            let Some(room) = rooms.get_mut(room_id) else {
                return false;
            };
            let before = room.members.len();
            room.members.retain(|(c, _)| *c != conn);
            if room.members.len() == before {
                return false;
            }
            let channel = room.channel;
            if room.is_empty() {
                rooms.remove(room_id);
            }
            channel
        };
        let mut d = self.domain.store.write();
        let v = &mut d.channels[channel.0 as usize].viewers;
        *v = v.saturating_sub(1);
        true
    }

    /// Starts a GraphQL subscription on `room`. For `chatEvents` with `since`, the events
    /// after it are sent first, then live ones, each once and in order; a gap older than
    /// the history kept is refused with `HISTORY_UNAVAILABLE`. The subscription is in
    /// its room from the start (deliveries pass it by while it replays); when this
    /// future is dropped before its end, it leaves the room again.
    pub async fn subscribe(
        &self,
        sub: Rc<Subscription>,
        room_id: &str,
        since: Option<u64>,
    ) -> Result<(), Refusal> {
        let (channel, last, replay) = self.open(room_id, since)?;
        if replay.is_none() {
            return Err((
                "HISTORY_UNAVAILABLE",
                "`sinceSeq` is older than the history kept".to_owned(),
            ));
        }
        let who = Rc::new(Subscriber {
            sub,
            // `open` checked that `since` is at most `last`.
            after: Cell::new(since.unwrap_or(last) as u32),
            replaying: Cell::new(true),
            ended: Cell::new(false),
        });
        if let Some(room) = self.rooms.borrow_mut().get_mut(room_id) {
            room.subs.push(Rc::clone(&who));
        }
        Replay {
            hub: self,
            room_id,
            who,
        }
        .run(channel)
        .await;
        Ok(())
    }

    /// Stops subscription `id` of `conn` on `room`.
    pub fn unsubscribe(&self, conn: ConnId, id: &str, room_id: &str) {
        self.remove_subs(room_id, |s| s.sub.conn == conn && &*s.sub.id == id);
    }

    /// Takes the subscriptions `which` picks out of `room` (marked ended, so a payload
    /// being rendered for them is not sent), and the room away once nothing is in it.
    fn remove_subs(&self, room_id: &str, which: impl Fn(&Subscriber) -> bool) {
        let mut rooms = self.rooms.borrow_mut();
        if let Some(room) = rooms.get_mut(room_id) {
            room.subs.retain(|s| {
                let leaves = which(s);
                if leaves {
                    s.ended.set(true);
                }
                !leaves
            });
            if room.is_empty() {
                rooms.remove(room_id);
            }
        }
    }

    /// Delivers rooms' new events to their members, whenever the inbox says rooms
    /// changed, until the shard stops. After a lap (notices lost to a full ring) every
    /// room of this shard is brought up to date from the store's log.
    pub async fn run(self: Rc<Self>) {
        let Some(mut inbox) = self.inbox.borrow_mut().take() else {
            return;
        };
        loop {
            let taken = inbox.take().await;
            let mut notices = taken.notices;
            if taken.lapped {
                let rooms: Vec<Box<str>> = self.rooms.borrow().keys().cloned().collect();
                notices.extend(rooms.iter().cloned().map(Notice::Events));
                notices.extend(rooms.into_iter().map(Notice::Stream));
            }
            for n in notices {
                match n {
                    Notice::Events(room_id) => {
                        {
                            let mut rooms = self.rooms.borrow_mut();
                            let d = self.domain.store.read();
                            if let Some(room) = rooms.get_mut(&room_id) {
                                catch_up(&d, &room_id, room);
                            }
                        }
                        self.render_chat(&room_id).await;
                    }
                    Notice::Stream(room_id) => self.stream_changed(&room_id).await,
                }
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
            let changed: Vec<(Vec<Rc<Subscriber>>, ChannelIx)> = {
                let mut rooms = self.rooms.borrow_mut();
                let d = self.domain.store.read();
                rooms
                    .values_mut()
                    .filter_map(|room| {
                        let subs = listening(room, Topic::ViewerCount);
                        let now = d.channel(room.channel).viewers;
                        if subs.is_empty() || room.viewers_sent == Some(now) {
                            return None;
                        }
                        room.viewers_sent = Some(now);
                        Some((subs, room.channel))
                    })
                    .collect()
            };
            for (subs, channel) in changed {
                self.deliver_to(&subs, Obj::ChannelRoot(channel)).await;
            }
        }
    }

    /// Renders, for the room's `chatEvents` subscriptions, each event its members were
    /// delivered, in seq order, one at a time. Only the hub's task calls it, so a room's
    /// events are never rendered by two at once: each subscription gets each event once,
    /// in order, except one still replaying (its replay sends the event) or starting
    /// after it.
    async fn render_chat(&self, room_id: &str) {
        loop {
            let (subs, root) = {
                let mut rooms = self.rooms.borrow_mut();
                let Some(room) = rooms.get_mut(room_id) else {
                    return;
                };
                if room.subs.is_empty() {
                    // Nobody to render for (a subscription replaying is in `subs`).
                    room.rendered = room.delivered;
                }
                if room.rendered >= room.delivered {
                    return;
                }
                room.rendered += 1;
                let seq = room.rendered;
                let subs: Vec<Rc<Subscriber>> = room
                    .subs
                    .iter()
                    .filter(|s| {
                        s.sub.topic == Topic::ChatEvents
                            && !s.replaying.get()
                            && s.after.get() < seq
                            && !s.sub.sink.is_closing()
                    })
                    .cloned()
                    .collect();
                for s in &subs {
                    s.after.set(seq);
                }
                (subs, Obj::RoomEvent(room.channel, seq))
            };
            if !subs.is_empty() {
                self.deliver_to(&subs, root).await;
            }
        }
    }

    async fn stream_changed(&self, room_id: &str) {
        let (subs, channel) = match self.rooms.borrow().get(room_id) {
            Some(room) => (listening(room, Topic::StreamUpdates), room.channel),
            None => return,
        };
        self.deliver_to(&subs, Obj::ChannelRoot(channel)).await;
    }

    /// Renders `root` once per distinct (document, operation, variables, and viewer
    /// for selections that depend on one) and queues it on every subscription still
    /// there when its payload is ready.
    async fn deliver_to(&self, subs: &[Rc<Subscriber>], root: Obj) {
        type Key<'a> = (*const Doc, usize, &'a str, Option<&'a str>);
        let seq = match root {
            Obj::RoomEvent(_, seq) => Some(u64::from(seq)),
            _ => None,
        };
        let mut rendered: Vec<(Key<'_>, Option<Vec<u8>>)> = Vec::new();
        for s in subs {
            let sub = &*s.sub;
            let key = (
                Rc::as_ptr(&sub.doc),
                sub.op,
                sub.vars_key.as_str(),
                sub.viewer.as_deref().map(|v| &*v.id),
            );
            let i = match rendered.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    let p = self.render(sub, root.clone()).await;
                    rendered.push((key, p));
                    rendered.len() - 1
                }
            };
            if !s.ended.get() {
                push_next(sub, rendered[i].1.as_deref(), seq);
            }
        }
    }

    /// The execution result of a subscription's selection for one event; None when
    /// execution failed inside the server (a panic, i.e. a bug), which is logged and
    /// costs only the subscriptions that asked for this payload, not the shard's hub.
    async fn render(&self, sub: &Subscription, root: Obj) -> Option<Vec<u8>> {
        let schema = &self.domain.schema;
        let plan = sub.doc.plan_at(sub.op);
        let mut execution = std::pin::pin!(async {
            let req = self.domain.request(sub.viewer.as_deref());
            graphql_exec::exec::execute(schema, plan, &req, root, &sub.vars).await
        });
        // Each poll is guarded: a panic ends the execution (not polled again) as None.
        std::future::poll_fn(|cx| {
            match std::panic::catch_unwind(AssertUnwindSafe(|| execution.as_mut().poll(cx))) {
                Ok(Poll::Ready(body)) => Poll::Ready(Some(body)),
                Ok(Poll::Pending) => Poll::Pending,
                Err(_) => {
                    tracing::error!("a subscription's execution failed; closing its connection");
                    Poll::Ready(None)
                }
            }
        })
        .await
    }
}

/// The room's subscriptions to `topic` whose sinks are open.
fn listening(room: &Room, topic: Topic) -> Vec<Rc<Subscriber>> {
    room.subs
        .iter()
        .filter(|s| s.sub.topic == topic && !s.sub.sink.is_closing())
        .cloned()
        .collect()
}

/// A subscription's `sinceSeq` replay; dropped before its end (the future subscribing
/// it was dropped: its connection went away, its request timed out), it takes the
/// subscription out of its room, as nobody else knows of it yet.
struct Replay<'h> {
    hub: &'h Hub,
    room_id: &'h str,
    who: Rc<Subscriber>,
}

impl Replay<'_> {
    /// Sends the subscription each event after its start up to the last one the room's
    /// deliveries rendered (read again after each event: they go on meanwhile), then
    /// hands it over to them, with no await between the last check and the handover.
    async fn run(&self, channel: ChannelIx) {
        loop {
            let seq = {
                let rendered = self
                    .hub
                    .rooms
                    .borrow()
                    .get(self.room_id)
                    .map_or(0, |r| r.rendered);
                let after = self.who.after.get();
                if after >= rendered {
                    self.who.replaying.set(false);
                    return;
                }
                after + 1
            };
            let payload = self
                .hub
                .render(&self.who.sub, Obj::RoomEvent(channel, seq))
                .await;
            push_next(&self.who.sub, payload.as_deref(), Some(u64::from(seq)));
            self.who.after.set(seq);
        }
    }
}

impl Drop for Replay<'_> {
    fn drop(&mut self) {
        if self.who.replaying.get() {
            self.hub
                .remove_subs(self.room_id, |s| std::ptr::eq(s, &*self.who));
        }
    }
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

/// The result an HTTP stream gets when its payload could not be rendered.
const INTERNAL_ERROR: &[u8] =
    br#"{"errors":[{"message":"Internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#;

/// Queues every event after `room.delivered` on every room protocol member, each
/// encoded once.
fn catch_up(d: &Data, room_id: &str, room: &mut Room) {
    let last = d.channel(room.channel).log.last_seq();
    room.members.retain(|(_, q)| !q.is_closing());
    if room.members.is_empty() {
        room.delivered = room.delivered.max(last);
        return;
    }
    while room.delivered < last {
        room.delivered += 1;
        let Some(frame) = encode(d, room_id, room.channel, room.delivered) else {
            continue;
        };
        for (_, q) in &room.members {
            // A member past its queue limit is closed with 4008 by its queue.
            q.push(frame.clone());
        }
    }
}

/// The room protocol frame of the event at `seq`: encoded by the first shard that
/// delivers it, then shared by every shard (see [`crate::store::RoomLog::frame`]).
fn encode(d: &Data, room_id: &str, c: ChannelIx, seq: u32) -> Option<Bytes> {
    d.channel(c)
        .log
        .frame(seq, |event| encode_event(d, room_id, seq, event))
}

fn encode_event(d: &Data, room_id: &str, seq: u32, event: &RoomEvent) -> Bytes {
    match event {
        RoomEvent::Message {
            author,
            body,
            sent_at,
            ..
        } => {
            let u = d.user(*author);
            room::message(
                room_id,
                u64::from(seq),
                &format!("msg_{room_id}_{seq}"),
                room::Author {
                    id: &u.id,
                    login: &u.login,
                    display_name: &u.display_name,
                },
                body,
                &date_time(*sent_at),
            )
        }
        RoomEvent::Deleted { message_seq } => {
            room::deleted(room_id, u64::from(seq), u64::from(*message_seq))
        }
        RoomEvent::Banned { user, until } => room::banned(
            room_id,
            u64::from(seq),
            &d.user(*user).id,
            until.map(date_time).as_deref(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Waker};

    use serde_json::{json, Value};

    use super::*;
    use crate::realtime::fanout::Fanout;
    use crate::store::demo::{generate, DemoSize};
    use crate::store::Store;

    const ROOM: &str = "ch_u1";
    const CHAT: &str = "subscription($c: ID!, $s: Int) { chatEvents(channelId: $c, sinceSeq: $s) { ... on ChatMessage { seq } } }";

    /// The JSON of the text frames `queue` has written so far (server frames: unmasked).
    fn written(queue: &SendQueue) -> Vec<Value> {
        let mut bytes: Vec<u8> = Vec::new();
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

    /// The seqs of the `chatEvents` payloads written to `queue` so far.
    fn seqs(queue: &SendQueue) -> Vec<u64> {
        written(queue)
            .iter()
            .map(|f| f["payload"]["data"]["chatEvents"]["seq"].as_u64().unwrap())
            .collect()
    }

    fn subscription(
        hub: &Hub,
        doc: &Rc<Doc>,
        conn: ConnId,
        since: Option<u64>,
    ) -> Rc<Subscription> {
        let vars = json!({ "c": ROOM, "s": since });
        let Value::Object(input) = &vars else {
            unreachable!()
        };
        let schema = &hub.domain.schema;
        Rc::new(Subscription {
            conn,
            id: "1".into(),
            sink: Sink::WebSocket(SendQueue::new(1 << 20)),
            doc: Rc::clone(doc),
            op: 0,
            vars: graphql_exec::coerce::coerce_variables(schema, &doc.plan_at(0).variables, input)
                .unwrap(),
            vars_key: vars.to_string(),
            viewer: None,
            topic: Topic::ChatEvents,
        })
    }

    fn queue_of(sub: &Subscription) -> &SendQueue {
        match &sub.sink {
            Sink::WebSocket(q) => q,
            Sink::Http(_) => unreachable!(),
        }
    }

    /// Lets the hub's task deliver what it has heard of.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// Events published, then a member joined and subscriptions started before the hub's
    /// task heard of them: the members are up to date at once, the subscriptions'
    /// renders lag; each subscription still gets each event once, in order, from where
    /// it starts.
    #[tokio::test]
    async fn subscriptions_get_each_event_once_from_where_they_start() {
        let fanout = Arc::new(Fanout::new(1));
        let inbox = fanout.attach(0);
        let schema = Arc::new(crate::schema::build().unwrap());
        let store = Arc::new(Store::new(generate(DemoSize::SMALL)));
        let domain = Arc::new(Domain::new(schema, store, fanout));
        let hub = Rc::new(Hub::new(Arc::clone(&domain), inbox));
        let doc = Rc::new(Doc::from_text(&domain, CHAT));
        let alice = Viewer {
            id: "u1".into(),
            login: "alice".into(),
            admin: false,
        };
        let send = || domain.request(Some(&alice)).send_chat(ROOM, "hi").unwrap();
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                tokio::task::spawn_local(Rc::clone(&hub).run());
                let early = subscription(&hub, &doc, hub.connection(), None);
                hub.subscribe(Rc::clone(&early), ROOM, None).await.unwrap();
                let (a, b) = (u64::from(send()), u64::from(send()));
                // Before the hub's task runs: a member joins (catching the room's members
                // up), one subscription replays from before both events, one starts now.
                let member = SendQueue::new(1 << 20);
                assert_eq!(hub.join(hub.connection(), &member, ROOM, None), Ok(true));
                let replayed = subscription(&hub, &doc, hub.connection(), Some(a - 1));
                hub.subscribe(Rc::clone(&replayed), ROOM, Some(a - 1))
                    .await
                    .unwrap();
                let late = subscription(&hub, &doc, hub.connection(), None);
                hub.subscribe(Rc::clone(&late), ROOM, None).await.unwrap();
                settle().await;
                let c = u64::from(send());
                settle().await;
                assert_eq!(seqs(queue_of(&early)), [a, b, c]);
                assert_eq!(seqs(queue_of(&replayed)), [a, b, c]);
                assert_eq!(seqs(queue_of(&late)), [c]);
                let frames = written(&member);
                assert_eq!(frames[0]["type"], "joined");
                assert_eq!(frames[0]["seq"], b);
                assert_eq!(frames[1]["seq"], c);
                assert_eq!(frames.len(), 2);
            })
            .await;
    }

    /// A subscription whose replay is dropped before its end (its connection went away)
    /// leaves its room, and the room goes once nothing is in it.
    #[tokio::test]
    async fn a_replay_dropped_midway_leaves_nothing_behind() {
        let fanout = Arc::new(Fanout::new(1));
        let inbox = fanout.attach(0);
        let schema = Arc::new(crate::schema::build().unwrap());
        let store = Arc::new(Store::new(generate(DemoSize::SMALL)));
        let domain = Arc::new(Domain::new(schema, store, fanout));
        let hub = Hub::new(Arc::clone(&domain), inbox);
        let doc = Rc::new(Doc::from_text(&domain, CHAT));
        let sub = subscription(&hub, &doc, hub.connection(), None);
        let (_, last, _) = hub.open(ROOM, None).unwrap();
        let who = Rc::new(Subscriber {
            sub,
            after: Cell::new(last as u32),
            replaying: Cell::new(true),
            ended: Cell::new(false),
        });
        hub.rooms
            .borrow_mut()
            .get_mut(ROOM)
            .unwrap()
            .subs
            .push(Rc::clone(&who));
        drop(Replay {
            hub: &hub,
            room_id: ROOM,
            who: Rc::clone(&who),
        });
        assert!(who.ended.get());
        assert!(hub.rooms.borrow().get(ROOM).is_none());
    }
}
