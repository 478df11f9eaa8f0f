//! The streaming domain: schema.graphql's fields resolved over the [`Store`], for
//! graphql-exec, and the schema's cache hints ([`cache_hints`]). [`Domain`] is node-wide;
//! a [`Request`] is one operation's view of it (the viewer, the time, its shard's cache)
//! and is what the engine calls.
//!
//! Fields are resolved a level at a time: every resolver gets all the parents of a
//! level at once and loads what they need in one batch ([`load`]: the shard's cache,
//! then one store call for the misses). Objects carry rows (`Rc`, from the shard's
//! cache) or ids, never an index into a store.

pub mod cache_hints;
pub mod events;
pub mod input;
mod load;
mod mutation;
mod objects;
pub mod plan_info;
mod query;
mod trial;
pub mod values;
mod writers;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use graphql_exec::exec::{Args, FieldError, Out, Resolved, Resolver};
use graphql_exec::plan::PlannedField;
use graphql_exec::schema::{Schema, TypeId};
use streamhub_pubsub::history::HistoryLimits;
use streamhub_pubsub::{Chat, Event};

use crate::auth::Viewer;
use crate::cluster::peers::Peers;
use crate::realtime::presence::Presence;
use crate::rooms::{LocalOrderer, Orderer, Rooms};
use crate::store::cache::{Cache, Key};
use crate::store::cursor::Cursor;
use crate::store::memory::demo::DemoSize;
use crate::store::memory::MemoryStore;
use crate::store::{
    Category, Change, Channel, Clock, Command, Membership, Message, Millis, SharedStore, Store,
    StoreError, Stream, User,
};
use events::{EventSink, Notice};
pub use load::field_error;
use streamhub_pubsub::redis::RedisRooms;

/// What a domain serves from: the store, the node's rooms over it, and presence.
#[derive(Debug, Clone)]
pub struct DataLayer {
    /// The data.
    pub store: SharedStore,
    /// The rooms: their histories and their orderer.
    pub rooms: Arc<Rooms>,
    /// Viewer counts by room.
    pub presence: Arc<Presence>,
    /// The time everything is measured with.
    pub clock: Arc<dyn Clock>,
    /// How long after a viewer wrote that viewer's reads go to the store's primary,
    /// when it has a replica (`STREAMHUB_DB_READ_YOUR_WRITES`; 0: never).
    pub read_your_writes: Millis,
    /// With other nodes: Redis, where APQ registrations are shared.
    pub redis: Option<RedisRooms>,
    /// With other nodes: where what a mutation changed is announced.
    pub peers: Option<Arc<Peers>>,
}

impl DataLayer {
    /// The embedded default: the memory store with the demo data of `size`, rooms
    /// keeping `limits` and ordered on this node, presence seeded by the demo.
    pub fn embedded(size: DemoSize, limits: HistoryLimits, clock: Arc<dyn Clock>) -> DataLayer {
        let (memory, viewers) = MemoryStore::demo(size, limits, Arc::clone(&clock));
        let (users, live) = memory.counts();
        tracing::info!(users, live, "store: embedded, demo data loaded");
        DataLayer {
            presence: Arc::new(Presence::seeded(viewers)),
            ..DataLayer::over(Arc::new(memory), Box::new(LocalOrderer), limits, clock)
        }
    }

    /// A store of record (PostgreSQL): rooms ordered by `orderer` (on this node, or
    /// across nodes through Redis) over it, their histories started from what it keeps;
    /// presence starts empty.
    pub fn over(
        store: SharedStore,
        orderer: Box<dyn Orderer>,
        limits: HistoryLimits,
        clock: Arc<dyn Clock>,
    ) -> DataLayer {
        let rooms = Arc::new(Rooms::new(
            Arc::clone(&store),
            orderer,
            Arc::clone(&clock),
            limits,
        ));
        DataLayer {
            store,
            rooms,
            presence: Arc::new(Presence::seeded(Vec::new())),
            clock,
            read_your_writes: 0,
            redis: None,
            peers: None,
        }
    }
}

