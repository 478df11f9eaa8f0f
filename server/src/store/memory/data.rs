//! The memory store's records: vectors that refer to each other by index, ids, logins
//! and slugs indexed by hash maps, and each channel's chat log. Private to
//! [`super::MemoryStore`], which answers the [`crate::store::Store`] calls from here
//! under its lock and hands out rows, never indexes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use streamhub_pubsub::history::{History, HistoryLimits};
use streamhub_pubsub::{Chat, ChatEvent};

use crate::store::rows::{
    Category, Channel, KeyPage, Live, Membership, Message, Millis, Stream, User,
};

/// A user's index in [`Data::users`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct UserIx(pub u32);
/// A channel's index in [`Data::channels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct ChannelIx(pub u32);
/// A category's index in [`Data::categories`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct CategoryIx(pub u32);
/// A stream's index in [`Data::streams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct StreamIx(pub u32);

#[derive(Debug, Clone)]
pub(super) struct UserRec {
    pub id: Box<str>,
    pub login: Box<str>,
    pub display_name: Box<str>,
    pub bio: Option<Box<str>>,
    pub admin: bool,
    pub created_at: Millis,
    pub channel: ChannelIx,
    /// Channels followed, oldest follow first, with each follow's key.
    pub following: Vec<(u64, ChannelIx)>,
}

#[derive(Debug)]
pub(super) struct ChannelRec {
    pub id: Box<str>,
    pub owner: UserIx,
    pub title: Box<str>,
    pub language: Box<str>,
    pub tags: Vec<Box<str>>,
    pub category: Option<CategoryIx>,
    pub stream: Option<StreamIx>,
    /// Followers, oldest follow first, with each follow's key.
    pub followers: Vec<(u64, UserIx)>,
    pub moderators: Vec<UserIx>,
    /// Bans: the user and when the ban ends (None: until unbanned).
    pub bans: Vec<(UserIx, Option<Millis>)>,
    pub chat: ChatLog,
}

/// A channel's room events as kept (bounded like every room history), and which of its
/// messages are deleted.
#[derive(Debug)]
pub(super) struct ChatLog {
    pub events: History<Arc<ChatEvent>, Millis>,
    pub deleted: HashSet<u64>,
}

/// Everything the memory store holds.
#[derive(Debug)]
pub(super) struct Data {
    pub users: Vec<UserRec>,
    pub channels: Vec<ChannelRec>,
    pub streams: Vec<Stream>,
    pub categories: Vec<Category>,
    /// Live channels, in no order.
    pub live: Vec<ChannelIx>,
    /// How much of each room's chat is kept.
    pub limits: HistoryLimits,
    next_follow: u64,
    user_ids: Index<UserIx>,
    user_logins: Index<UserIx>,
    channel_ids: Index<ChannelIx>,
    category_ids: Index<CategoryIx>,
}

/// Rows by their id (or login), hashed with foldhash: these lookups are on every
/// store call.
type Index<Ix> = HashMap<Box<str>, Ix, foldhash::fast::RandomState>;

impl Data {
    /// An empty store keeping `limits` of each room's chat.
    pub fn new(limits: HistoryLimits) -> Data {
        Data {
            users: Vec::new(),
            channels: Vec::new(),
            streams: Vec::new(),
            categories: Vec::new(),
            live: Vec::new(),
            limits,
            next_follow: 1,
            user_ids: Index::default(),
            user_logins: Index::default(),
            channel_ids: Index::default(),
            category_ids: Index::default(),
        }
    }

    pub fn user_by_id(&self, id: &str) -> Option<UserIx> {
        self.user_ids.get(id).copied()
    }

    pub fn user_by_login(&self, login: &str) -> Option<UserIx> {
        self.user_logins.get(&*login.to_ascii_lowercase()).copied()
    }

    pub fn channel_by_id(&self, id: &str) -> Option<ChannelIx> {
        self.channel_ids.get(id).copied()
    }

    pub fn category_by_id(&self, id: &str) -> Option<CategoryIx> {
        self.category_ids.get(id).copied()
    }

