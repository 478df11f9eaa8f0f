//! The embedded store: users, channels, streams, categories, follows and each channel's
//! room log (chat messages, deletions, bans), in memory, shared by every shard.
//!
//! Records live in vectors and refer to each other by index ([`UserIx`], ...); ids,
//! logins and slugs are indexed by hash maps. Readers take the read side of one
//! `RwLock` for a batch of work; mutations take the write side briefly. The demo
//! dataset ([`demo`]) fills it deterministically. The room logs' ages are measured on
//! the store's [`Clock`]: the wall clock, unless another is given.

pub mod demo;
mod log;

pub use log::{Retention, RoomLog};

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A user's index in [`Data::users`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserIx(pub u32);
/// A channel's index in [`Data::channels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelIx(pub u32);
/// A stream's index in [`Data::streams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamIx(pub u32);
/// A category's index in [`Data::categories`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CategoryIx(pub u32);

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current time in milliseconds since the epoch.
pub fn now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Where the store reads the time its room logs' ages are measured with (appends,
/// trims, `since` recovery): the wall clock in the server ([`SystemClock`]); a test can
/// give one it moves by hand ([`Data::set_clock`]).
pub trait Clock: Send + Sync + std::fmt::Debug {
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

/// The clock a [`Data`] reads: the wall clock unless another is given.
#[derive(Debug, Clone)]
struct StoreClock(Arc<dyn Clock>);

impl Default for StoreClock {
    fn default() -> StoreClock {
        StoreClock(Arc::new(SystemClock))
    }
}

/// A user; every user has exactly one channel.
#[derive(Debug, Clone)]
pub struct User {
    /// The id (the token's `sub`).
    pub id: Box<str>,
    /// The login (unique, case-insensitive).
    pub login: Box<str>,
    /// The name shown.
    pub display_name: Box<str>,
    /// The profile text.
    pub bio: Option<Box<str>>,
    /// Whether the user holds the global admin role (from the token's `roles`).
    pub admin: bool,
    /// When the user was created.
    pub created_at: Millis,
    /// The user's channel.
    pub channel: ChannelIx,
    /// Channels the user follows, in the order followed.
    pub following: Vec<ChannelIx>,
}

/// A channel and its chat room.
#[derive(Debug, Clone)]
pub struct Channel {
    /// The id.
    pub id: Box<str>,
    /// The owner (whose login is the channel's login).
    pub owner: UserIx,
    /// The title.
    pub title: Box<str>,
    /// ISO 639-1 language code.
    pub language: Box<str>,
    /// Tags.
    pub tags: Vec<Box<str>>,
    /// The category.
    pub category: Option<CategoryIx>,
    /// The live stream, while live.
    pub stream: Option<StreamIx>,
    /// Followers, in the order they followed.
    pub followers: Vec<UserIx>,
    /// Moderators.
    pub moderators: Vec<UserIx>,
    /// Bans: the user and when the ban ends (None: until unbanned).
    pub bans: Vec<(UserIx, Option<Millis>)>,
    /// The room's recent events; an event's seq is its position since the room began.
    pub log: RoomLog,
    /// Connections joined to the room across the cluster (kept by the real-time hub;
    /// the demo dataset seeds it for live channels).
    pub viewers: u32,
}

/// A stream: one live session of a channel.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The id.
    pub id: Box<str>,
    /// Its channel.
    pub channel: ChannelIx,
    /// The title when it started (the channel's title follows later changes).
    pub title: Box<str>,
    /// The category.
    pub category: Option<CategoryIx>,
    /// The language.
    pub language: Box<str>,
    /// When it started.
    pub started_at: Millis,
}

/// A category of streams.
#[derive(Debug, Clone)]
pub struct Category {
    /// The id.
    pub id: Box<str>,
    /// The URL slug.
    pub slug: Box<str>,
    /// The name shown.
    pub name: Box<str>,
}

/// One event of a room, in seq order.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    /// A chat message.
    Message {
        /// Its author.
        author: UserIx,
        /// The text.
        body: Box<str>,
        /// When it was sent.
        sent_at: Millis,
        /// Whether a later event deleted it.
        deleted: bool,
    },
    /// The message at `message_seq` was deleted.
    Deleted {
        /// The deleted message's seq.
        message_seq: u32,
    },
    /// A user was banned.
    Banned {
        /// Who.
        user: UserIx,
        /// Until when (None: until unbanned).
        until: Option<Millis>,
    },
}

