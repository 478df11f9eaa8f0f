//! The records a [`super::Store`] hands out: owned rows, keyed by stable ids, the same
//! from every implementation. Resolvers share them (`Rc`) once a shard's cache holds
//! them; nothing refers to another record by anything but its id.

use std::sync::Arc;

pub use streamhub_pubsub::Author;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A user; every user has exactly one channel. The names are shared (`Arc`) so that a
/// chat message's author is made from them without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The id (the token's `sub`).
    pub id: Arc<str>,
    /// The login (unique, case-insensitive).
    pub login: Arc<str>,
    /// The name shown.
    pub display_name: Arc<str>,
    /// The profile text.
    pub bio: Option<Box<str>>,
    /// Whether the user holds the global admin role (from the token's `roles`).
    pub admin: bool,
    /// When the user was created.
    pub created_at: Millis,
    /// The user's channel's id.
    pub channel_id: Box<str>,
}

/// A channel and its chat room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The id (also the room's id).
    pub id: Box<str>,
    /// The owner's id.
    pub owner_id: Box<str>,
    /// The owner's login, which is the channel's.
    pub login: Box<str>,
    /// The title.
    pub title: Box<str>,
    /// ISO 639-1 language code.
    pub language: Box<str>,
    /// Tags.
    pub tags: Vec<Box<str>>,
    /// The category's id.
    pub category_id: Option<Box<str>>,
    /// The live stream's id, while live.
    pub stream_id: Option<Box<str>>,
    /// How many users follow it.
    pub follower_count: u32,
    /// The moderators' ids.
    pub moderator_ids: Vec<Box<str>>,
}

/// A stream: one live session of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The id.
    pub id: Box<str>,
    /// Its channel's id.
    pub channel_id: Box<str>,
    /// The title when it started (the channel's title follows later changes).
    pub title: Box<str>,
    /// The category's id.
    pub category_id: Option<Box<str>>,
    /// The language.
    pub language: Box<str>,
    /// When it started.
    pub started_at: Millis,
}

/// A category of streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// The id.
    pub id: Box<str>,
    /// The URL slug.
    pub slug: Box<str>,
    /// The name shown.
    pub name: Box<str>,
}

/// A live channel, as the lists of live streams need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// The channel's id.
    pub channel_id: Box<str>,
    /// The channel's login (ties between equal viewer counts go by it).
    pub login: Box<str>,
    /// The live stream's id.
    pub stream_id: Box<str>,
    /// The channel's category's id.
    pub category_id: Option<Box<str>>,
    /// The channel's language.
    pub language: Box<str>,
}

/// A chat message that is not deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its channel's id.
    pub channel_id: streamhub_pubsub::RoomId,
    /// Its seq in the channel's room.
    pub seq: u64,
    /// Its author, as when it was sent.
    pub author: Author,
    /// The text.
    pub body: Arc<str>,
    /// When it was sent.
    pub sent_at: Millis,
}

/// What a user is in a channel, for the authorization module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// The channel owner's id.
    pub owner_id: Box<str>,
    /// Whether the user moderates the channel.
    pub moderator: bool,
    /// The user's ban, if any: until when (None: until unbanned).
    pub ban: Option<Option<Millis>>,
}

/// One page of a list ordered newest first by a keyset (a follow's number, say): each
/// item's id with its key, whether more follow, and the whole list's length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// (key, id), in list order.
    pub items: Vec<(u64, Box<str>)>,
    /// Whether items follow the last one.
    pub has_next: bool,
    /// The length of the whole list.
    pub total: usize,
}

impl KeyPage {
    /// The ids of the page's first `n` items, in list order.
    pub fn ids(&self, n: usize) -> Vec<&str> {
        self.items.iter().take(n).map(|(_, id)| &**id).collect()
    }
}

/// Something found by a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A user, by id.
    User(Box<str>),
    /// A channel, by id.
    Channel(Box<str>),
    /// A category, by id.
    Category(Box<str>),
}
