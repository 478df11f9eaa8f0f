//! The demo dataset: alice, bob and carol, generated users with their channels, a fixed
//! set of categories, live streams, follows and chat history. Deterministic: one seeded
//! generator, so the same size gives the same data on every run.

use std::sync::Arc;

use streamhub_pubsub::history::HistoryLimits;
use streamhub_pubsub::{Author, Chat, ChatEvent};

use super::data::{CategoryIx, ChannelIx, Data, UserIx};
use crate::store::{Category, Channel, Millis, Stream, User};

/// How much demo data to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoSize {
    /// None: the store starts empty (users appear with their first token).
    Off,
    /// This many users (alice, bob and carol included).
    Users(u32),
}

impl DemoSize {
    /// `small` (200 users, the default)...
    pub const SMALL: DemoSize = DemoSize::Users(200);
    /// ... and `large` (100,000 users: big enough for cache-miss benchmarks).
    pub const LARGE: DemoSize = DemoSize::Users(100_000);
}

/// Parses `off`, `small`, `large` or a user count (at least 3).
pub fn parse_size(s: &str) -> Result<DemoSize, String> {
    match s {
        "off" => Ok(DemoSize::Off),
        "small" => Ok(DemoSize::SMALL),
        "large" => Ok(DemoSize::LARGE),
        n => match n.parse::<u32>() {
            Ok(n) if (3..=5_000_000).contains(&n) => Ok(DemoSize::Users(n)),
            _ => Err(format!(
                "`{s}` is not a demo size: use off, small, large or a user count from 3 to 5000000"
            )),
        },
    }
}

/// 2026-11-01T00:00:00Z: demo records are dated from here.
const EPOCH: Millis = 1_793_491_200_000;

/// The named demo users: (id, login, display name, admin). Their ids match the demo
/// tokens `serve` logs.
pub const NAMED: [(&str, &str, &str, bool); 3] = [
    ("u1", "alice", "Alice", false),
    ("u2", "bob", "Bob", false),
    ("u3", "carol", "Carol", true),
];

const CATEGORIES: [(&str, &str); 12] = [
    ("just-chatting", "Just Chatting"),
    ("music", "Music"),
    ("art", "Art"),
    ("software-development", "Software Development"),
    ("science-technology", "Science & Technology"),
    ("retro-games", "Retro Games"),
    ("speedrunning", "Speedrunning"),
    ("chess", "Chess"),
    ("cooking", "Cooking"),
    ("travel", "Travel"),
    ("fitness", "Fitness"),
    ("talk-shows", "Talk Shows"),
];

const ADJECTIVES: [&str; 16] = [
    "swift", "quiet", "brave", "lucky", "sunny", "misty", "clever", "cosmic", "amber", "velvet",
    "rapid", "gentle", "bold", "pixel", "lunar", "noble",
];
const NOUNS: [&str; 16] = [
    "fox", "otter", "falcon", "panda", "tiger", "raven", "koala", "lynx", "heron", "badger",
    "whale", "gecko", "moose", "bison", "crane", "mole",
];
const TOPICS: [&str; 10] = [
    "late night session",
    "ranked grind",
    "building a compiler",
    "chill vibes",
    "world record attempts",
    "speedpainting",
    "cooking pasta from scratch",
    "Q&A and chat",
    "road to grandmaster",
    "morning workout",
];
const TAGS: [&str; 8] = [
    "English",
    "Chill",
    "Rust",
    "Speedrun",
    "Competitive",
    "Creative",
    "Educational",
    "IRL",
];
const LANGUAGES: [&str; 8] = ["en", "en", "en", "es", "de", "fr", "pt", "ja"];
const LINES: [&str; 12] = [
    "hello chat!",
    "gg",
    "that was close",
    "what's the plan for today?",
    "first time here, love the stream",
    "LUL",
    "can you explain that again?",
    "nice one",
    "how long have you been streaming?",
    "the music is great",
    "brb",
    "let's go!",
];

/// Chat messages given to each live channel (alice's channel gets twice as many).
const MESSAGES_PER_LIVE_CHANNEL: u32 = 30;

