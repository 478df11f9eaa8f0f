//! The data layer's seam: [`Store`], an async, fallible trait shaped for the executor's
//! level-by-level batches (loads by many ids at once, pages by keyset, mutations as
//! [`Command`]s that return the [`Change`]s they caused), the rows it hands out
//! ([`rows`]), the keyset cursors clients page with ([`cursor`]), and each shard's
//! read-through cache in front of it ([`cache`]).
//!
//! Implementations: [`memory::MemoryStore`] (the embedded default, with the demo data)
//! and [`pg::PgStore`] (PostgreSQL with `DATABASE_URL`: its schema, migrations, demo
//! seed, chat writer and circuit breaker live in [`pg`]).
//! Nothing outside this module sees an implementation's internals: callers hold rows and
//! ids.

pub mod cache;
pub mod cursor;
pub mod memory;
pub mod pg;
pub mod rows;

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use rows::{
    Author, Category, Channel, Found, KeyPage, Live, Membership, Message, Millis, Stream, User,
};

/// The current time in milliseconds since the epoch.
pub fn now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Where the node reads the time that requests, caches' ages and rooms' histories are
/// measured with: the wall clock in the server ([`SystemClock`]); a test can give one
/// it moves by hand.
pub trait Clock: Send + Sync + Debug {
    /// The current time in milliseconds since the epoch.
    fn now(&self) -> Millis;
}

/// The wall clock ([`now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        now()
    }
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// What the call names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with the data as it is (a stream already live, say).
    #[error("{0}")]
    Conflict(String),
    /// The input cannot be kept as given (PostgreSQL refuses a NUL character in text,
    /// say): `BAD_USER_INPUT`, and no sign of the store's health.
    #[error("{0}")]
    Invalid(String),
    /// The store cannot answer now (its database is down, say): `SERVICE_UNAVAILABLE`.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// What a store call returns: a `Send` future, so a peer's multi-threaded executor
/// (the bench's async-graphql) can await it as well as a shard.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A change to the data, sent by the domain once its input and authorization checks
/// have passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The user a token names exists, with this admin role: created (with a free login
    /// made from `login`) or its role updated.
    EnsureUser {
        /// The token's subject.
        id: Box<str>,
        /// The token's login.
        login: Box<str>,
        /// The token's admin role.
        admin: bool,
        /// Now, the creation time if it is created.
        now: Millis,
    },
    /// A user's profile changes (None: unchanged; an empty bio removes it).
    UpdateProfile {
        /// The user.
        user_id: Box<str>,
        /// The new display name.
        display_name: Option<Box<str>>,
        /// The new bio.
        bio: Option<Box<str>>,
    },
    /// A channel's settings change (None: unchanged).
    UpdateChannel {
        /// The channel.
        channel_id: Box<str>,
        /// The new title.
        title: Option<Box<str>>,
        /// The new language.
        language: Option<Box<str>>,
        /// The new tags.
        tags: Option<Vec<Box<str>>>,
        /// The new category (Some(None): none).
        category_id: Option<Option<Box<str>>>,
    },
    /// A channel goes live with a new stream (a conflict if it is live).
    StartStream {
        /// The channel.
        channel_id: Box<str>,
        /// The title.
        title: Box<str>,
        /// The category.
        category_id: Option<Box<str>>,
        /// When it starts.
        now: Millis,
    },
    /// A channel goes offline.
    EndStream {
        /// The channel.
        channel_id: Box<str>,
    },
    /// A user follows a channel.
    Follow {
        /// Who.
        user_id: Box<str>,
        /// Which channel.
        channel_id: Box<str>,
    },
    /// A user stops following a channel.
    Unfollow {
        /// Who.
        user_id: Box<str>,
        /// Which channel.
        channel_id: Box<str>,
    },
    /// A user is banned from a channel's chat (replacing an earlier ban).
    Ban {
        /// The channel.
        channel_id: Box<str>,
        /// Who.
        user_id: Box<str>,
        /// Until when (None: until unbanned).
        until: Option<Millis>,
    },
    /// A user's ban ends.
    Unban {
        /// The channel.
        channel_id: Box<str>,
        /// Who.
        user_id: Box<str>,
    },
    /// A user becomes a moderator of a channel.
    AddModerator {
        /// The channel.
        channel_id: Box<str>,
        /// Who.
        user_id: Box<str>,
    },
    /// A user stops moderating a channel.
    RemoveModerator {
        /// The channel.
        channel_id: Box<str>,
        /// Who.
        user_id: Box<str>,
    },
}