/// Everything the store holds.
#[derive(Debug, Default)]
pub struct Data {
    /// Users by index.
    pub users: Vec<User>,
    /// Channels by index.
    pub channels: Vec<Channel>,
    /// Streams by index (ended ones stay, for `node(id:)`).
    pub streams: Vec<Stream>,
    /// Categories by index.
    pub categories: Vec<Category>,
    /// Live channels, in no order.
    pub live: Vec<ChannelIx>,
    /// How much of each room's log is kept.
    pub retention: Retention,
    clock: StoreClock,
    user_ids: HashMap<Box<str>, UserIx>,
    user_logins: HashMap<Box<str>, UserIx>,
    channel_ids: HashMap<Box<str>, ChannelIx>,
    category_ids: HashMap<Box<str>, CategoryIx>,
    category_slugs: HashMap<Box<str>, CategoryIx>,
}

/// The store shared by every shard.
#[derive(Debug, Default)]
pub struct Store {
    data: RwLock<Data>,
}

impl Store {
    /// A store holding `data`.
    pub fn new(data: Data) -> Store {
        Store {
            data: RwLock::new(data),
        }
    }

    /// Read access. A panic while holding the lock cannot leave half-written records
    /// that matter more than serving, so poisoning is ignored.
    pub fn read(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access.
    pub fn write(&self) -> RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Data {
    /// The user with id `id`.
    pub fn user_by_id(&self, id: &str) -> Option<UserIx> {
        self.user_ids.get(id).copied()
    }

    /// The user with login `login` (case-insensitive).
    pub fn user_by_login(&self, login: &str) -> Option<UserIx> {
        self.user_logins.get(&*login.to_ascii_lowercase()).copied()
    }

    /// The channel with id `id`.
    pub fn channel_by_id(&self, id: &str) -> Option<ChannelIx> {
        self.channel_ids.get(id).copied()
    }

    /// The category with id `id`.
    pub fn category_by_id(&self, id: &str) -> Option<CategoryIx> {
        self.category_ids.get(id).copied()
    }

    /// The category with slug `slug`.
    pub fn category_by_slug(&self, slug: &str) -> Option<CategoryIx> {
        self.category_slugs.get(slug).copied()
    }

    /// The stream with id `id`.
    pub fn stream_by_id(&self, id: &str) -> Option<StreamIx> {
        let n: u32 = id.strip_prefix("st")?.parse().ok()?;
        let ix = n.checked_sub(1)?;
        ((ix as usize) < self.streams.len()).then_some(StreamIx(ix))
    }

    /// A user record.
    pub fn user(&self, u: UserIx) -> &User {
        &self.users[u.0 as usize]
    }

    /// A channel record.
    pub fn channel(&self, c: ChannelIx) -> &Channel {
        &self.channels[c.0 as usize]
    }

    /// A stream record.
    pub fn stream(&self, s: StreamIx) -> &Stream {
        &self.streams[s.0 as usize]
    }

    /// A category record.
    pub fn category(&self, c: CategoryIx) -> &Category {
        &self.categories[c.0 as usize]
    }

    /// A channel's login: its owner's.
    pub fn channel_login(&self, c: ChannelIx) -> &str {
        &self.user(self.channel(c).owner).login
    }

    /// Adds a category.
    pub fn add_category(&mut self, slug: &str, name: &str) -> CategoryIx {
        let ix = CategoryIx(self.categories.len() as u32);
        let id: Box<str> = format!("cat_{slug}").into();
        self.category_ids.insert(id.clone(), ix);
        self.category_slugs.insert(slug.into(), ix);
        self.categories.push(Category {
            id,
            slug: slug.into(),
            name: name.into(),
        });
        ix
    }

    /// Adds a user and their channel. The login must be free (see [`Data::free_login`]).
    pub fn add_user(
        &mut self,
        id: &str,
        login: &str,
        display_name: &str,
        admin: bool,
        created_at: Millis,
    ) -> UserIx {
        let u = UserIx(self.users.len() as u32);
        let c = ChannelIx(self.channels.len() as u32);
        let channel_id: Box<str> = format!("ch_{id}").into();
        self.user_ids.insert(id.into(), u);
        self.user_logins
            .insert(login.to_ascii_lowercase().into(), u);
        self.channel_ids.insert(channel_id.clone(), c);
        self.users.push(User {
            id: id.into(),
            login: login.into(),
            display_name: display_name.into(),
            bio: None,
            admin,
            created_at,
            channel: c,
            following: Vec::new(),
        });
        self.channels.push(Channel {
            id: channel_id,
            owner: u,
            title: format!("{display_name}'s channel").into(),
            language: "en".into(),
            tags: Vec::new(),
            category: None,
            stream: None,
            followers: Vec::new(),
            moderators: Vec::new(),
            bans: Vec::new(),
            log: RoomLog::default(),
            viewers: 0,
        });
        u
    }

    /// `login`, or `login` with a numeric suffix when another user has it.
    pub fn free_login(&self, login: &str) -> String {
        if self.user_by_login(login).is_none() {
            return login.to_owned();
        }
        (2u32..)
            .map(|n| format!("{login}{n}"))
            .find(|l| self.user_by_login(l).is_none())
            .unwrap_or_default()
    }

    /// Makes `u` follow `c`; false if it already did.
    pub fn follow(&mut self, u: UserIx, c: ChannelIx) -> bool {
        if self.users[u.0 as usize].following.contains(&c) {
            return false;
        }
        self.users[u.0 as usize].following.push(c);
        self.channels[c.0 as usize].followers.push(u);
        true
    }

    /// Makes `u` stop following `c`; false if it did not.
    pub fn unfollow(&mut self, u: UserIx, c: ChannelIx) -> bool {
        let following = &mut self.users[u.0 as usize].following;
        let Some(i) = following.iter().position(|&x| x == c) else {
            return false;
        };
        following.remove(i);
        let followers = &mut self.channels[c.0 as usize].followers;
        if let Some(i) = followers.iter().position(|&x| x == u) {
            followers.remove(i);
        }
        true
    }

    /// Takes `c` live with a new stream.
    pub fn start_stream(
        &mut self,
        c: ChannelIx,
        title: &str,
        category: Option<CategoryIx>,
        now: Millis,
    ) -> StreamIx {
        let s = StreamIx(self.streams.len() as u32);
        let ch = &mut self.channels[c.0 as usize];
        if ch.stream.is_none() {
            self.live.push(c);
        }
        ch.title = title.into();
        ch.category = category;
        ch.stream = Some(s);
        let language = ch.language.clone();
        self.streams.push(Stream {
            id: format!("st{}", s.0 + 1).into(),
            channel: c,
            title: title.into(),
            category,
            language,
            started_at: now,
        });
        s
    }

    /// Takes `c` offline; false if it was not live.
    pub fn end_stream(&mut self, c: ChannelIx) -> bool {
        if self.channels[c.0 as usize].stream.take().is_none() {
            return false;
        }
        self.live.retain(|&x| x != c);
        true
    }

    /// Keeps `keep` of every room's log from now on, trimming each at once.
    pub fn set_retention(&mut self, keep: Retention) {
        self.retention = keep;
        let now = self.now();
        for c in &mut self.channels {
            c.log.trim(now, keep);
        }
    }

    /// Reads the time from `clock` from now on (set it before anything is appended: the
    /// ages of events already held were measured on the clock before).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = StoreClock(clock);
    }

    /// The time on the store's clock, which the room logs' ages are measured with.
    pub fn now(&self) -> Millis {
        self.clock.0.now()
    }

    /// Appends an event to `c`'s room at the store's time, trims the room's log to
    /// [`Data::retention`], and returns the event's seq.
    pub fn append(&mut self, c: ChannelIx, event: RoomEvent) -> u32 {
        let keep = self.retention;
        let now = self.now();
        self.channels[c.0 as usize].log.push(event, now, keep)
    }

    /// The author of the chat message at `seq` in `c`, if it is held and not deleted.
    pub fn message_author(&self, c: ChannelIx, seq: u32) -> Option<UserIx> {
        match self.channel(c).log.get(seq)? {
            RoomEvent::Message {
                author,
                deleted: false,
                ..
            } => Some(*author),
            _ => None,
        }
    }

    /// Marks the message at `seq` in `c` deleted and appends the deletion to the room;
    /// returns the deletion's seq.
    pub fn delete_message(&mut self, c: ChannelIx, seq: u32) -> u32 {
        if let Some(RoomEvent::Message { deleted, .. }) =
            self.channels[c.0 as usize].log.get_mut(seq)
        {
            *deleted = true;
        }
        self.append(c, RoomEvent::Deleted { message_seq: seq })
    }

    /// Whether `u` is banned from `c` at `now`.
    pub fn is_banned(&self, c: ChannelIx, u: UserIx, now: Millis) -> bool {
        self.channel(c)
            .bans
            .iter()
            .any(|&(b, until)| b == u && until.is_none_or(|t| t > now))
    }

    /// Live channels, most viewers first, ties by login; optionally only those of one
    /// category or language.
    pub fn live_sorted(
        &self,
        category: Option<CategoryIx>,
        language: Option<&str>,
    ) -> Vec<ChannelIx> {
        let mut live: Vec<ChannelIx> = self
            .live
            .iter()
            .copied()
            .filter(|&c| {
                let ch = self.channel(c);
                category.is_none_or(|k| ch.category == Some(k))
                    && language.is_none_or(|l| &*ch.language == l)
            })
            .collect();
        live.sort_by(|&a, &b| {
            self.channel(b)
                .viewers
                .cmp(&self.channel(a).viewers)
                .then_with(|| self.channel_login(a).cmp(self.channel_login(b)))
        });
        live
    }

    /// The seqs of the `last` chat messages (deleted ones left out) of `c` before
    /// `before_seq` (exclusive; None: the newest), oldest first.
    pub fn messages(&self, c: ChannelIx, last: usize, before_seq: Option<u32>) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .channel(c)
            .log
            .before(before_seq.unwrap_or(u32::MAX))
            .filter(|(_, e)| matches!(e, RoomEvent::Message { deleted: false, .. }))
            .take(last)
            .map(|(seq, _)| seq)
            .collect();
        out.reverse();
        out
    }

