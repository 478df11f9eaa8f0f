//! A shard's read-through cache of hot rows: users, channels (with their follower
//! counts), streams, categories, the live list, follows, memberships (what a user is in
//! a channel, for a mutation's checks), the first page of each follow list and each
//! room's recent messages. Shard-local (`Rc`, no lock, no atomic), bounded in entries per table and by
//! a TTL, both settings.
//!
//! Exact within a node: every change a mutation makes reaches every shard's cache
//! through the pubsub rings ([`Cache::invalidate`]), and the mutation bumps the node's
//! write counter only after publishing, before it answers. A request first compares
//! that counter with the last one its shard caught up to and, when behind, drains the
//! rings before reading ([`crate::realtime::hub::Hub::sync`]), so a request that starts
//! after a mutation answered, on any shard, never reads what it changed from a cache.
//! A fill that raced an invalidation (its store call began before the invalidation was
//! applied) serves its own request but is not kept. A lapped reader clears everything.
//!
//! With a read replica, a fill read from the replica could bring back a row older than
//! the change that dropped it (the replica had not replayed it yet) and keep it for a
//! TTL. So a change leaves a mark in place of what it dropped, for
//! [`CacheLimits::primary_after_change`] (`STREAMHUB_DB_READ_YOUR_WRITES`): a miss on
//! a marked entry ([`Cache::changed`]) is read from the primary, whose rows include the
//! change. Past the mark a miss reads the replica again, which by then has replayed the
//! change unless it lags by more than the mark's life (the replica's check moves reads
//! to the primary above `STREAMHUB_DB_REPLICA_MAX_LAG`, so this takes a lag that grew
//! past both between two checks).

use std::borrow::Borrow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::rc::Rc;
use std::sync::Arc;

use super::rows::{Category, Channel, KeyPage, Live, Membership, Message, Millis, Stream, User};
use super::Change;
use crate::metrics::ShardMetrics;

/// How much a cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Entries per table (0 turns the cache off).
    pub entries: usize,
    /// How long an entry serves, in milliseconds.
    pub ttl: Millis,
    /// How long after a change a miss on what it dropped is read from the primary, in
    /// milliseconds (0: no mark is left; without a replica every read is the
    /// primary's).
    pub primary_after_change: Millis,
}

/// The tables, for the hit and miss counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Users by id.
    User,
    /// Logins to user ids.
    Login,
    /// Channels by id.
    Channel,
    /// Streams by id.
    Stream,
    /// The categories.
    Categories,
    /// The live list.
    Live,
    /// Whether a user follows a channel.
    Follow,
    /// A room's recent messages.
    Messages,
    /// The first page of a follow list (a channel's followers, a user's follows).
    FollowList,
    /// What a user is in a channel.
    Membership,
}

impl Kind {
    /// Every kind, in counter order.
    pub const ALL: [Kind; 10] = [
        Kind::User,
        Kind::Login,
        Kind::Channel,
        Kind::Stream,
        Kind::Categories,
        Kind::Live,
        Kind::Follow,
        Kind::Messages,
        Kind::FollowList,
        Kind::Membership,
    ];

    /// The metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Login => "login",
            Kind::Channel => "channel",
            Kind::Stream => "stream",
            Kind::Categories => "categories",
            Kind::Live => "live",
            Kind::Follow => "follow",
            Kind::Messages => "messages",
            Kind::FollowList => "follow_list",
            Kind::Membership => "membership",
        }
    }
}

/// The most recent messages a room's entry holds (`recentMessages` asks for at most 100).
pub const RECENT_MESSAGES: usize = 100;

/// The follows a follow list's entry holds: its first page at the largest `first`.
pub const FOLLOW_PAGE: usize = 100;

/// Which follow list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowList {
    /// A channel's followers (users), by channel id.
    Followers,
    /// The channels a user follows, by user id.
    Following,
}