/// What a command changed: every shard's cache drops what these name, and the
/// subscribers of a channel's stream hear of [`Change::Stream`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A user's row.
    User(Box<str>),
    /// A channel's row.
    Channel(Box<str>),
    /// Whether a user follows a channel.
    Follow {
        /// The user.
        user_id: Box<str>,
        /// The channel.
        channel_id: Box<str>,
    },
    /// The set of live channels, or what the live lists show of one.
    Live,
    /// What `streamUpdates` shows of a channel (live status, title, category).
    Stream(Box<str>),
    /// What a user is in a channel (moderator, banned).
    Membership {
        /// The user.
        user_id: Box<str>,
        /// The channel.
        channel_id: Box<str>,
    },
}

/// A room's end as a store keeps it (see [`Store::tail`]).
#[derive(Debug, Clone, Default)]
pub struct Tail {
    /// The room's last seq (0 before its first event).
    pub last_seq: u64,
    /// Its newest kept events, oldest first, with their seqs.
    pub events: Vec<(u64, Arc<streamhub_pubsub::ChatEvent>)>,
}

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// What it changed (empty when it changed nothing: a second follow, say).
    pub changes: Vec<Change>,
    /// The id of what it created (a user for `EnsureUser`, a stream for `StartStream`).
    pub created: Option<Box<str>>,
}

/// The data: users, channels, streams, categories, follows, moderators and bans, and
/// the chat messages of each channel's room.
///
/// Reads that take ids answer one entry per id, in order (None for an id that is not
/// there), so a level of the executor is one call. Paged lists are keyset-paged: a page
/// starts after the key of the last item of the page before, which means the same on
/// every implementation.
pub trait Store: Send + Sync + Debug {
    /// Users by id.
    fn users<'a>(&'a self, ids: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<User>>>;

    /// The user with `login` (case-insensitive).
    fn user_by_login<'a>(&'a self, login: &'a str) -> StoreFuture<'a, Option<User>>;