/// The demo data, and the viewer counts it gives live channels (the hub keeps presence;
/// these seed it).
#[derive(Debug)]
pub(super) struct Demo {
    /// The records.
    pub data: Data,
    /// (channel id, viewers) of the live channels.
    pub viewers: Vec<(Box<str>, u32)>,
}

/// The demo data of `size`, each room keeping `limits`, its chat recorded at `now`.
pub(super) fn generate(size: DemoSize, limits: HistoryLimits, now: Millis) -> Demo {
    let mut d = Data::new(limits);
    let mut viewers = Vec::new();
    let DemoSize::Users(users) = size else {
        return Demo { data: d, viewers };
    };
    let mut rng = fastrand::Rng::with_seed(0x5eed_0f57_4ea4);
    for (slug, name) in CATEGORIES {
        d.add_category(slug, name);
    }
    for n in 0..users {
        let created = EPOCH - Millis::from(users - n) * 60_000;
        let u = match NAMED.get(n as usize) {
            Some(&(id, login, name, admin)) => d.add_user(id, login, name, admin, created),
            None => {
                let adj = ADJECTIVES[rng.usize(..ADJECTIVES.len())];
                let noun = NOUNS[rng.usize(..NOUNS.len())];
                let login = format!("{adj}{noun}{}", n + 1);
                let name = format!("{}{} {}", adj[..1].to_uppercase(), &adj[1..], n + 1);
                d.add_user(&format!("u{}", n + 1), &login, &name, false, created)
            }
        };
        let c = d.user(u).channel;
        let ch = &mut d.channels[c.0 as usize];
        ch.title = TOPICS[rng.usize(..TOPICS.len())].into();
        ch.language = LANGUAGES[rng.usize(..LANGUAGES.len())].into();
        ch.tags = (0..rng.usize(0..=3))
            .map(|_| Box::from(TAGS[rng.usize(..TAGS.len())]))
            .collect();
        ch.tags.dedup();
        ch.category = Some(CategoryIx(rng.u32(..CATEGORIES.len() as u32)));
        if n < 3 {
            d.users[u.0 as usize].bio =
                Some(format!("Hi, I am {}.", d.user(u).display_name).into());
        }
    }
    // alice and bob are live; about a quarter of the others too.
    for n in 0..users {
        if n < 2 || (n >= 3 && rng.u32(..4) == 0) {
            let c = d.users[n as usize].channel;
            let title = d.channel(c).title.to_string();
            let category = d.channel(c).category;
            let started = EPOCH + Millis::from(rng.u32(..3_600_000));
            d.start_stream(c, &title, category, started);
            let count = if n == 0 { 1_250 } else { rng.u32(..5_000) };
            viewers.push((d.channel(c).id.clone(), count));
        }
    }
    // Follows: everyone follows a few channels; half of them follow alice.
    for n in 0..users {
        let u = UserIx(n);
        let alice = d.users[0].channel;
        if n != 0 && rng.bool() {
            d.follow(u, alice);
        }
        for _ in 0..rng.u32(3..=12) {
            let c = d.users[rng.u32(..users) as usize].channel;
            if d.channel(c).owner != u {
                d.follow(u, c);
            }
        }
    }
    // bob moderates alice's channel.
    let alice = d.users[0].channel;
    d.channels[alice.0 as usize].moderators.push(UserIx(1));
    // Chat history in live channels, from their followers (or the owner).
    for c in d.live.clone() {
        let count = if c == alice {
            2 * MESSAGES_PER_LIVE_CHANNEL
        } else {
            MESSAGES_PER_LIVE_CHANNEL
        };
        let mut at = EPOCH + 3_600_000;
        let mut seq = 0;
        for k in 0..count {
            let ch = d.channel(c);
            let author = if ch.followers.is_empty() {
                ch.owner
            } else {
                ch.followers[rng.usize(..ch.followers.len())].1
            };
            let author = d.user(author);
            let author = Author {
                id: Arc::from(&*author.id),
                login: Arc::from(&*author.login),
                display_name: Arc::from(&*author.display_name),
            };
            at += Millis::from(rng.u32(1_000..30_000));
            let body = LINES[rng.usize(..LINES.len())].into();
            seq += 1;
            let message = Chat::Message {
                author,
                body,
                sent_at: at,
            };
            d.record(c, seq, Arc::new(ChatEvent::new(message)), now);
            // Now and then a moderator deletes one.
            if k % 17 == 16 {
                let deleted = Chat::Deleted { message_seq: seq };
                seq += 1;
                d.record(c, seq, Arc::new(ChatEvent::new(deleted)), now);
            }
        }
    }
    Demo { data: d, viewers }
}