/// The domain shared by every shard.
#[derive(Debug)]
pub struct Domain {
    /// The API schema.
    pub schema: Arc<Schema>,
    /// The data.
    pub store: SharedStore,
    /// The rooms: their histories and their orderer.
    pub rooms: Arc<Rooms>,
    /// Viewer counts by room.
    pub presence: Arc<Presence>,
    /// With other nodes: Redis, where APQ registrations are shared.
    pub redis: Option<RedisRooms>,
    /// With other nodes: where what a mutation changed is announced.
    pub peers: Option<Arc<Peers>>,
    /// Where changes are announced.
    pub events: Arc<dyn EventSink>,
    /// The schema's cache hints ([`cache_hints::HINTS`]), resolved.
    pub cache_hints: cache_hints::CacheHints,
    /// Who wrote recently (only with a replica: see [`Request::reader`]).
    writers: Option<writers::Writers>,
    clock: Arc<dyn Clock>,
    types: Types,
    fields: objects::Fields,
}

/// The schema's object types the domain produces, by id.
#[derive(Debug, Clone, Copy)]
struct Types {
    query: TypeId,
    user: TypeId,
    channel: TypeId,
    stream: TypeId,
    category: TypeId,
    chat_message: TypeId,
    deleted: TypeId,
    banned: TypeId,
    stream_update: TypeId,
}

/// An object handle: what a field resolves to before its own fields are resolved.
/// Every variant holds one thin pointer (and an edge its index), so a handle is 16
/// bytes: the executor keeps one per object of a level and moves them as its lists grow.
#[derive(Debug, Clone)]
pub enum Obj {
    /// The query or mutation root.
    Root,
    /// A user.
    User(Rc<User>),
    /// A channel.
    Channel(Rc<Channel>),
    /// A stream.
    Stream(Rc<Stream>),
    /// A category.
    Category(Rc<Category>),
    /// A chat message.
    Message(Rc<Message>),
    /// A deletion event.
    Deleted(Rc<Event>),
    /// A ban event.
    Banned(Rc<Event>),
    /// A channel's stream state, for `streamUpdates`.
    StreamUpdate(Rc<Channel>),
    /// The subscription root for a room event (`chatEvents`).
    RoomEvent(Rc<Event>),
    /// The subscription root for a channel, by id (`streamUpdates`, `viewerCount`).
    ChannelRoot(Rc<String>),
    /// A page of a connection.
    Connection(Rc<Page>),
    /// The edge at an index of a page.
    Edge(Rc<Page>, u32),
    /// A page's `PageInfo`.
    PageInfo(Rc<Page>),
}

/// One page of a list: its items, each with the cursor of its place.
#[derive(Debug)]
pub struct Page {
    /// The items.
    pub items: Vec<Obj>,
    /// Each item's cursor.
    pub cursors: Vec<Cursor>,
    /// Whether items follow.
    pub has_next: bool,
    /// The length of the whole list.
    pub total: usize,
}

/// What `type_of` and the resolvers need to know about one operation.
#[derive(Debug)]
pub struct Request<'a> {
    domain: &'a Domain,
    cache: &'a Cache,
    /// The viewer's user, if signed in.
    viewer: Option<Rc<User>>,
    /// The viewer's token.
    token: Option<&'a Viewer>,
    now: Millis,
    /// The store's primary-pinned view, when its reads may go to a replica.
    primary: Option<&'a dyn Store>,
    /// Whether every read goes to `primary` (the viewer wrote recently).
    pinned: Cell<bool>,
    /// Set while a field is tried from the shard's cache alone ([`trial`]).
    trial: Cell<bool>,
    /// Set when a read during a trial needed the store.
    missed: Cell<bool>,
    /// What this request loaded from the store.
    loaded: RefCell<load::Loaded>,
}

impl Domain {
    /// The domain over `data`, for `schema` (which must be schema.graphql), announcing
    /// to `events`.
    pub fn new(schema: Arc<Schema>, data: DataLayer, events: Arc<dyn EventSink>) -> Domain {
        let DataLayer {
            store,
            rooms,
            presence,
            clock,
            read_your_writes,
            redis,
            peers,
        } = data;
        let t = |name: &str| {
            schema
                .type_named(name)
                .unwrap_or_else(|| panic!("schema.graphql defines {name}"))
        };
        let types = Types {
            query: schema.query,
            user: t("User"),
            channel: t("Channel"),
            stream: t("Stream"),
            category: t("Category"),
            chat_message: t("ChatMessage"),
            deleted: t("ChatMessageDeleted"),
            banned: t("UserBanned"),
            stream_update: t("StreamUpdate"),
        };
        let cache_hints = cache_hints::CacheHints::new(&schema, cache_hints::HINTS)
            .unwrap_or_else(|e| panic!("the cache hints fit schema.graphql: {e}"));
        let fields = objects::Fields::new(&schema);
        let writers = (store.primary().is_some() && read_your_writes > 0)
            .then(|| writers::Writers::new(read_your_writes));
        Domain {
            schema,
            store,
            rooms,
            presence,
            redis,
            peers,
            events,
            cache_hints,
            writers,
            clock,
            types,
            fields,
        }
    }