    /// The stream with id `id` (`st<n>`, the n-th stream started).
    pub fn stream_by_id(&self, id: &str) -> Option<StreamIx> {
        let n: u32 = id.strip_prefix("st")?.parse().ok()?;
        let ix = n.checked_sub(1)?;
        ((ix as usize) < self.streams.len()).then_some(StreamIx(ix))
    }

    pub fn user(&self, u: UserIx) -> &UserRec {
        &self.users[u.0 as usize]
    }

    pub fn channel(&self, c: ChannelIx) -> &ChannelRec {
        &self.channels[c.0 as usize]
    }

    pub fn category(&self, k: CategoryIx) -> &Category {
        &self.categories[k.0 as usize]
    }

    /// A user as a row.
    pub fn user_row(&self, u: UserIx) -> User {
        let r = self.user(u);
        User {
            id: Arc::from(&*r.id),
            login: Arc::from(&*r.login),
            display_name: Arc::from(&*r.display_name),
            bio: r.bio.clone(),
            admin: r.admin,
            created_at: r.created_at,
            channel_id: self.channel(r.channel).id.clone(),
        }
    }

    /// A channel as a row.
    pub fn channel_row(&self, c: ChannelIx) -> Channel {
        let r = self.channel(c);
        let owner = self.user(r.owner);
        Channel {
            id: r.id.clone(),
            owner_id: owner.id.clone(),
            login: owner.login.clone(),
            title: r.title.clone(),
            language: r.language.clone(),
            tags: r.tags.clone(),
            category_id: r.category.map(|k| self.category(k).id.clone()),
            stream_id: r.stream.map(|s| self.streams[s.0 as usize].id.clone()),
            follower_count: r.followers.len() as u32,
            moderator_ids: r
                .moderators
                .iter()
                .map(|&m| self.user(m).id.clone())
                .collect(),
        }
    }

    /// A live channel as the live lists need it.
    pub fn live_row(&self, c: ChannelIx) -> Option<Live> {
        let r = self.channel(c);
        Some(Live {
            channel_id: r.id.clone(),
            login: self.user(r.owner).login.clone(),
            stream_id: self.streams[r.stream?.0 as usize].id.clone(),
            category_id: r.category.map(|k| self.category(k).id.clone()),
            language: r.language.clone(),
        })
    }

    /// What `u` is in `c` at `now`.
    pub fn membership(&self, c: ChannelIx, u: Option<UserIx>, now: Millis) -> Membership {
        let r = self.channel(c);
        Membership {
            owner_id: self.user(r.owner).id.clone(),
            moderator: u.is_some_and(|u| r.moderators.contains(&u)),
            ban: u.and_then(|u| {
                r.bans
                    .iter()
                    .find(|&&(b, until)| b == u && until.is_none_or(|t| t > now))
                    .map(|&(_, until)| until)
            }),
        }
    }

    /// The chat message at `seq` of `c`, if kept (at `now`) and not deleted.
    pub fn message(&self, c: ChannelIx, seq: u64, now: Millis) -> Option<Message> {
        let log = &self.channel(c).chat;
        if log.deleted.contains(&seq) {
            return None;
        }
        // Read through `before` so an event past the age is gone, as in the lists.
        let (_, event) = log
            .events
            .before(seq + 1, now)
            .next()
            .filter(|(s, _)| *s == seq)?;
        self.message_row(c, seq, event)
    }

    fn message_row(&self, c: ChannelIx, seq: u64, event: &ChatEvent) -> Option<Message> {
        match &event.chat {
            Chat::Message {
                author,
                body,
                sent_at,
            } => Some(Message {
                channel_id: Arc::from(&*self.channel(c).id),
                seq,
                author: author.clone(),
                body: body.clone(),
                sent_at: *sent_at,
            }),
            _ => None,
        }
    }

    /// The `last` messages of `c` before `before_seq` that are kept and not deleted,
    /// oldest first.
    pub fn messages(
        &self,
        c: ChannelIx,
        last: usize,
        before_seq: Option<u64>,
        now: Millis,
    ) -> Vec<Message> {
        let log = &self.channel(c).chat;
        let mut out: Vec<Message> = log
            .events
            .before(before_seq.unwrap_or(u64::MAX), now)
            .filter(|(seq, _)| !log.deleted.contains(seq))
            .filter_map(|(seq, e)| self.message_row(c, seq, e))
            .take(last)
            .collect();
        out.reverse();
        out
    }