/// The demo dataset as rows, for loading it into another store (`streamhub seed` fills
/// PostgreSQL with it): the same records the memory store starts with for the same
/// size, read without the memory store's indexes.
#[derive(Debug)]
pub(crate) struct DemoRows {
    data: Data,
    recorded_at: Millis,
}

/// The demo data of `users` users as rows, its chat recorded at `now`. Every room event
/// is kept (no history limit applies: whoever reads the rows applies its own).
pub(crate) fn rows(users: u32, now: Millis) -> DemoRows {
    let everything = HistoryLimits {
        max_events: usize::MAX,
        max_age: None,
    };
    DemoRows {
        data: generate(DemoSize::Users(users), everything, now).data,
        recorded_at: now,
    }
}

/// A follow: who follows which channel, and the follow's key (keys grow with time and
/// order the follow lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FollowRow<'a> {
    /// The follower.
    pub user_id: &'a str,
    /// The channel followed.
    pub channel_id: &'a str,
    /// The key.
    pub key: u64,
}

/// A ban from a channel's chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BanRow<'a> {
    /// The channel.
    pub channel_id: &'a str,
    /// Who is banned.
    pub user_id: &'a str,
    /// Until when (None: until unbanned).
    pub until: Option<Millis>,
}

/// A room event of a channel, at its seq.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChatRow<'a> {
    /// The channel (the room).
    pub channel_id: &'a str,
    /// Its seq in the room: 1, 2, 3, ... without gaps.
    pub seq: u64,
    /// What happened.
    pub chat: &'a Chat,
    /// For a message: whether a later event deleted it.
    pub deleted: bool,
    /// When the room's orderer ordered it.
    pub recorded_at: Millis,
}