/// One table: entries that expire, at most `cap` of them. An entry holds a row until
/// it expires, or (None) marks a change until then ([`CacheLimits::primary_after_change`]).
#[derive(Debug)]
struct Table<K, V> {
    map: HashMap<K, (Option<V>, Millis), foldhash::fast::RandomState>,
}

impl<K: Hash + Eq + Clone, V: Clone> Table<K, V> {
    fn new() -> Self {
        Table {
            map: HashMap::default(),
        }
    }

    fn get<Q>(&self, key: &Q, now: Millis) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.map.get(key) {
            Some((Some(v), expires)) if *expires > now => Some(v.clone()),
            _ => None,
        }
    }

    /// Whether a change to `key` was marked until after `now`.
    fn changed<Q>(&self, key: &Q, now: Millis) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        matches!(self.map.get(key), Some((None, until)) if *until > now)
    }

    /// Keeps `value` until `now + ttl`; when full, the expired entries leave first, then
    /// one entry in hash order (random per process).
    fn put(&mut self, key: K, value: V, now: Millis, limits: CacheLimits) {
        self.keep(
            key,
            Some(value),
            now.saturating_add(limits.ttl),
            now,
            limits,
        );
    }

    /// Keeps a row or a mark until `until`, within the table's bound.
    fn keep(&mut self, key: K, value: Option<V>, until: Millis, now: Millis, limits: CacheLimits) {
        if limits.entries == 0 {
            return;
        }
        if self.map.len() >= limits.entries && !self.map.contains_key(&key) {
            self.map.retain(|_, (_, expires)| *expires > now);
            if self.map.len() >= limits.entries {
                if let Some(victim) = self.map.keys().next().cloned() {
                    self.map.remove(&victim);
                }
            }
        }
        self.map.insert(key, (value, until));
    }

    /// Drops what `key` holds; with [`CacheLimits::primary_after_change`], leaves a
    /// mark of the change in its place.
    fn remove<Q>(&mut self, key: &Q, now: Millis, limits: CacheLimits)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToKey<K> + ?Sized,
    {
        if limits.primary_after_change > 0 {
            let until = now.saturating_add(limits.primary_after_change);
            self.keep(key.to_key(), None, until, now, limits);
        } else {
            self.map.remove(key);
        }
    }

    fn clear(&mut self) {
        self.map.clear();
    }
}

/// A borrowed key made owned, for the mark a change leaves.
trait ToKey<K> {
    fn to_key(&self) -> K;
}

impl ToKey<Box<str>> for str {
    fn to_key(&self) -> Box<str> {
        self.into()
    }
}

impl ToKey<u64> for u64 {
    fn to_key(&self) -> u64 {
        *self
    }
}

impl ToKey<()> for () {
    fn to_key(&self) {}
}

/// The key of a (user, channel) pair: a hash, the pair kept beside the answer so a
/// collision is a miss, never a wrong answer.
fn pair_key(user_id: &str, channel_id: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x0f01_10f5).hash_one((user_id, channel_id))
}

/// An answer about a (user, channel) pair, with the pair.
type PairEntry<T> = Rc<(Box<str>, Box<str>, T)>;

/// A room's recent messages, oldest first.
type Recent = Rc<[Rc<Message>]>;

/// A shard's cache. Its tables sit in `RefCell`s of their own, borrowed only inside a
/// method, never across an await.
#[derive(Debug)]
pub struct Cache {
    limits: CacheLimits,
    users: RefCell<Table<Box<str>, Rc<User>>>,
    logins: RefCell<Table<Box<str>, Rc<str>>>,
    channels: RefCell<Table<Box<str>, Rc<Channel>>>,
    streams: RefCell<Table<Box<str>, Rc<Stream>>>,
    categories: RefCell<Table<(), Rc<[Rc<Category>]>>>,
    live: RefCell<Table<(), Rc<[Live]>>>,
    follows: RefCell<Table<u64, PairEntry<bool>>>,
    memberships: RefCell<Table<u64, PairEntry<Option<Rc<Membership>>>>>,
    messages: RefCell<Table<Box<str>, Recent>>,
    followers: RefCell<Table<Box<str>, Rc<KeyPage>>>,
    following: RefCell<Table<Box<str>, Rc<KeyPage>>>,
    /// The node's write counter this shard's caches are caught up to.
    applied: Cell<u64>,
    /// Invalidations applied so far (a fill that began before the last one is not kept).
    generation: Cell<u64>,
    /// Until when every miss counts as [`Cache::changed`] (a lapped ring cleared the
    /// cache, the changes it lost unknown).
    cleared_until: Cell<Millis>,
    /// Whether lookups are a trial's ([`Cache::begin_trial`]): counted once it ends.
    trial: Cell<bool>,
    /// The lookups of the trial under way.
    staged: RefCell<Vec<(Kind, bool)>>,
    metrics: Arc<ShardMetrics>,
}