    /// The time requests are served at.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// A request for `viewer` on a shard with `cache`. A token whose subject the store
    /// does not know yet creates that user (and their channel) first; a changed admin
    /// role is recorded.
    pub async fn request<'a>(
        &'a self,
        cache: &'a Cache,
        viewer: Option<&'a Viewer>,
    ) -> Result<Request<'a>, StoreError> {
        let now = self.now();
        let pinned = match (&self.writers, viewer) {
            (Some(w), Some(v)) => w.recent(&v.id, now),
            _ => false,
        };
        let mut req = Request {
            domain: self,
            cache,
            viewer: None,
            token: viewer,
            now,
            primary: self.store.primary(),
            pinned: Cell::new(pinned),
            trial: Cell::new(false),
            missed: Cell::new(false),
            loaded: RefCell::default(),
        };
        if let Some(v) = viewer {
            req.viewer = Some(req.user_for(v).await?);
        }
        Ok(req)
    }
}

impl<'a> Request<'a> {
    /// Where this request reads what `key` names (a miss in its shard's cache, or
    /// [`Key::Other`] for what no cache holds): with a replica, the primary when the
    /// viewer wrote within the read-your-writes window or `key` changed within it (so a
    /// replica that has not replayed the change yet neither answers its writer nor
    /// refills a cache with the row from before it), else the store, whose reads go to
    /// the replica while it keeps up. Without a replica: the store.
    fn reader(&self, key: Key<'_>) -> &'a dyn Store {
        if self.trial.get() {
            return self.refused();
        }
        match self.primary {
            Some(p) if self.pinned.get() || self.cache.changed(key, self.now) => p,
            _ => &*self.domain.store,
        }
    }

    /// [`Request::reader`] for a batch of misses: the primary if any of them calls for it.
    fn reader_of<'k>(&self, ids: &[&'k str], key: impl Fn(&'k str) -> Key<'k>) -> &'a dyn Store {
        if self.trial.get() {
            return self.refused();
        }
        match self.primary {
            Some(p)
                if self.pinned.get()
                    || ids.iter().any(|id| self.cache.changed(key(id), self.now)) =>
            {
                p
            }
            _ => &*self.domain.store,
        }
    }

    /// Where what a write checks is read: the primary.
    fn writer_reads(&self) -> &'a dyn Store {
        if self.trial.get() {
            return self.refused();
        }
        self.primary.unwrap_or(&*self.domain.store)
    }

    /// What a trial reads instead of the store: a refusal, noted in `missed`.
    fn refused(&self) -> &'static dyn Store {
        self.missed.set(true);
        &trial::Refused
    }

    /// This request's viewer wrote: with a replica, its reads go to the primary from
    /// now on, and the node's other requests of the same viewer for the window.
    fn wrote(&self) {
        if let Some(w) = &self.domain.writers {
            self.pinned.set(true);
            if let Some(v) = self.token {
                w.wrote(&v.id, self.now);
            }
        }
    }

    async fn user_for(&self, v: &Viewer) -> Result<Rc<User>, StoreError> {
        if let Some(u) = self.user(&v.id).await? {
            if u.admin == v.admin {
                return Ok(u);
            }
        }
        self.apply(Command::EnsureUser {
            id: (*v.id).into(),
            login: (*v.login).into(),
            admin: v.admin,
            now: self.now,
        })
        .await?;
        self.user(&v.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no user has id `{}`", v.id)))
    }

    /// Applies a command and announces what it changed: this shard's cache drops it
    /// at once, every other shard's through the rings before its next request, and
    /// with other nodes, theirs before this returns (refused at once when they could
    /// not be told; but not the viewer's own row, which a chat send also ensures, and
    /// which changes only when the token's login or role did).
    async fn apply(&self, command: Command) -> Result<crate::store::Applied, StoreError> {
        if let Some(peers) = &self.domain.peers {
            if !matches!(command, Command::EnsureUser { .. }) {
                peers.ready()?;
            }
        }
        let applied = self.domain.store.apply(command).await?;
        self.forget_loaded();
        self.wrote();
        self.announce(&applied.changes);
        if let Some(peers) = &self.domain.peers {
            // Boxed: on one node the command's future stays as small as before.
            Box::pin(peers.announce(&applied.changes)).await;
        }
        Ok(applied)
    }

    fn announce(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        for c in changes {
            self.cache.invalidate(c, self.now);
        }
        self.domain.events.publish(Notice::Changed(changes.into()));
    }

    /// Orders, records and announces a room event of `channel_id`. Members receive it
    /// only once the store has recorded it; a refused one is a void that no one
    /// receives (see [`crate::rooms`]), also when this future is dropped while the
    /// store works.
    async fn publish_room(&self, channel_id: &str, chat: Chat) -> Result<Event, StoreError> {
        let rooms = &self.domain.rooms;
        let room = rooms
            .open(channel_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no channel has id `{channel_id}`")))?;
        let event = rooms.order(&room, chat, self.now).await?;
        let mut settling = Settling {
            request: self,
            room: &room,
            seq: event.seq,
            settled: false,
        };
        let recorded = self.domain.store.record(&event, self.now).await;
        if recorded.is_ok() {
            self.wrote();
        }
        // Every node hears how it settled (a void too, or their rooms would wait for it).
        let chat = recorded.is_ok().then_some(&event.payload.chat);
        let published = rooms.publish(&room, event.seq, chat).await;
        if recorded.is_ok() && published.is_err() {
            // Not settled across nodes: it is (or becomes, once stale) a void there, so
            // it is one here too, and the chat log does not keep it.
            if let Err(e) = self.domain.store.unrecord(channel_id, event.seq).await {
                tracing::warn!(room = channel_id, seq = event.seq, error = %e, "an event voided across nodes stays in the chat log");
            }
            settling.settle(None);
        } else {
            settling.settle(recorded.is_ok().then(|| Arc::clone(&event.payload)));
        }
        recorded?;
        published.map(|()| event)
    }

    /// Sends a chat message as this request's viewer (the room protocol's `send`), with
    /// the same checks as `sendChatMessage`: the message's seq.
    pub async fn send_chat(&self, channel_id: &str, body: &str) -> Result<u64, FieldError> {
        mutation::send_chat(self, channel_id, body)
            .await
            .map(|m| m.seq)
    }

    /// The viewer count of a channel.
    fn viewers(&self, channel_id: &str) -> u32 {
        self.domain.presence.count(channel_id)
    }
}

/// A room event ordered and not settled yet: settled as recorded or refused, or, if
/// dropped first (its request cancelled while the store worked), as refused, so the
/// room's later events never wait for it.
struct Settling<'a, 'r> {
    request: &'a Request<'r>,
    room: &'a crate::rooms::Room,
    seq: u64,
    settled: bool,
}

impl Settling<'_, '_> {
    /// Settles the event (`Some` when recorded) and announces every event that entered
    /// the room's history by it.
    fn settle(&mut self, recorded: Option<Arc<streamhub_pubsub::ChatEvent>>) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let ready = self.room.settle(self.seq, recorded, self.request.now);
        if ready.is_empty() {
            return;
        }
        self.request
            .cache
            .room_changed(&self.room.id, self.request.now);
        for event in ready {
            self.request.domain.events.publish(Notice::Room(event));
        }
    }
}