    /// The user with `login` (case-insensitive) and that user's channel. Two calls here;
    /// PostgreSQL overrides it with one statement (a channel page starts with it).
    fn user_and_channel_by_login<'a>(
        &'a self,
        login: &'a str,
    ) -> StoreFuture<'a, Option<(User, Option<Channel>)>> {
        Box::pin(async move {
            let Some(user) = self.user_by_login(login).await? else {
                return Ok(None);
            };
            let channel = self.channels(&[&*user.channel_id]).await?.pop().flatten();
            Ok(Some((user, channel)))
        })
    }

    /// Channels by id.
    fn channels<'a>(&'a self, ids: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Channel>>>;

    /// Streams by id (ended ones too).
    fn streams<'a>(&'a self, ids: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Stream>>>;

    /// Every category.
    fn categories(&self) -> StoreFuture<'_, Vec<Category>>;

    /// Every live channel, in no order.
    fn live(&self) -> StoreFuture<'_, Vec<Live>>;

    /// Whether `user_id` follows each of `channel_ids`.
    fn follows<'a>(
        &'a self,
        user_id: &'a str,
        channel_ids: &'a [&'a str],
    ) -> StoreFuture<'a, Vec<bool>>;

    /// A channel's followers (user ids), newest follow first, after the follow keyed
    /// `after`.
    fn followers<'a>(
        &'a self,
        channel_id: &'a str,
        after: Option<u64>,
        first: usize,
    ) -> StoreFuture<'a, KeyPage>;

    /// [`Store::followers`] and the users of the page's first `with_users` items, in
    /// its order (None where a row is gone). One call here; PostgreSQL overrides it
    /// with one statement, so that a page's followers cost one round trip.
    fn followers_with_users<'a>(
        &'a self,
        channel_id: &'a str,
        after: Option<u64>,
        first: usize,
        with_users: usize,
    ) -> StoreFuture<'a, (KeyPage, Vec<Option<User>>)> {
        Box::pin(async move {
            let page = self.followers(channel_id, after, first).await?;
            let users = self.users(&page.ids(with_users)).await?;
            Ok((page, users))
        })
    }

    /// The channels a user follows (channel ids), newest follow first, after the follow
    /// keyed `after`.
    fn following<'a>(
        &'a self,
        user_id: &'a str,
        after: Option<u64>,
        first: usize,
    ) -> StoreFuture<'a, KeyPage>;

    /// [`Store::following`] and the channels of the page's first `with_channels` items,
    /// in its order (None where a row is gone). One call here; PostgreSQL overrides it
    /// with one statement.
    fn following_with_channels<'a>(
        &'a self,
        user_id: &'a str,
        after: Option<u64>,
        first: usize,
        with_channels: usize,
    ) -> StoreFuture<'a, (KeyPage, Vec<Option<Channel>>)> {
        Box::pin(async move {
            let page = self.following(user_id, after, first).await?;
            let channels = self.channels(&page.ids(with_channels)).await?;
            Ok((page, channels))
        })
    }

    /// The `last` chat messages (deleted ones left out) of a channel before `before_seq`
    /// (exclusive; None: the newest), oldest first.
    fn messages<'a>(
        &'a self,
        channel_id: &'a str,
        last: usize,
        before_seq: Option<u64>,
    ) -> StoreFuture<'a, Vec<Message>>;

    /// The chat message at `seq` of a channel, if there and not deleted.
    fn message<'a>(&'a self, channel_id: &'a str, seq: u64) -> StoreFuture<'a, Option<Message>>;

    /// What `user_id` is in a channel (its owner, a moderator, banned); None when the
    /// channel does not exist.
    fn membership<'a>(
        &'a self,
        channel_id: &'a str,
        user_id: Option<&'a str>,
    ) -> StoreFuture<'a, Option<Membership>>;

    /// Users whose login, channels whose title and categories whose name contain
    /// `query` (lowercase), in that order, at most `first`.
    fn search<'a>(&'a self, query: &'a str, first: usize) -> StoreFuture<'a, Vec<Found>>;

    /// Applies a command.
    fn apply(&self, command: Command) -> StoreFuture<'_, Applied>;

    /// Keeps a room event (a chat message, a deletion, a ban) once its orderer has given
    /// it a seq, ordered `at` (what its age is counted from): acknowledged means kept.
    fn record<'a>(&'a self, event: &'a streamhub_pubsub::Event, at: Millis) -> StoreFuture<'a, ()>;

    /// Takes back the room event recorded at `seq` of `channel_id` (its orderer voided
    /// it: no node delivers it, so the chat log must not keep it). Only a store of
    /// record shared by nodes (PostgreSQL) is ever asked; this one refuses.
    fn unrecord<'a>(&'a self, channel_id: &'a str, seq: u64) -> StoreFuture<'a, ()> {
        let _ = (channel_id, seq);
        Box::pin(std::future::ready(Err(StoreError::Unavailable(
            "this store does not take events back".into(),
        ))))
    }

    /// A room's last seq and its newest kept events (at most `max`, oldest first), for
    /// a history that starts (an orderer's, after a start); None when the channel does
    /// not exist.
    fn tail<'a>(&'a self, channel_id: &'a str, max: usize) -> StoreFuture<'a, Option<Tail>>;

    /// Whether the store can serve now (`/readyz`).
    fn ready(&self) -> StoreFuture<'_, ()>;

    /// The same store with every read on the primary, when its reads may otherwise go
    /// to a replica that lags behind it (None: every read already sees every write).
    /// The domain reads through it for a viewer who wrote recently (read your own
    /// writes), for what a write checks, and for a cache's miss on what changed
    /// recently.
    fn primary(&self) -> Option<&dyn Store> {
        None
    }

    /// Where reads go now, when the store has a read replica (for `/metrics`).
    fn replica(&self) -> Option<ReplicaStatus> {
        None
    }

    /// How many calls the store has made to its database (primary and replica): a
    /// statement for each read, a transaction for each command; the chat writer's
    /// batches are not counted. None: it has no database (for `/metrics`).
    fn calls(&self) -> Option<u64> {
        None
    }
}

/// A read replica's state as the store last measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Whether reads go to it (reachable and within the lag allowed); when not, they go
    /// to the primary.
    pub serving: bool,
    /// Whether the last check reached it.
    pub reachable: bool,
    /// How far it was behind the primary at the last check, in milliseconds (None:
    /// never measured).
    pub lag_ms: Option<u64>,
}

/// The node's store.
pub type SharedStore = Arc<dyn Store>;
