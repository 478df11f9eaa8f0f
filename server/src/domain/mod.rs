//! The streaming domain: schema.graphql's fields resolved over the [`Store`], for
//! graphql-exec, and the schema's cache hints ([`cache_hints`]). [`Domain`] is node-wide;
//! a [`Request`] is one operation's view of it (the viewer, the time) and is what the
//! engine calls.
//!
//! Fields are resolved a level at a time: every resolver gets all the parents of a
//! level at once and answers them under one store lock.

pub mod cache_hints;
pub mod events;
pub mod input;
mod mutation;
mod objects;
pub mod plan_info;
mod query;
pub mod values;

use std::rc::Rc;
use std::sync::Arc;

use graphql_exec::exec::{Args, FieldError, Out, Resolved, Resolver};
use graphql_exec::plan::PlannedField;
use graphql_exec::schema::{Schema, TypeId};

use crate::auth::Viewer;
use crate::store::{CategoryIx, ChannelIx, Millis, Store, StreamIx, UserIx};
use events::EventSink;

/// The domain shared by every shard.
#[derive(Debug)]
pub struct Domain {
    /// The API schema.
    pub schema: Arc<Schema>,
    /// The data.
    pub store: Arc<Store>,
    /// Where changes are announced.
    pub events: Arc<dyn EventSink>,
    /// The schema's cache hints ([`cache_hints::HINTS`]), resolved.
    pub cache_hints: cache_hints::CacheHints,
    types: Types,
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
#[derive(Debug, Clone)]
pub enum Obj {
    /// The query or mutation root.
    Root,
    /// A user.
    User(UserIx),
    /// A channel.
    Channel(ChannelIx),
    /// A stream.
    Stream(StreamIx),
    /// A category.
    Category(CategoryIx),
    /// The chat message at a seq of a channel's room.
    Message(ChannelIx, u32),
    /// The deletion event at a seq.
    Deleted(ChannelIx, u32),
    /// The ban event at a seq.
    Banned(ChannelIx, u32),
    /// A channel's stream state, for `streamUpdates`.
    StreamUpdate(ChannelIx),
    /// The subscription root for the room event at a seq (`chatEvents`).
    RoomEvent(ChannelIx, u32),
    /// The subscription root for a channel (`streamUpdates`, `viewerCount`).
    ChannelRoot(ChannelIx),
    /// A page of a connection.
    Connection(Rc<Page>),
    /// The edge at an index of a page.
    Edge(Rc<Page>, u32),
    /// A page's `PageInfo`.
    PageInfo(Rc<Page>),
}

/// One page of a list: its items and where it sits.
#[derive(Debug)]
pub struct Page {
    /// The items.
    pub items: Vec<Obj>,
    /// The index of the first item in the whole list.
    pub start: usize,
    /// Whether items follow.
    pub has_next: bool,
    /// The length of the whole list.
    pub total: usize,
}

impl Page {
    /// The page of `first` items from `start` of a list of `total`, made by `item`.
    fn of(total: usize, start: usize, first: usize, item: impl Fn(usize) -> Obj) -> Page {
        let end = start.saturating_add(first).min(total);
        let start = start.min(end);
        Page {
            items: (start..end).map(item).collect(),
            start,
            has_next: end < total,
            total,
        }
    }
}

/// What `type_of` and the resolvers need to know about one operation.
#[derive(Debug)]
pub struct Request<'a> {
    domain: &'a Domain,
    /// The viewer's user, if signed in.
    viewer: Option<UserIx>,
    /// The viewer's token.
    token: Option<&'a Viewer>,
    now: Millis,
}

impl Domain {
    /// The domain over `store`, for `schema` (which must be schema.graphql).
    pub fn new(schema: Arc<Schema>, store: Arc<Store>, events: Arc<dyn EventSink>) -> Domain {
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
        Domain {
            schema,
            store,
            events,
            cache_hints,
            types,
        }
    }

    /// A request for `viewer`. A token whose subject the store does not know yet
    /// creates that user (and their channel) first; a changed admin role is recorded.
    pub fn request<'a>(&'a self, viewer: Option<&'a Viewer>) -> Request<'a> {
        let now = values::now();
        let user = viewer.map(|v| self.user_for(v, now));
        Request {
            domain: self,
            viewer: user,
            token: viewer,
            now,
        }
    }