impl Drop for Settling<'_, '_> {
    fn drop(&mut self) {
        self.settle(None);
    }
}

impl Resolver for Request<'_> {
    type Object = Obj;

    async fn resolve(
        &self,
        field: &PlannedField,
        args: &Args<'_>,
        parents: &[Obj],
        out: &mut Out<'_, Obj>,
    ) {
        // The query and subscription roots' futures are boxed: they run once per
        // operation, and inline they would grow the future of every batch. A mutation's
        // is not: its field is the batch.
        let schema = &self.domain.schema;
        if Some(field.parent) == schema.mutation {
            let result = mutation::resolve(self, &field.name, args).await;
            out.repeat(&result, parents.len());
            return;
        }
        if Some(field.parent) == schema.subscription {
            for p in parents {
                let v = Box::pin(subscription_root(self, &field.name, p)).await;
                out.push(v);
            }
            return;
        }
        if field.parent == schema.query {
            let result = Box::pin(query::resolve(self, &field.name, args)).await;
            out.repeat(&result, parents.len());
            return;
        }
        objects::resolve(self, field, args, parents, out).await;
    }

    fn resolve_now(
        &self,
        field: &PlannedField,
        args: &Args<'_>,
        parents: &[Obj],
        out: &mut Out<'_, Obj>,
    ) -> bool {
        let schema = &self.domain.schema;
        let root = [schema.mutation, schema.subscription, Some(schema.query)];
        !root.contains(&Some(field.parent))
            && (objects::resolve_now(self, field, parents, out)
                || trial::from_cache(self, field, args, parents, out))
    }

    fn type_of(&self, object: &Obj) -> TypeId {
        let t = &self.domain.types;
        match object {
            Obj::User(_) => t.user,
            Obj::Channel(_) => t.channel,
            Obj::Stream(_) => t.stream,
            Obj::Category(_) => t.category,
            Obj::Message(_) => t.chat_message,
            Obj::Deleted(_) => t.deleted,
            Obj::Banned(_) => t.banned,
            Obj::StreamUpdate(_) => t.stream_update,
            // Never met in an abstract position.
            Obj::Root
            | Obj::RoomEvent(_)
            | Obj::ChannelRoot(_)
            | Obj::Connection(_)
            | Obj::Edge(..)
            | Obj::PageInfo(_) => t.query,
        }
    }
}