    /// Keeps a room event of `c` at `seq`: a deletion marks its message deleted.
    pub fn record(&mut self, c: ChannelIx, seq: u64, event: Arc<ChatEvent>, now: Millis) {
        let log = &mut self.channels[c.0 as usize].chat;
        if let Chat::Deleted { message_seq } = event.chat {
            log.deleted.insert(message_seq);
        }
        log.events.record(seq, event, now);
        // Deletions of messages no longer kept need not be remembered.
        if log.deleted.len() > self.limits.max_events {
            let oldest = log
                .events
                .before(u64::MAX, now)
                .last()
                .map_or(u64::MAX, |(s, _)| s);
            log.deleted.retain(|&s| s >= oldest);
        }
    }

    pub fn add_category(&mut self, slug: &str, name: &str) -> CategoryIx {
        let ix = CategoryIx(self.categories.len() as u32);
        let id: Box<str> = format!("cat_{slug}").into();
        self.category_ids.insert(id.clone(), ix);
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
        self.users.push(UserRec {
            id: id.into(),
            login: login.into(),
            display_name: display_name.into(),
            bio: None,
            admin,
            created_at,
            channel: c,
            following: Vec::new(),
        });
        self.channels.push(ChannelRec {
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
            chat: ChatLog {
                events: History::new(self.limits),
                deleted: HashSet::new(),
            },
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
        if self.users[u.0 as usize]
            .following
            .iter()
            .any(|&(_, x)| x == c)
        {
            return false;
        }
        let key = self.next_follow;
        self.next_follow += 1;
        self.users[u.0 as usize].following.push((key, c));
        self.channels[c.0 as usize].followers.push((key, u));
        true
    }

    /// Makes `u` stop following `c`; false if it did not.
    pub fn unfollow(&mut self, u: UserIx, c: ChannelIx) -> bool {
        let following = &mut self.users[u.0 as usize].following;
        let Some(i) = following.iter().position(|&(_, x)| x == c) else {
            return false;
        };
        following.remove(i);
        let followers = &mut self.channels[c.0 as usize].followers;
        if let Some(i) = followers.iter().position(|&(_, x)| x == u) {
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
        let channel_id = ch.id.clone();
        let category_id = category.map(|k| self.category(k).id.clone());
        self.streams.push(Stream {
            id: format!("st{}", s.0 + 1).into(),
            channel_id,
            title: title.into(),
            category_id,
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
}

/// A page of a follow list kept oldest first, newest first, after the follow keyed
/// `after`: (key, index) pairs, whether more follow, and the list's length.
pub(super) fn newest_first<T: Copy>(
    list: &[(u64, T)],
    after: Option<u64>,
    first: usize,
) -> (Vec<(u64, T)>, bool) {
    // Keys grow with time, so the list is sorted by key: the items before `after`'s
    // place, newest first.
    let end = after.map_or(list.len(), |k| list.partition_point(|&(key, _)| key < k));
    let items: Vec<(u64, T)> = list[..end].iter().rev().take(first).copied().collect();
    let has_next = end > items.len();
    (items, has_next)
}

/// A [`newest_first`] page with each item's id (`id` of its index).
pub(super) fn key_page<T: Copy>(
    list: &[(u64, T)],
    after: Option<u64>,
    first: usize,
    id: impl Fn(T) -> Box<str>,
) -> KeyPage {
    let (items, has_next) = newest_first(list, after, first);
    KeyPage {
        items: items.into_iter().map(|(k, x)| (k, id(x))).collect(),
        has_next,
        total: list.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_users() -> (Data, UserIx, UserIx) {
        let mut d = Data::new(HistoryLimits::default());
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
        assert_eq!(&*d.channel_row(c).login, "Alice");
        assert_eq!(d.free_login("ALICE"), "ALICE2");
        assert_eq!(d.free_login("dave"), "dave");
    }

    #[test]
    fn follows_are_kept_on_both_sides_once_with_growing_keys() {
        let (mut d, a, b) = two_users();
        let c = d.user(b).channel;
        let own = d.user(a).channel;
        assert!(d.follow(a, c));
        assert!(!d.follow(a, c));
        assert!(d.follow(b, own));
        assert_eq!(d.channel(c).followers.len(), 1);
        assert!(d.channel(own).followers[0].0 > d.channel(c).followers[0].0);
        assert!(d.unfollow(a, c));
        assert!(!d.unfollow(a, c));
        assert!(d.channel(c).followers.is_empty());
        assert!(d.user(a).following.is_empty());
    }

    #[test]
    fn follow_pages_go_newest_first_after_a_key() {
        let list: Vec<(u64, u32)> = vec![(2, 20), (5, 50), (9, 90), (11, 110)];
        assert_eq!(
            newest_first(&list, None, 2),
            (vec![(11, 110), (9, 90)], true)
        );
        assert_eq!(
            newest_first(&list, Some(9), 2),
            (vec![(5, 50), (2, 20)], false)
        );
        assert_eq!(newest_first(&list, Some(2), 2), (vec![], false));
        // A key that is gone (unfollowed) still marks a place.
        assert_eq!(
            newest_first(&list, Some(6), 5),
            (vec![(5, 50), (2, 20)], false)
        );
    }

    #[test]
    fn streams_start_and_end_and_keep_the_live_list() {
        let (mut d, a, _) = two_users();
        let c = d.user(a).channel;
        let s = d.start_stream(c, "hello", None, 5);
        assert_eq!(d.live, vec![c]);
        assert_eq!(d.stream_by_id(&d.streams[s.0 as usize].id.clone()), Some(s));
        assert_eq!(d.channel(c).title.as_ref(), "hello");
        assert!(d.live_row(c).is_some());
        assert!(d.end_stream(c));
        assert!(!d.end_stream(c));
        assert!(d.live.is_empty());
        assert_eq!(d.live_row(c), None);
        assert_eq!(d.stream_by_id("st9"), None);
        assert_eq!(d.stream_by_id("st0"), None);
    }

    #[test]
    fn deleted_and_aged_messages_leave_the_lists_and_bans_expire() {
        let (mut d, a, b) = two_users();
        let c = d.user(a).channel;
        d.limits.max_age = Some(std::time::Duration::from_millis(1000));
        d.channels[c.0 as usize].chat.events = History::new(d.limits);
        let msg = |n: u32| {
            Arc::new(ChatEvent::new(Chat::Message {
                author: streamhub_pubsub::Author {
                    id: "u2".into(),
                    login: "bob".into(),
                    display_name: "Bob".into(),
                },
                body: n.to_string().into(),
                sent_at: 0,
            }))
        };
        d.record(c, 1, msg(1), 0);
        d.record(c, 2, msg(2), 500);
        d.record(
            c,
            3,
            Arc::new(ChatEvent::new(Chat::Deleted { message_seq: 2 })),
            600,
        );
        d.record(c, 4, msg(4), 700);
        let seqs = |d: &Data, now| -> Vec<u64> {
            d.messages(c, 10, None, now).iter().map(|m| m.seq).collect()
        };
        assert_eq!(seqs(&d, 900), vec![1, 4]);
        assert_eq!(d.message(c, 2, 900), None, "deleted");
        assert_eq!(d.message(c, 3, 900), None, "not a message");
        assert_eq!(d.message(c, 4, 900).map(|m| m.seq), Some(4));
        assert_eq!(seqs(&d, 1000), vec![4], "1 is 1000 ms old");
        assert_eq!(d.message(c, 1, 1000), None);
        assert_eq!(d.messages(c, 10, Some(4), 900).len(), 1);
        d.channels[c.0 as usize].bans.push((b, Some(100)));
        assert_eq!(d.membership(c, Some(b), 99).ban, Some(Some(100)));
        assert_eq!(d.membership(c, Some(b), 100).ban, None);
        assert_eq!(d.membership(c, Some(a), 0).ban, None);
        assert_eq!(&*d.membership(c, None, 0).owner_id, "u1");
    }
}