    fn user_for(&self, v: &Viewer, now: Millis) -> UserIx {
        {
            let d = self.store.read();
            if let Some(u) = d.user_by_id(&v.id) {
                if d.user(u).admin == v.admin {
                    return u;
                }
            }
        }
        let mut d = self.store.write();
        if let Some(u) = d.user_by_id(&v.id) {
            d.users[u.0 as usize].admin = v.admin;
            return u;
        }
        let login = d.free_login(&v.login);
        let u = d.add_user(&v.id, &login, &v.login, v.admin, now);
        tracing::info!(user = &*v.id, login, "user created from a token");
        u
    }
}

impl Request<'_> {
    /// Sends a chat message as this request's viewer (the room protocol's `send`), with
    /// the same checks as `sendChatMessage`: the message's seq.
    pub fn send_chat(&self, channel_id: &str, body: &str) -> Result<u32, FieldError> {
        mutation::send_chat_now(self, channel_id, body)
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
        let schema = &self.domain.schema;
        if Some(field.parent) == schema.mutation {
            let result = mutation::resolve(self, &field.name, args);
            out.extend(parents.iter().map(|_| result.clone()));
            return;
        }
        let d = self.domain.store.read();
        if Some(field.parent) == schema.subscription {
            for p in parents {
                out.push(subscription_root(&d, &field.name, p));
            }
            return;
        }
        if field.parent == schema.query {
            let result = query::resolve(self, &d, &field.name, args);
            out.extend(parents.iter().map(|_| result.clone()));
            return;
        }
        objects::resolve(self, &d, &field.name, args, parents, out);
    }

    fn type_of(&self, object: &Obj) -> TypeId {
        let t = &self.domain.types;
        match object {
            Obj::User(_) => t.user,
            Obj::Channel(_) => t.channel,
            Obj::Stream(_) => t.stream,
            Obj::Category(_) => t.category,
            Obj::Message(..) => t.chat_message,
            Obj::Deleted(..) => t.deleted,
            Obj::Banned(..) => t.banned,
            Obj::StreamUpdate(_) => t.stream_update,
            // Never met in an abstract position.
            Obj::Root
            | Obj::RoomEvent(..)
            | Obj::ChannelRoot(_)
            | Obj::Connection(_)
            | Obj::Edge(..)
            | Obj::PageInfo(_) => t.query,
        }
    }
}

/// A channel of the store as the authorization module sees it, at a time (for bans
/// that end). Every mutation asks `auth::policy::can` through it.
#[derive(Debug, Clone, Copy)]
pub struct Roles<'a> {
    /// The store's data.
    pub d: &'a crate::store::Data,
    /// The channel.
    pub c: ChannelIx,
    /// Now, for timed bans.
    pub now: Millis,
}

impl crate::auth::policy::ChannelRoles for Roles<'_> {
    fn owner_id(&self) -> &str {
        &self.d.user(self.d.channel(self.c).owner).id
    }

    fn is_moderator(&self, user_id: &str) -> bool {
        self.d
            .user_by_id(user_id)
            .is_some_and(|u| self.d.channel(self.c).moderators.contains(&u))
    }

    fn is_banned(&self, user_id: &str) -> bool {
        self.d
            .user_by_id(user_id)
            .is_some_and(|u| self.d.is_banned(self.c, u, self.now))
    }
}

/// A subscription field on the event it is rendered for.
fn subscription_root(d: &crate::store::Data, field: &str, root: &Obj) -> Resolved<Obj> {
    use crate::store::RoomEvent as E;
    match (field, root) {
        ("chatEvents", Obj::RoomEvent(c, seq)) => match d.channel(*c).log.get(*seq) {
            Some(E::Message { .. }) => Resolved::Object(Obj::Message(*c, *seq)),
            Some(E::Deleted { .. }) => Resolved::Object(Obj::Deleted(*c, *seq)),
            Some(E::Banned { .. }) => Resolved::Object(Obj::Banned(*c, *seq)),
            None => Resolved::Error("no such room event".into()),
        },
        ("streamUpdates", Obj::ChannelRoot(c)) => Resolved::Object(Obj::StreamUpdate(*c)),
        ("viewerCount", Obj::ChannelRoot(c)) => Resolved::Leaf(graphql_exec::exec::Leaf::Int(
            i64::from(d.channel(*c).viewers),
        )),
        (other, _) => Resolved::Error(format!("Subscription.{other} has no event here").into()),
    }
}

/// Turns a result into a field value.
fn value(r: Result<Resolved<Obj>, FieldError>) -> Resolved<Obj> {
    r.unwrap_or_else(Resolved::Error)
}

#[cfg(test)]
mod tests;