/// What a miss was on, for [`Cache::changed`].
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// A user by id.
    User(&'a str),
    /// A channel by id.
    Channel(&'a str),
    /// Whether a user follows a channel.
    Follow(&'a str, &'a str),
    /// What a user is in a channel.
    Membership(&'a str, &'a str),
    /// The live list.
    Live,
    /// A room's recent messages.
    Messages(&'a str),
    /// The first page of a follow list.
    FollowList(FollowList, &'a str),
    /// What no change names (streams, categories, logins).
    Other,
}

/// A fill in progress: began at this generation.
#[derive(Debug, Clone, Copy)]
pub struct Fill(u64);

impl Cache {
    /// An empty cache keeping `limits`, counting its hits and misses in `metrics`.
    pub fn new(limits: CacheLimits, metrics: Arc<ShardMetrics>) -> Cache {
        Cache {
            limits,
            users: RefCell::new(Table::new()),
            logins: RefCell::new(Table::new()),
            channels: RefCell::new(Table::new()),
            streams: RefCell::new(Table::new()),
            categories: RefCell::new(Table::new()),
            live: RefCell::new(Table::new()),
            follows: RefCell::new(Table::new()),
            memberships: RefCell::new(Table::new()),
            messages: RefCell::new(Table::new()),
            followers: RefCell::new(Table::new()),
            following: RefCell::new(Table::new()),
            applied: Cell::new(0),
            generation: Cell::new(0),
            cleared_until: Cell::new(0),
            trial: Cell::new(false),
            staged: RefCell::new(Vec::new()),
            metrics,
        }
    }

    /// The node's write counter this cache is caught up to.
    pub fn applied(&self) -> u64 {
        self.applied.get()
    }

    /// Marks the cache caught up to the node's write counter `writes`.
    pub fn caught_up(&self, writes: u64) {
        self.applied.set(self.applied.get().max(writes));
    }

    /// Starts a fill: what is read from the store after this is kept only if no
    /// invalidation comes in between.
    pub fn fill(&self) -> Fill {
        Fill(self.generation.get())
    }

    fn keeps(&self, fill: Fill) -> bool {
        fill.0 == self.generation.get()
    }

    fn count(&self, kind: Kind, hit: bool) {
        if self.trial.get() {
            self.staged.borrow_mut().push((kind, hit));
        } else {
            self.metrics.cache_lookup(kind, hit);
        }
    }

    /// Starts a trial: a field tried from the cache alone, whose lookups count only if
    /// it succeeds (else the field is resolved again, and its lookups counted then).
    pub fn begin_trial(&self) {
        self.trial.set(true);
    }

    /// Ends the trial: its lookups are counted when it `succeeded`, else forgotten.
    pub fn end_trial(&self, succeeded: bool) {
        self.trial.set(false);
        let mut staged = self.staged.borrow_mut();
        if succeeded {
            for &(kind, hit) in staged.iter() {
                self.metrics.cache_lookup(kind, hit);
            }
        }
        staged.clear();
    }

    /// A user by id.
    pub fn user(&self, id: &str, now: Millis) -> Option<Rc<User>> {
        let v = self.users.borrow().get(id, now);
        self.count(Kind::User, v.is_some());
        v
    }

    /// Keeps a user read in `fill`.
    pub fn put_user(&self, user: &Rc<User>, now: Millis, fill: Fill) {
        if self.keeps(fill) {
            let limits = self.limits;
            self.users
                .borrow_mut()
                .put(Box::from(&*user.id), Rc::clone(user), now, limits);
            self.logins.borrow_mut().put(
                user.login.to_ascii_lowercase().into(),
                Rc::from(&*user.id),
                now,
                limits,
            );
        }
    }

    /// The id of the user with a login (lowercase).
    pub fn login(&self, login: &str, now: Millis) -> Option<Rc<str>> {
        let v = self.logins.borrow().get(login, now);
        self.count(Kind::Login, v.is_some());
        v
    }

    /// A channel by id.
    pub fn channel(&self, id: &str, now: Millis) -> Option<Rc<Channel>> {
        let v = self.channels.borrow().get(id, now);
        self.count(Kind::Channel, v.is_some());
        v
    }

    /// Keeps a channel read in `fill`.
    pub fn put_channel(&self, channel: &Rc<Channel>, now: Millis, fill: Fill) {
        if self.keeps(fill) {
            self.channels.borrow_mut().put(
                channel.id.clone(),
                Rc::clone(channel),
                now,
                self.limits,
            );
        }
    }

    /// A stream by id.
    pub fn stream(&self, id: &str, now: Millis) -> Option<Rc<Stream>> {
        let v = self.streams.borrow().get(id, now);
        self.count(Kind::Stream, v.is_some());
        v
    }

    /// Keeps a stream read in `fill`.
    pub fn put_stream(&self, stream: &Rc<Stream>, now: Millis, fill: Fill) {
        if self.keeps(fill) {
            self.streams
                .borrow_mut()
                .put(stream.id.clone(), Rc::clone(stream), now, self.limits);
        }
    }

    /// Every category.
    pub fn categories(&self, now: Millis) -> Option<Rc<[Rc<Category>]>> {
        let v = self.categories.borrow().get(&(), now);
        self.count(Kind::Categories, v.is_some());
        v
    }

    /// Keeps the categories read in `fill`.
    pub fn put_categories(&self, all: &Rc<[Rc<Category>]>, now: Millis, fill: Fill) {
        if self.keeps(fill) {
            self.categories
                .borrow_mut()
                .put((), Rc::clone(all), now, self.limits);
        }
    }

    /// The live channels.
    pub fn live(&self, now: Millis) -> Option<Rc<[Live]>> {
        let v = self.live.borrow().get(&(), now);
        self.count(Kind::Live, v.is_some());
        v
    }

    /// Keeps the live channels read in `fill`.
    pub fn put_live(&self, live: &Rc<[Live]>, now: Millis, fill: Fill) {
        if self.keeps(fill) {
            self.live
                .borrow_mut()
                .put((), Rc::clone(live), now, self.limits);
        }
    }

    /// Whether a user follows a channel.
    pub fn follows(&self, user_id: &str, channel_id: &str, now: Millis) -> Option<bool> {
        let v = self
            .follows
            .borrow()
            .get(&pair_key(user_id, channel_id), now)
            .filter(|e| &*e.0 == user_id && &*e.1 == channel_id)
            .map(|e| e.2);
        self.count(Kind::Follow, v.is_some());
        v
    }

    /// Keeps whether a user follows a channel, read in `fill`.
    pub fn put_follows(&self, user_id: &str, channel_id: &str, yes: bool, now: Millis, fill: Fill) {
        if self.keeps(fill) {
            self.follows.borrow_mut().put(
                pair_key(user_id, channel_id),
                Rc::new((user_id.into(), channel_id.into(), yes)),
                now,
                self.limits,
            );
        }
    }

    /// What a user is in a channel (None: nothing), if cached.
    pub fn membership(
        &self,
        user_id: &str,
        channel_id: &str,
        now: Millis,
    ) -> Option<Option<Rc<Membership>>> {
        let v = self
            .memberships
            .borrow()
            .get(&pair_key(user_id, channel_id), now)
            .filter(|e| &*e.0 == user_id && &*e.1 == channel_id)
            .map(|e| e.2.clone());
        self.count(Kind::Membership, v.is_some());
        v
    }

    /// Keeps what a user is in a channel, read in `fill`.
    pub fn put_membership(
        &self,
        user_id: &str,
        channel_id: &str,
        membership: Option<Rc<Membership>>,
        now: Millis,
        fill: Fill,
    ) {
        if self.keeps(fill) {
            self.memberships.borrow_mut().put(
                pair_key(user_id, channel_id),
                Rc::new((user_id.into(), channel_id.into(), membership)),
                now,
                self.limits,
            );
        }
    }

    /// A room's most recent messages (at most [`RECENT_MESSAGES`], oldest first).
    pub fn messages(&self, channel_id: &str, now: Millis) -> Option<Rc<[Rc<Message>]>> {
        let v = self.messages.borrow().get(channel_id, now);
        self.count(Kind::Messages, v.is_some());
        v
    }

    /// Keeps a room's most recent messages, read in `fill`.
    pub fn put_messages(
        &self,
        channel_id: &str,
        messages: &Rc<[Rc<Message>]>,
        now: Millis,
        fill: Fill,
    ) {
        if self.keeps(fill) {
            self.messages.borrow_mut().put(
                channel_id.into(),
                Rc::clone(messages),
                now,
                self.limits,
            );
        }
    }

    fn follow_table(&self, list: FollowList) -> &RefCell<Table<Box<str>, Rc<KeyPage>>> {
        match list {
            FollowList::Followers => &self.followers,
            FollowList::Following => &self.following,
        }
    }

    /// The first [`FOLLOW_PAGE`] follows of a list (of the channel or user `id`).
    pub fn follow_list(&self, list: FollowList, id: &str, now: Millis) -> Option<Rc<KeyPage>> {
        let v = self.follow_table(list).borrow().get(id, now);
        self.count(Kind::FollowList, v.is_some());
        v
    }

    /// Keeps the first page of a follow list, read in `fill`.
    pub fn put_follow_list(
        &self,
        list: FollowList,
        id: &str,
        page: &Rc<KeyPage>,
        now: Millis,
        fill: Fill,
    ) {
        if self.keeps(fill) {
            self.follow_table(list)
                .borrow_mut()
                .put(id.into(), Rc::clone(page), now, self.limits);
        }
    }

    /// Whether what `key` names changed within [`CacheLimits::primary_after_change`]
    /// of `now` (always false when that is 0): a miss on it is read from the primary.
    pub fn changed(&self, key: Key<'_>, now: Millis) -> bool {
        if self.limits.primary_after_change == 0 {
            return false;
        }
        if self.cleared_until.get() > now {
            return true;
        }
        match key {
            Key::User(id) => self.users.borrow().changed(id, now),
            Key::Channel(id) => self.channels.borrow().changed(id, now),
            Key::Follow(user_id, channel_id) => self
                .follows
                .borrow()
                .changed(&pair_key(user_id, channel_id), now),
            Key::Membership(user_id, channel_id) => self
                .memberships
                .borrow()
                .changed(&pair_key(user_id, channel_id), now),
            Key::Live => self.live.borrow().changed(&(), now),
            Key::Messages(id) => self.messages.borrow().changed(id, now),
            Key::FollowList(list, id) => self.follow_table(list).borrow().changed(id, now),
            Key::Other => false,
        }
    }

    /// Drops what a change (applied at `now`) makes stale.
    pub fn invalidate(&self, change: &Change, now: Millis) {
        self.generation.set(self.generation.get() + 1);
        let limits = self.limits;
        match change {
            Change::User(id) => self.users.borrow_mut().remove(&**id, now, limits),
            Change::Channel(id) => self.channels.borrow_mut().remove(&**id, now, limits),
            Change::Follow {
                user_id,
                channel_id,
            } => {
                self.follows
                    .borrow_mut()
                    .remove(&pair_key(user_id, channel_id), now, limits);
                self.followers
                    .borrow_mut()
                    .remove(&**channel_id, now, limits);
                self.following.borrow_mut().remove(&**user_id, now, limits);
            }
            Change::Live => self.live.borrow_mut().remove(&(), now, limits),
            Change::Membership {
                user_id,
                channel_id,
            } => self
                .memberships
                .borrow_mut()
                .remove(&pair_key(user_id, channel_id), now, limits),
            Change::Stream(_) => {}
        }
    }

    /// Drops a room's recent messages (a room event came at `now`).
    pub fn room_changed(&self, channel_id: &str, now: Millis) {
        self.generation.set(self.generation.get() + 1);
        self.messages
            .borrow_mut()
            .remove(channel_id, now, self.limits);
    }

    /// Drops everything (invalidations were lost to a lapped ring, noticed at `now`).
    pub fn clear(&self, now: Millis) {
        self.generation.set(self.generation.get() + 1);
        if self.limits.primary_after_change > 0 {
            self.cleared_until
                .set(now.saturating_add(self.limits.primary_after_change));
        }
        self.users.borrow_mut().clear();
        self.logins.borrow_mut().clear();
        self.channels.borrow_mut().clear();
        self.streams.borrow_mut().clear();
        self.categories.borrow_mut().clear();
        self.live.borrow_mut().clear();
        self.follows.borrow_mut().clear();
        self.memberships.borrow_mut().clear();
        self.messages.borrow_mut().clear();
        self.followers.borrow_mut().clear();
        self.following.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: usize) -> Cache {
        Cache::new(
            CacheLimits {
                entries,
                ttl: 100,
                primary_after_change: 0,
            },
            Arc::new(ShardMetrics::new(0)),
        )
    }

    fn channel(id: &str) -> Rc<Channel> {
        Rc::new(Channel {
            id: id.into(),
            owner_id: "u1".into(),
            login: "alice".into(),
            title: "t".into(),
            language: "en".into(),
            tags: Vec::new(),
            category_id: None,
            stream_id: None,
            follower_count: 0,
            moderator_ids: Vec::new(),
        })
    }

    #[test]
    fn entries_serve_until_their_ttl_and_leave_on_a_change() {
        let c = cache(10);
        c.put_channel(&channel("ch_1"), 0, c.fill());
        assert!(c.channel("ch_1", 99).is_some());
        assert!(c.channel("ch_1", 100).is_none(), "expired at the TTL");
        c.put_channel(&channel("ch_1"), 200, c.fill());
        c.invalidate(&Change::Channel("ch_1".into()), 0);
        assert!(c.channel("ch_1", 201).is_none());
        let m = &c.metrics;
        assert_eq!(
            (
                m.cache_count(Kind::Channel, true),
                m.cache_count(Kind::Channel, false)
            ),
            (1, 2)
        );
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_not_kept() {
        let c = cache(10);
        let fill = c.fill();
        c.invalidate(&Change::Channel("ch_1".into()), 0);
        c.put_channel(&channel("ch_1"), 0, fill);
        assert!(c.channel("ch_1", 1).is_none());
    }

    #[test]
    fn a_change_marks_what_it_dropped_for_a_while_when_asked_to() {
        let c = Cache::new(
            CacheLimits {
                entries: 10,
                ttl: 100,
                primary_after_change: 50,
            },
            Arc::new(ShardMetrics::new(0)),
        );
        c.put_channel(&channel("ch_1"), 0, c.fill());
        assert!(!c.changed(Key::Channel("ch_1"), 1), "a row is no mark");
        c.invalidate(&Change::Channel("ch_1".into()), 10);
        assert!(c.channel("ch_1", 11).is_none(), "a mark is a miss");
        assert!(c.changed(Key::Channel("ch_1"), 11));
        assert!(!c.changed(Key::Channel("ch_2"), 11));
        assert!(
            !c.changed(Key::Channel("ch_1"), 60),
            "the mark lasts its while"
        );
        c.put_channel(&channel("ch_1"), 12, c.fill());
        assert!(c.channel("ch_1", 13).is_some(), "a fill replaces the mark");
        c.room_changed("ch_1", 20);
        assert!(c.changed(Key::Messages("ch_1"), 21));
        c.clear(30);
        assert!(
            c.changed(Key::Other, 31),
            "after a lap everything counts as changed"
        );
        assert!(!c.changed(Key::Other, 80));
        let off = cache(10);
        off.invalidate(&Change::Channel("ch_1".into()), 10);
        assert!(
            !off.changed(Key::Channel("ch_1"), 11),
            "no marks without a replica"
        );
    }

    #[test]
    fn tables_stay_within_their_bound() {
        let c = cache(3);
        for n in 0..10 {
            c.put_channel(&channel(&format!("ch_{n}")), 0, c.fill());
            assert!(c.channels.borrow().map.len() <= 3);
        }
        assert!(c.channel("ch_9", 1).is_some(), "the newest is kept");
        let off = cache(0);
        off.put_channel(&channel("ch_1"), 0, off.fill());
        assert!(off.channel("ch_1", 1).is_none(), "0 entries: off");
    }

    #[test]
    fn follows_are_kept_per_pair_and_cleared_by_a_lap() {
        let c = cache(10);
        c.put_follows("u1", "ch_2", true, 0, c.fill());
        c.put_follows("u2", "ch_2", false, 0, c.fill());
        assert_eq!(c.follows("u1", "ch_2", 1), Some(true));
        assert_eq!(c.follows("u2", "ch_2", 1), Some(false));
        assert_eq!(c.follows("u1", "ch_3", 1), None);
        c.invalidate(
            &Change::Follow {
                user_id: "u1".into(),
                channel_id: "ch_2".into(),
            },
            0,
        );
        assert_eq!(c.follows("u1", "ch_2", 1), None);
        c.clear(0);
        assert_eq!(c.follows("u2", "ch_2", 1), None);
    }

    #[test]
    fn memberships_are_kept_per_pair_and_leave_on_their_change() {
        let c = cache(10);
        let m = Rc::new(Membership {
            owner_id: "u1".into(),
            moderator: true,
            ban: None,
        });
        c.put_membership("u2", "ch_1", Some(Rc::clone(&m)), 0, c.fill());
        c.put_membership("u3", "ch_1", None, 0, c.fill());
        assert_eq!(c.membership("u2", "ch_1", 1), Some(Some(m)));
        assert_eq!(c.membership("u3", "ch_1", 1), Some(None), "nothing, cached");
        assert_eq!(c.membership("u2", "ch_2", 1), None, "not cached");
        c.invalidate(
            &Change::Membership {
                user_id: "u2".into(),
                channel_id: "ch_1".into(),
            },
            0,
        );
        assert_eq!(c.membership("u2", "ch_1", 1), None);
        assert_eq!(c.membership("u3", "ch_1", 1), Some(None));
    }

    #[test]
    fn a_follow_drops_both_of_its_lists_and_no_other() {
        let c = cache(10);
        let page = Rc::new(KeyPage {
            items: vec![(1, "u1".into())],
            has_next: false,
            total: 1,
        });
        c.put_follow_list(FollowList::Followers, "ch_2", &page, 0, c.fill());
        c.put_follow_list(FollowList::Followers, "ch_3", &page, 0, c.fill());
        c.put_follow_list(FollowList::Following, "u1", &page, 0, c.fill());
        c.put_follow_list(FollowList::Following, "u2", &page, 0, c.fill());
        c.invalidate(
            &Change::Follow {
                user_id: "u1".into(),
                channel_id: "ch_2".into(),
            },
            0,
        );
        assert!(c.follow_list(FollowList::Followers, "ch_2", 1).is_none());
        assert!(c.follow_list(FollowList::Following, "u1", 1).is_none());
        assert!(c.follow_list(FollowList::Followers, "ch_3", 1).is_some());
        assert!(c.follow_list(FollowList::Following, "u2", 1).is_some());
    }
}