impl DemoRows {
    /// The users, in id order (`u1`, `u2`, ...).
    pub fn users(&self) -> impl Iterator<Item = User> + '_ {
        (0..self.data.users.len() as u32).map(|u| self.data.user_row(UserIx(u)))
    }

    /// The categories.
    pub fn categories(&self) -> &[Category] {
        &self.data.categories
    }

    /// The channels, one per user in the users' order, with their live stream, follower
    /// count and moderators.
    pub fn channels(&self) -> impl Iterator<Item = Channel> + '_ {
        (0..self.data.channels.len() as u32).map(|c| self.data.channel_row(ChannelIx(c)))
    }

    /// The streams. Every one is its channel's live stream: the demo ends none.
    pub fn streams(&self) -> &[Stream] {
        &self.data.streams
    }

    /// Every follow, each user's oldest first.
    pub fn follows(&self) -> impl Iterator<Item = FollowRow<'_>> {
        let d = &self.data;
        d.users.iter().flat_map(move |u| {
            u.following.iter().map(move |&(key, c)| FollowRow {
                user_id: &u.id,
                channel_id: &d.channel(c).id,
                key,
            })
        })
    }

    /// Every ban.
    pub fn bans(&self) -> impl Iterator<Item = BanRow<'_>> {
        let d = &self.data;
        d.channels.iter().flat_map(move |c| {
            c.bans.iter().map(move |&(u, until)| BanRow {
                channel_id: &c.id,
                user_id: &d.user(u).id,
                until,
            })
        })
    }

    /// Every room event of every channel (each room's newest first).
    pub fn chat(&self) -> impl Iterator<Item = ChatRow<'_>> {
        let recorded_at = self.recorded_at;
        self.data.channels.iter().flat_map(move |c| {
            c.chat
                .events
                .before(u64::MAX, recorded_at)
                .map(move |(seq, event)| ChatRow {
                    channel_id: &c.id,
                    seq,
                    chat: &event.chat,
                    deleted: c.chat.deleted.contains(&seq),
                    recorded_at,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn demo(size: DemoSize) -> Demo {
        generate(size, HistoryLimits::default(), EPOCH)
    }

    fn fingerprint(demo: &Demo) -> String {
        let d = &demo.data;
        let logins: Vec<&str> = d.users.iter().map(|u| &*u.login).collect();
        let follows: usize = d.users.iter().map(|u| u.following.len()).sum();
        let messages: usize = d.channels.iter().map(|c| c.chat.events.len()).sum();
        format!(
            "{logins:?} {follows} {messages} {:?} {:?}",
            d.live, demo.viewers
        )
    }

    #[test]
    fn the_same_size_gives_the_same_data() {
        let a = demo(DemoSize::SMALL);
        let b = demo(DemoSize::SMALL);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(a.data.users.len(), 200);
        assert_ne!(fingerprint(&a), fingerprint(&demo(DemoSize::Users(201))));
    }

    #[test]
    fn the_named_users_are_there_and_alice_is_live_with_chat() {
        let demo = demo(DemoSize::SMALL);
        let d = &demo.data;
        let alice = d.user_by_login("alice").unwrap();
        assert_eq!(&*d.user(alice).id, "u1");
        assert!(d.user(d.user_by_login("carol").unwrap()).admin);
        let c = d.user(alice).channel;
        assert!(d.channel(c).stream.is_some());
        assert!(d.channel(c).followers.len() > 20);
        assert!(d.channel(c).chat.events.len() >= 60);
        assert_eq!(d.categories.len(), 12);
        assert!(d.live.len() > 20);
        assert_eq!(demo.viewers.len(), d.live.len());
        assert!(demo.viewers.contains(&("ch_u1".into(), 1_250)));
    }

    #[test]
    fn the_rows_are_the_demo_data_whole() {
        let rows = rows(200, EPOCH);
        let memory = demo(DemoSize::SMALL);
        let users: Vec<User> = rows.users().collect();
        assert_eq!(users.len(), 200);
        assert_eq!(&*users[0].id, "u1");
        assert_eq!(&*users[2].login, "carol");
        let channels: Vec<Channel> = rows.channels().collect();
        assert_eq!(channels.len(), 200);
        assert_eq!(rows.categories().len(), 12);
        // Every stream is its channel's live one.
        let live: Vec<&str> = channels
            .iter()
            .filter_map(|c| c.stream_id.as_deref())
            .collect();
        assert_eq!(live.len(), memory.data.live.len());
        assert_eq!(rows.streams().len(), live.len());
        for s in rows.streams() {
            let c = channels.iter().find(|c| c.id == s.channel_id).unwrap();
            assert_eq!(c.stream_id.as_deref(), Some(&*s.id));
        }
        // Follows: as many as the channels count, keys unique.
        let follows: Vec<FollowRow<'_>> = rows.follows().collect();
        let counted: u32 = channels.iter().map(|c| c.follower_count).sum();
        assert_eq!(follows.len(), counted as usize);
        let mut keys: Vec<u64> = follows.iter().map(|f| f.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), follows.len());
        assert_eq!(channels[0].moderator_ids, vec![Box::from("u2")]);
        assert_eq!(rows.bans().count(), 0);
        // Each room's events: seqs 1, 2, 3, ... (every one kept), deletions marking
        // earlier messages.
        let mut by_room: HashMap<&str, Vec<ChatRow<'_>>> = HashMap::new();
        for e in rows.chat() {
            assert_eq!(e.recorded_at, EPOCH);
            by_room.entry(e.channel_id).or_default().push(e);
        }
        assert_eq!(by_room.len(), live.len());
        assert_eq!(by_room["ch_u1"].len(), 63, "60 messages and 3 deletions");
        for events in by_room.values() {
            let mut seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
            seqs.sort_unstable();
            assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
            for e in events {
                if let Chat::Deleted { message_seq } = e.chat {
                    let target = events.iter().find(|m| m.seq == *message_seq).unwrap();
                    assert!(matches!(target.chat, Chat::Message { .. }) && target.deleted);
                }
            }
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("off"), Ok(DemoSize::Off));
        assert_eq!(parse_size("small"), Ok(DemoSize::SMALL));
        assert_eq!(parse_size("50"), Ok(DemoSize::Users(50)));
        assert!(parse_size("2").is_err());
        assert!(parse_size("huge").is_err());
        assert!(demo(DemoSize::Off).data.users.is_empty());
    }
}