/// A channel as the authorization module sees it: its owner and moderators from its
/// row, and the viewer's ban from the store. Every mutation asks `auth::policy::can`
/// through it.
#[derive(Debug, Clone, Copy)]
pub struct Roles<'a> {
    /// The channel.
    pub channel: &'a Channel,
    /// The viewer's id and what the viewer is in the channel.
    pub viewer: Option<(&'a str, &'a Membership)>,
}

impl crate::auth::policy::ChannelRoles for Roles<'_> {
    fn owner_id(&self) -> &str {
        &self.channel.owner_id
    }

    fn is_moderator(&self, user_id: &str) -> bool {
        self.channel.moderator_ids.iter().any(|m| &**m == user_id)
    }

    fn is_banned(&self, user_id: &str) -> bool {
        self.viewer
            .is_some_and(|(id, m)| id == user_id && m.ban.is_some())
    }
}

/// A room event as the chat message it is, when it is one.
pub fn message_of(event: &Event) -> Option<Message> {
    match &event.payload.chat {
        Chat::Message {
            author,
            body,
            sent_at,
        } => Some(Message {
            channel_id: Arc::clone(&event.room),
            seq: event.seq,
            author: author.clone(),
            body: body.clone(),
            sent_at: *sent_at,
        }),
        _ => None,
    }
}

/// A subscription field on the event it is rendered for.
async fn subscription_root(cx: &Request<'_>, field: &str, root: &Obj) -> Resolved<Obj> {
    match (field, root) {
        ("chatEvents", Obj::RoomEvent(e)) => match &e.payload.chat {
            Chat::Message { .. } => match message_of(e) {
                Some(m) => Resolved::Object(Obj::Message(Rc::new(m))),
                None => Resolved::Null,
            },
            Chat::Deleted { .. } => Resolved::Object(Obj::Deleted(Rc::clone(e))),
            Chat::Banned { .. } => Resolved::Object(Obj::Banned(Rc::clone(e))),
        },
        ("streamUpdates", Obj::ChannelRoot(c)) => match cx.channel(c).await {
            Ok(Some(ch)) => Resolved::Object(Obj::StreamUpdate(ch)),
            Ok(None) => Resolved::Error("the channel is gone".into()),
            Err(e) => Resolved::Error(field_error(e)),
        },
        ("viewerCount", Obj::ChannelRoot(c)) => values::int(cx.viewers(c)),
        (other, _) => Resolved::Error(format!("Subscription.{other} has no event here").into()),
    }
}

/// Turns a result into a field value.
fn value(r: Result<Resolved<Obj>, FieldError>) -> Resolved<Obj> {
    r.unwrap_or_else(Resolved::Error)
}

#[cfg(test)]
mod tests;