    /// Every category, most viewers first, ties by name.
    pub fn categories_by_viewers(&self) -> Vec<CategoryIx> {
        let mut all: Vec<(u64, CategoryIx)> = (0..self.categories.len() as u32)
            .map(|i| (self.category_viewers(CategoryIx(i)), CategoryIx(i)))
            .collect();
        all.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| self.category(a.1).name.cmp(&self.category(b.1).name))
        });
        all.into_iter().map(|(_, k)| k).collect()
    }

    /// The viewer count of a category: the sum over its live channels.
    pub fn category_viewers(&self, k: CategoryIx) -> u64 {
        self.live
            .iter()
            .map(|&c| self.channel(c))
            .filter(|ch| ch.category == Some(k))
            .map(|ch| u64::from(ch.viewers))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_users() -> (Data, UserIx, UserIx) {
        let mut d = Data::default();
        let a = d.add_user("u1", "Alice", "Alice", false, 0);
        let b = d.add_user("u2", "bob", "Bob", false, 0);
        (d, a, b)
    }

    #[test]
    fn users_come_with_a_channel_and_are_found_by_id_and_login() {
        let (d, a, _) = two_users();
        assert_eq!(d.user_by_id("u1"), Some(a));
        assert_eq!(d.user_by_login("alice"), Some(a), "logins ignore case");
        let c = d.user(a).channel;
        assert_eq!(d.channel(c).owner, a);
        assert_eq!(d.channel_by_id("ch_u1"), Some(c));
        assert_eq!(d.channel_login(c), "Alice");
        assert_eq!(d.free_login("ALICE"), "ALICE2");
        assert_eq!(d.free_login("dave"), "dave");
    }

    #[test]
    fn follows_are_kept_on_both_sides_once() {
        let (mut d, a, b) = two_users();
        let c = d.user(b).channel;
        assert!(d.follow(a, c));
        assert!(!d.follow(a, c));
        assert_eq!(d.channel(c).followers, vec![a]);
        assert!(d.unfollow(a, c));
        assert!(!d.unfollow(a, c));
        assert!(d.channel(c).followers.is_empty());
        assert!(d.user(a).following.is_empty());
    }

    #[test]
    fn streams_start_and_end_and_keep_the_live_list() {
        let (mut d, a, _) = two_users();
        let c = d.user(a).channel;
        let s = d.start_stream(c, "hello", None, 5);
        assert_eq!(d.live, vec![c]);
        assert_eq!(d.stream_by_id(&d.stream(s).id), Some(s));
        assert_eq!(d.channel(c).title.as_ref(), "hello");
        assert!(d.end_stream(c));
        assert!(!d.end_stream(c));
        assert!(d.live.is_empty());
        assert_eq!(d.stream_by_id("st9"), None);
        assert_eq!(d.stream_by_id("st0"), None);
    }

    #[test]
    fn room_events_take_consecutive_seqs_and_bans_expire() {
        let (mut d, a, b) = two_users();
        let c = d.user(a).channel;
        let m = RoomEvent::Message {
            author: b,
            body: "hi".into(),
            sent_at: 1,
            deleted: false,
        };
        assert_eq!(d.append(c, m.clone()), 1);
        assert_eq!(d.append(c, RoomEvent::Deleted { message_seq: 1 }), 2);
        d.channels[c.0 as usize].bans.push((b, Some(100)));
        assert!(d.is_banned(c, b, 99));
        assert!(!d.is_banned(c, b, 100));
        assert!(!d.is_banned(c, a, 0));
    }
}
