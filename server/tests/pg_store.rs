//! `PgStore` against this machine's PostgreSQL (127.0.0.1:5432, user `postgres`, trust
//! authentication, database `test`): each test makes a database of its own, migrates
//! it and drops it at the end. The conformance tests run the same commands and records
//! on a memory store (the reference) and on PostgreSQL and expect the same answers.

mod support;

use std::net::TcpListener;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use streamhub_pubsub::{Author, Chat, ChatEvent, Event, HistoryLimits};
use streamhub_server::store::memory::demo::DemoSize;
use streamhub_server::store::memory::MemoryStore;
use streamhub_server::store::pg::migrate::migrate;
use streamhub_server::store::pg::{connect, ConnectError, PgSettings, PgStore, READS};
use streamhub_server::store::{
    Applied, Change, Channel, Clock, Command, Found, Millis, Store, StoreError,
};
use support::Database;
use tokio_postgres::Client;

/// A database of this test's own, migrated, dropped (connections and all) when it goes.
struct TestDb {
    db: Database,
}

impl TestDb {
    async fn create() -> TestDb {
        let db = Database::empty("pgstore");
        let test = TestDb { db };
        migrate(&mut test.client().await).await.unwrap();
        test
    }

    fn url(&self) -> String {
        self.db.url()
    }

    async fn client(&self) -> Client {
        connect(&self.url()).await.unwrap()
    }

    /// A store on this database, its times read from `clock`.
    fn store(&self, clock: Arc<dyn Clock>) -> PgStore {
        PgStore::new(&settings(self.url()), clock).unwrap()
    }
}

fn settings(url: String) -> PgSettings {
    PgSettings {
        url,
        pool_size: 4,
        pools: 1,
        pool_wait: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(5),
        replica: None,
    }
}

/// A store clock the test moves by hand.
#[derive(Debug)]
struct HandClock(AtomicI64);

impl Clock for HandClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

impl HandClock {
    fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// The reference and the store under test, on one clock.
struct Both {
    mem: MemoryStore,
    pg: PgStore,
    clock: Arc<HandClock>,
    _db: TestDb,
}

impl Both {
    async fn new() -> Both {
        let db = TestDb::create().await;
        let clock = Arc::new(HandClock(AtomicI64::new(1_000_000)));
        let limits = HistoryLimits {
            max_events: 100_000,
            max_age: None,
        };
        let (mem, _) = MemoryStore::demo(DemoSize::Off, limits, clock.clone());
        let pg = db.store(clock.clone());
        Both {
            mem,
            pg,
            clock,
            _db: db,
        }
    }

    /// Applies `command` to both, expects the same answer and returns it.
    async fn apply(&self, command: Command) -> Result<Applied, StoreError> {
        let mem = self.mem.apply(command.clone()).await;
        let pg = self.pg.apply(command.clone()).await;
        assert_eq!(mem, pg, "{command:?}");
        pg
    }

    async fn ok(&self, command: Command) -> Applied {
        self.apply(command).await.unwrap()
    }

    /// Records `chat` at `seq` in `room` on both.
    async fn record(&self, room: &str, seq: u64, chat: Chat) {
        let event = Event::new(room, seq, Arc::new(ChatEvent::new(chat)));
        let at = self.clock.now();
        let mem = self.mem.record(&event, at).await;
        let pg = self.pg.record(&event, at).await;
        assert_eq!(mem, pg, "recording {event:?}");
    }
}

/// Asks both stores the same thing (`$s` is each store in turn) and expects the same
/// answer, which it returns.
macro_rules! answer {
    ($both:expr, |$s:ident| $call:expr) => {{
        let mem = {
            let $s: &dyn Store = &$both.mem;
            $call.await
        };
        let pg = {
            let $s: &dyn Store = &$both.pg;
            $call.await
        };
        assert_eq!(mem, pg, "{}", stringify!($call));
        pg
    }};
}

/// [`answer!`] when only the sameness matters.
macro_rules! same {
    ($($ask:tt)*) => {
        let _ = answer!($($ask)*);
    };
}

fn ensure(id: &str, login: &str, admin: bool, now: Millis) -> Command {
    Command::EnsureUser {
        id: id.into(),
        login: login.into(),
        admin,
        now,
    }
}

fn follow(user_id: &str, channel_id: &str) -> Command {
    Command::Follow {
        user_id: user_id.into(),
        channel_id: channel_id.into(),
    }
}

fn start(channel_id: &str, title: &str, now: Millis) -> Command {
    Command::StartStream {
        channel_id: channel_id.into(),
        title: title.into(),
        category_id: None,
        now,
    }
}

fn said(id: &str, login: &str, body: &str, sent_at: Millis) -> Chat {
    Chat::Message {
        author: Author {
            id: id.into(),
            login: login.into(),
            display_name: login.to_uppercase().into(),
        },
        body: body.into(),
        sent_at,
    }
}

fn not_found(what: &str) -> Result<Applied, StoreError> {
    Err(StoreError::NotFound(what.into()))
}

/// Channels with their moderators in id order (an order neither store promises).
fn by_moderator_id(channels: Vec<Option<Channel>>) -> Vec<Option<Channel>> {
    channels
        .into_iter()
        .map(|c| {
            c.map(|mut c| {
                c.moderator_ids.sort();
                c
            })
        })
        .collect()
}

fn unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Unavailable(message)) => message,
        other => panic!("expected the store to be unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn users_channels_and_streams_answer_as_the_memory_store() {
    let b = Both::new().await;
    let created = b.ok(ensure("u1", "Alice", false, 1_000)).await;
    assert_eq!(created.created.as_deref(), Some("u1"));
    assert_eq!(
        created.changes,
        vec![Change::User("u1".into()), Change::Channel("ch_u1".into())]
    );
    b.ok(ensure("u2", "bob", false, 2_000)).await;
    // Taken logins (ignoring ASCII case) get the first free numeric suffix.
    b.ok(ensure("u3", "ALICE", false, 3_000)).await;
    b.ok(ensure("u4", "alice2", false, 4_000)).await;
    b.ok(ensure("u5", "alice", false, 5_000)).await;
    // A known user: only the role can change.
    assert_eq!(
        b.ok(ensure("u1", "other", true, 9_000)).await.changes,
        vec![Change::User("u1".into())]
    );
    assert_eq!(
        b.ok(ensure("u1", "other", true, 9_000)).await,
        Applied::default()
    );

    let users = answer!(b, |s| s.users(&["u3", "nobody", "u1", "u4", "u5", "u3"])).unwrap();
    let logins: Vec<_> = users.iter().flatten().map(|u| &*u.login).collect();
    assert_eq!(logins, ["ALICE2", "Alice", "alice22", "alice3", "ALICE2"]);
    assert!(users[2].as_ref().unwrap().admin);
    assert_eq!(answer!(b, |s| s.users(&[])), Ok(vec![]));
    for login in [
        "alice", "aLiCe", "alice2", "ALICE22", "Alice3", "nobody", "",
    ] {
        same!(b, |s| s.user_by_login(login));
        same!(b, |s| s.user_and_channel_by_login(login));
    }

    // Profiles.
    b.ok(Command::UpdateProfile {
        user_id: "u2".into(),
        display_name: Some("Bobby".into()),
        bio: Some("streams at night".into()),
    })
    .await;
    same!(b, |s| s.users(&["u2"]));
    b.ok(Command::UpdateProfile {
        user_id: "u2".into(),
        display_name: None,
        bio: Some("".into()),
    })
    .await;
    let bob = answer!(b, |s| s.users(&["u2"])).unwrap();
    assert_eq!(bob[0].as_ref().unwrap().bio, None);
    assert_eq!(&*bob[0].as_ref().unwrap().display_name, "Bobby");
    assert_eq!(
        b.apply(Command::UpdateProfile {
            user_id: "nobody".into(),
            display_name: None,
            bio: None,
        })
        .await,
        not_found("no user has id `nobody`")
    );

    // Channel settings.
    let update = |title: Option<&str>, language: Option<&str>, category: Option<Option<&str>>| {
        Command::UpdateChannel {
            channel_id: "ch_u1".into(),
            title: title.map(Into::into),
            language: language.map(Into::into),
            tags: Some(vec!["Rust".into(), "Chill".into()]),
            category_id: category.map(|k| k.map(Into::into)),
        }
    };
    b.ok(update(Some("hello"), Some("de"), None)).await;
    b.ok(update(None, None, Some(None))).await;
    b.ok(update(Some("hello"), None, None)).await;
    assert_eq!(
        b.apply(update(None, None, Some(Some("cat_nope")))).await,
        not_found("no category has id `cat_nope`")
    );
    assert_eq!(
        b.apply(Command::UpdateChannel {
            channel_id: "ch_nope".into(),
            title: None,
            language: None,
            tags: None,
            category_id: Some(Some("cat_nope".into())),
        })
        .await,
        not_found("no channel has id `ch_nope`")
    );

    // Streams.
    let live = b.ok(start("ch_u1", "first stream", 10_000)).await;
    assert_eq!(live.created.as_deref(), Some("st1"));
    assert_eq!(
        b.apply(start("ch_u1", "again", 11_000)).await,
        Err(StoreError::Conflict("the channel is already live".into()))
    );
    assert_eq!(
        b.apply(start("ch_nope", "x", 11_000)).await,
        not_found("no channel has id `ch_nope`")
    );
    assert_eq!(
        b.apply(Command::StartStream {
            channel_id: "ch_u2".into(),
            title: "x".into(),
            category_id: Some("cat_nope".into()),
            now: 11_000,
        })
        .await,
        not_found("no category has id `cat_nope`")
    );
    // While live, a new language changes the live lists.
    b.ok(update(None, Some("fr"), None)).await;
    b.ok(start("ch_u2", "bob live", 12_000)).await;
    let end = Command::EndStream {
        channel_id: "ch_u2".into(),
    };
    assert_eq!(b.ok(end.clone()).await.changes.len(), 3);
    assert_eq!(b.ok(end).await, Applied::default());
    assert_eq!(
        b.apply(Command::EndStream {
            channel_id: "ch_nope".into()
        })
        .await,
        not_found("no channel has id `ch_nope`")
    );
    assert_eq!(
        b.ok(start("ch_u2", "bob again", 13_000))
            .await
            .created
            .as_deref(),
        Some("st3")
    );
    same!(b, |s| s
        .streams(&["st3", "st1", "st2", "st4", "st0", "x", "st1"]));
    let mut mem_live = b.mem.live().await.unwrap();
    let mut pg_live = b.pg.live().await.unwrap();
    mem_live.sort_by(|a, b| a.channel_id.cmp(&b.channel_id));
    pg_live.sort_by(|a, b| a.channel_id.cmp(&b.channel_id));
    assert_eq!(mem_live, pg_live);
    assert_eq!(pg_live.len(), 2);
    assert_eq!(answer!(b, |s| s.categories()), Ok(vec![]));

    // Moderators, added out of id order.
    for (user, added) in [("u3", true), ("u2", true), ("u3", false)] {
        let applied = b
            .ok(Command::AddModerator {
                channel_id: "ch_u1".into(),
                user_id: user.into(),
            })
            .await;
        assert_eq!(!applied.changes.is_empty(), added);
    }
    for (user, removed) in [("u4", false), ("u5", false)] {
        let applied = b
            .ok(Command::RemoveModerator {
                channel_id: "ch_u1".into(),
                user_id: user.into(),
            })
            .await;
        assert_eq!(!applied.changes.is_empty(), removed);
    }
    b.ok(Command::AddModerator {
        channel_id: "ch_u2".into(),
        user_id: "u1".into(),
    })
    .await;
    b.ok(Command::RemoveModerator {
        channel_id: "ch_u2".into(),
        user_id: "u1".into(),
    })
    .await;
    assert_eq!(
        b.apply(Command::AddModerator {
            channel_id: "ch_u1".into(),
            user_id: "nobody".into(),
        })
        .await,
        not_found("no user has id `nobody`")
    );
    let ids = ["ch_u1", "ch_nope", "ch_u2", "ch_u3", "ch_u1"];
    let mem = by_moderator_id(b.mem.channels(&ids).await.unwrap());
    let pg = by_moderator_id(b.pg.channels(&ids).await.unwrap());
    assert_eq!(mem, pg);
    let ch_u1 = pg[0].as_ref().unwrap();
    assert_eq!(ch_u1.moderator_ids, [Box::<str>::from("u2"), "u3".into()]);
    assert_eq!(&*ch_u1.title, "first stream");
    assert_eq!(&*ch_u1.language, "fr");
    assert_eq!(ch_u1.stream_id.as_deref(), Some("st1"));
    assert_eq!(answer!(b, |s| s.channels(&[])), Ok(vec![]));
}

#[tokio::test]
async fn follows_bans_chat_and_search_answer_as_the_memory_store() {
    let b = Both::new().await;
    for (n, login) in ["alice", "bob", "carol", "dave"].iter().enumerate() {
        let id = format!("u{}", n + 1);
        b.ok(ensure(&id, login, false, 1_000 * n as Millis)).await;
    }

    // Follows: keys grow; a second follow changes nothing; unfollowing and following
    // again makes a new key.
    for (user, channel) in [
        ("u2", "ch_u1"),
        ("u3", "ch_u1"),
        ("u4", "ch_u1"),
        ("u1", "ch_u2"),
        ("u2", "ch_u3"),
        ("u2", "ch_u4"),
    ] {
        assert_eq!(b.ok(follow(user, channel)).await.changes.len(), 2);
    }
    assert_eq!(b.ok(follow("u2", "ch_u1")).await, Applied::default());
    let unfollow = |user: &str, channel: &str| Command::Unfollow {
        user_id: user.into(),
        channel_id: channel.into(),
    };
    assert_eq!(b.ok(unfollow("u3", "ch_u1")).await.changes.len(), 2);
    assert_eq!(b.ok(unfollow("u3", "ch_u1")).await, Applied::default());
    b.ok(follow("u3", "ch_u1")).await;
    b.ok(follow("u2", "ch_u2")).await;
    assert_eq!(
        b.apply(follow("nobody", "ch_u1")).await,
        not_found("no user has id `nobody`")
    );
    assert_eq!(
        b.apply(follow("nobody", "ch_nope")).await,
        not_found("no channel has id `ch_nope`")
    );
    assert_eq!(
        b.apply(unfollow("u1", "ch_nope")).await,
        not_found("no channel has id `ch_nope`")
    );

    same!(b, |s| s.follows(
        "u2",
        &["ch_u1", "ch_nope", "ch_u2", "ch_u3", "ch_u1"]
    ));
    same!(b, |s| s.follows("nobody", &["ch_u1"]));
    same!(b, |s| s.follows("u1", &[]));
    let channels = answer!(b, |s| s.channels(&["ch_u1", "ch_u2", "ch_u3"]));
    let counts: Vec<u32> = channels
        .unwrap()
        .iter()
        .flatten()
        .map(|c| c.follower_count)
        .collect();
    assert_eq!(counts, [3, 2, 1]);
    // Pages of every size, walked with their cursors.
    for first in [0, 1, 2, 3, 10] {
        for (list, id) in [("followers", "ch_u1"), ("following", "u2")] {
            let mut after = None;
            loop {
                let page = if list == "followers" {
                    answer!(b, |s| s.followers(id, after, first))
                } else {
                    answer!(b, |s| s.following(id, after, first))
                }
                .unwrap();
                match page.items.last() {
                    Some(&(key, _)) if page.has_next => after = Some(key),
                    _ => break,
                }
            }
        }
    }
    let page = answer!(b, |s| s.followers("ch_u1", None, 2)).unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.has_next);
    assert_eq!(page.total, 3);
    assert_eq!(&*page.items[0].1, "u3", "newest first");
    // A key that is gone still marks a place; past every key there is nothing.
    same!(b, |s| s.followers("ch_u1", Some(3), 5));
    same!(b, |s| s.followers("ch_u1", Some(1), 5));
    same!(b, |s| s.following("u2", Some(u64::MAX), 5));
    same!(b, |s| s.followers("ch_nope", None, 5));
    for (after, first, with_users) in [(None, 5, 2), (None, 2, 5), (Some(3), 5, 5), (None, 0, 3)] {
        same!(b, |s| s
            .followers_with_users("ch_u1", after, first, with_users));
    }
    same!(b, |s| s.followers_with_users("ch_nope", None, 5, 5));
    for (after, first, with_channels) in [(None, 5, 2), (None, 2, 5), (Some(3), 5, 5), (None, 0, 3)]
    {
        same!(b, |s| s.following_with_channels(
            "u2",
            after,
            first,
            with_channels
        ));
    }
    same!(b, |s| s.following_with_channels("nobody", None, 5, 5));
    same!(b, |s| s.following("nobody", None, 5));
    same!(b, |s| s.following("u4", None, 5));

    // Bans, one of which expires; moderators.
    let now = b.clock.now();
    let ban = |user: &str, until: Option<Millis>| Command::Ban {
        channel_id: "ch_u1".into(),
        user_id: user.into(),
        until,
    };
    b.ok(ban("u2", Some(now + 1_000))).await;
    b.ok(ban("u3", None)).await;
    b.ok(ban("u3", Some(now + 5_000))).await;
    b.ok(ban("u4", Some(now + 10_000))).await;
    let unban = |user: &str| Command::Unban {
        channel_id: "ch_u1".into(),
        user_id: user.into(),
    };
    assert_eq!(b.ok(unban("u4")).await.changes.len(), 1);
    assert_eq!(b.ok(unban("u4")).await, Applied::default());
    assert_eq!(
        b.apply(ban("nobody", None)).await,
        not_found("no user has id `nobody`")
    );
    b.ok(Command::AddModerator {
        channel_id: "ch_u1".into(),
        user_id: "u4".into(),
    })
    .await;
    let members = [
        Some("u1"),
        Some("u2"),
        Some("u3"),
        Some("u4"),
        Some("nobody"),
        None,
    ];
    for user in members {
        same!(b, |s| s.membership("ch_u1", user));
    }
    same!(b, |s| s.membership("ch_nope", Some("u1")));
    let banned = answer!(b, |s| s.membership("ch_u1", Some("u2"))).unwrap();
    assert_eq!(banned.unwrap().ban, Some(Some(now + 1_000)));
    b.clock.advance(1_000);
    let expired = answer!(b, |s| s.membership("ch_u1", Some("u2"))).unwrap();
    assert_eq!(expired.unwrap().ban, None, "a ban that has ended is no ban");
    for user in members {
        same!(b, |s| s.membership("ch_u1", user));
    }

    // Chat: messages, a deletion, a ban, a duplicate.
    for seq in 1..=8 {
        let author = if seq % 2 == 0 {
            ("u2", "bob")
        } else {
            ("u3", "carol")
        };
        let body = format!("message {seq}");
        b.record(
            "ch_u1",
            seq,
            said(author.0, author.1, &body, 500 + seq as Millis),
        )
        .await;
    }
    b.record("ch_u1", 9, Chat::Deleted { message_seq: 4 }).await;
    b.record(
        "ch_u1",
        10,
        Chat::Banned {
            user_id: "u2".into(),
            until: Some(99),
        },
    )
    .await;
    b.record(
        "ch_u1",
        11,
        Chat::Banned {
            user_id: "u3".into(),
            until: None,
        },
    )
    .await;
    b.record("ch_u1", 12, said("u4", "dave", "last", 700)).await;
    b.record("ch_u1", 12, said("u4", "dave", "last", 700)).await;
    b.record("ch_u2", 1, said("u1", "alice", "hi bob", 800))
        .await;
    let nowhere = Event::new(
        "ch_nope",
        1,
        Arc::new(ChatEvent::new(said("u1", "a", "b", 0))),
    );
    let mem = b.mem.record(&nowhere, 0).await;
    assert_eq!(mem, b.pg.record(&nowhere, 0).await);
    assert_eq!(
        mem,
        Err(StoreError::NotFound("no channel has id `ch_nope`".into()))
    );

    for (last, before) in [
        (100, None),
        (3, None),
        (3, Some(12)),
        (3, Some(6)),
        (2, Some(5)),
        (5, Some(1)),
        (0, None),
        (3, Some(u64::MAX)),
    ] {
        same!(b, |s| s.messages("ch_u1", last, before));
    }
    let newest = answer!(b, |s| s.messages("ch_u1", 3, None)).unwrap();
    let seqs: Vec<u64> = newest.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        [7, 8, 12],
        "oldest first, deletions and bans left out"
    );
    same!(b, |s| s.messages("ch_u2", 10, None));
    same!(b, |s| s.messages("ch_u3", 10, None));
    same!(b, |s| s.messages("ch_nope", 10, None));
    for seq in [1, 4, 8, 9, 10, 12, 13, 0] {
        same!(b, |s| s.message("ch_u1", seq));
    }
    same!(b, |s| s.message("ch_nope", 1));

    // A room's end: every kind of event, its last seq; none for a missing channel.
    for max in [0, 1, 4, 100] {
        let mem = b.mem.tail("ch_u1", max).await.unwrap().unwrap();
        let pg = b.pg.tail("ch_u1", max).await.unwrap().unwrap();
        assert_eq!(
            (mem.last_seq, &mem.events),
            (pg.last_seq, &pg.events),
            "tail {max}"
        );
        assert_eq!(pg.last_seq, 12);
    }
    let quiet = b.pg.tail("ch_u3", 10).await.unwrap().unwrap();
    let mem_quiet = b.mem.tail("ch_u3", 10).await.unwrap().unwrap();
    assert_eq!((quiet.last_seq, quiet.events.len()), (0, 0));
    assert_eq!((mem_quiet.last_seq, mem_quiet.events.len()), (0, 0));
    assert!(b.pg.tail("ch_nope", 10).await.unwrap().is_none());
    assert!(b.mem.tail("ch_nope", 10).await.unwrap().is_none());

    // Search: users, then channels, then categories, at most `first`.
    b.ok(Command::UpdateChannel {
        channel_id: "ch_u4".into(),
        title: Some("Dave's ÉCOLE of Rust".into()),
        language: None,
        tags: None,
        category_id: None,
    })
    .await;
    for (query, first) in [
        ("a", 100),
        ("a", 3),
        ("al", 10),
        ("channel", 2),
        ("'s", 10),
        ("école", 10),
        ("rust", 10),
        ("zzz", 10),
        ("a", 0),
    ] {
        same!(b, |s| s.search(query, first));
    }
    let found = answer!(b, |s| s.search("a", 100)).unwrap();
    assert_eq!(found[0], Found::User("u1".into()));
    assert!(found.contains(&Found::Channel("ch_u4".into())));
    assert_eq!(answer!(b, |s| s.ready()), Ok(()));
}

#[tokio::test]
async fn hostile_text_is_kept_verbatim_and_changes_nothing_else() {
    let b = Both::new().await;
    let drop_users = "'); DROP TABLE users; --";
    let delete_channels = "x'; DELETE FROM channels; --";
    b.ok(ensure("u1", "alice", false, 1)).await;
    b.ok(ensure("u'; DROP TABLE follows; --", drop_users, false, 2))
        .await;
    b.ok(ensure("u%", "100%_sure", false, 3)).await;
    b.ok(ensure("u_", "under_score", false, 4)).await;
    b.ok(Command::UpdateChannel {
        channel_id: "ch_u1".into(),
        title: Some(delete_channels.into()),
        language: Some("e'n".into()),
        tags: Some(vec!["{a,b}".into(), "\"quoted\"".into(), "NULL".into()]),
        category_id: None,
    })
    .await;
    b.ok(Command::UpdateProfile {
        user_id: "u1".into(),
        display_name: Some("Robert'); DROP TABLE students;--".into()),
        bio: Some("\\ backslash % percent _ underscore".into()),
    })
    .await;
    b.ok(follow("u1", "ch_u'; DROP TABLE follows; --")).await;
    b.record(
        "ch_u1",
        1,
        said("u1", drop_users, "'); DROP TABLE chat_events; --", 5),
    )
    .await;

    let users = answer!(b, |s| s.users(&["u1", "u'; DROP TABLE follows; --", "u%"])).unwrap();
    assert_eq!(&*users[1].as_ref().unwrap().login, drop_users);
    assert_eq!(
        users[0].as_ref().unwrap().bio.as_deref(),
        Some("\\ backslash % percent _ underscore")
    );
    let user = answer!(b, |s| s.user_by_login(drop_users)).unwrap();
    assert_eq!(user.unwrap().id.as_ref(), "u'; DROP TABLE follows; --");
    let channels = answer!(b, |s| s.channels(&["ch_u1"])).unwrap();
    let ch = channels[0].as_ref().unwrap();
    assert_eq!(&*ch.title, delete_channels);
    assert_eq!(
        ch.tags,
        [
            Box::<str>::from("{a,b}"),
            "\"quoted\"".into(),
            "NULL".into()
        ]
    );
    let said_back = answer!(b, |s| s.messages("ch_u1", 10, None)).unwrap();
    assert_eq!(&*said_back[0].body, "'); DROP TABLE chat_events; --");
    assert_eq!(&*said_back[0].author.login, drop_users);

    // `%` and `_` are what they are, not wildcards.
    let percent = answer!(b, |s| s.search("%", 10)).unwrap();
    assert_eq!(
        percent,
        [Found::User("u%".into()), Found::Channel("ch_u%".into())]
    );
    let underscore = answer!(b, |s| s.search("_", 10)).unwrap();
    assert_eq!(
        underscore,
        [
            Found::User("u%".into()),
            Found::User("u_".into()),
            Found::Channel("ch_u%".into()),
            Found::Channel("ch_u_".into())
        ]
    );
    for query in ["'", "drop table", "\\", "' or '1'='1", "%'; --"] {
        same!(b, |s| s.search(query, 10));
    }
    same!(b, |s| s.user_by_login("%"));
    same!(b, |s| s.user_by_login("' or '1'='1"));

    // Every table is there, with exactly what was put in.
    let client = b._db.client().await;
    let count = |table: &'static str| {
        let client = &client;
        async move {
            let row = client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap();
            row.get::<_, i64>(0)
        }
    };
    assert_eq!(count("users").await, 4);
    assert_eq!(count("channels").await, 4);
    assert_eq!(count("follows").await, 1);
    assert_eq!(count("chat_events").await, 1);
}

#[tokio::test]
async fn starting_a_stream_twice_at_once_is_one_stream_and_one_conflict() {
    let db = TestDb::create().await;
    let clock: Arc<dyn Clock> = Arc::new(HandClock(AtomicI64::new(0)));
    let store = db.store(clock);
    store.apply(ensure("u1", "alice", false, 0)).await.unwrap();
    store.apply(ensure("u2", "bob", false, 0)).await.unwrap();
    let (a, b) = tokio::join!(
        store.apply(start("ch_u1", "a", 1)),
        store.apply(start("ch_u1", "b", 1))
    );
    let mut answers = [a, b];
    answers.sort_by_key(|r| r.is_err());
    assert_eq!(answers[0].as_ref().unwrap().created.as_deref(), Some("st1"));
    assert_eq!(
        answers[1],
        Err(StoreError::Conflict("the channel is already live".into()))
    );
    // Two channels at once: each its own number.
    store
        .apply(Command::EndStream {
            channel_id: "ch_u1".into(),
        })
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        store.apply(start("ch_u1", "a", 2)),
        store.apply(start("ch_u2", "b", 2))
    );
    let mut ids = [a.unwrap().created, b.unwrap().created];
    ids.sort();
    assert_eq!(ids, [Some("st2".into()), Some("st3".into())]);
    // The same login claimed by two new users at once: each gets one.
    let (a, b) = tokio::join!(
        store.apply(ensure("u3", "sam", false, 3)),
        store.apply(ensure("u4", "Sam", false, 3))
    );
    assert_eq!(a.unwrap().created.as_deref(), Some("u3"));
    assert_eq!(b.unwrap().created.as_deref(), Some("u4"));
    let users = store.users(&["u3", "u4"]).await.unwrap();
    let mut logins: Vec<_> = users
        .iter()
        .flatten()
        .map(|u| u.login.to_string())
        .collect();
    logins.sort();
    assert!(
        logins == ["Sam", "sam2"] || logins == ["Sam2", "sam"],
        "{logins:?}"
    );
}

#[tokio::test]
async fn categories_and_recorded_history_past_the_memory_limits() {
    let db = TestDb::create().await;
    let clock: Arc<dyn Clock> = Arc::new(HandClock(AtomicI64::new(0)));
    let store = db.store(clock);
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO categories (id, slug, name) VALUES \
             ('cat_music', 'music', 'Music'), ('cat_chess', 'chess', 'Chess')",
        )
        .await
        .unwrap();
    let all = store.categories().await.unwrap();
    let ids: Vec<&str> = all.iter().map(|k| &*k.id).collect();
    assert_eq!(ids, ["cat_chess", "cat_music"]);
    store
        .apply(ensure("u1", "musician", false, 0))
        .await
        .unwrap();
    let live = store
        .apply(Command::StartStream {
            channel_id: "ch_u1".into(),
            title: "piano".into(),
            category_id: Some("cat_music".into()),
            now: 5,
        })
        .await
        .unwrap();
    let stream = store.streams(&["st1"]).await.unwrap().remove(0).unwrap();
    assert_eq!(live.created.as_deref(), Some("st1"));
    assert_eq!(stream.category_id.as_deref(), Some("cat_music"));
    let found = store.search("music", 10).await.unwrap();
    assert_eq!(
        found,
        [
            Found::User("u1".into()),
            Found::Category("cat_music".into())
        ]
    );
    // Ending it sets its end, which the row does not show, and frees the channel.
    store
        .apply(Command::EndStream {
            channel_id: "ch_u1".into(),
        })
        .await
        .unwrap();
    let ended: Option<i64> = client
        .query_one("SELECT ended_at FROM streams WHERE id = 'st1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ended, Some(5), "never before its start");
    // PostgreSQL keeps all of a room's events: the tail is the newest `max`.
    for seq in 1..=50 {
        let event = Event::new(
            "ch_u1",
            seq,
            Arc::new(ChatEvent::new(said("u1", "m", "x", 0))),
        );
        store.record(&event, 0).await.unwrap();
    }
    let tail = store.tail("ch_u1", 10).await.unwrap().unwrap();
    let seqs: Vec<u64> = tail.events.iter().map(|(s, _)| *s).collect();
    assert_eq!(tail.last_seq, 50);
    assert_eq!(seqs, (41..=50).collect::<Vec<_>>());
    assert_eq!(store.messages("ch_u1", 100, None).await.unwrap().len(), 50);
    // An event voided across nodes is taken back: the tail passes over its seq.
    store.unrecord("ch_u1", 45).await.unwrap();
    let tail = store.tail("ch_u1", 10).await.unwrap().unwrap();
    let seqs: Vec<u64> = tail.events.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [40, 41, 42, 43, 44, 46, 47, 48, 49, 50]);
    assert_eq!(store.messages("ch_u1", 100, None).await.unwrap().len(), 49);
}

/// A sender is acknowledged only when the row at its event's seq is its own. A seq
/// already taken (a write that timed out committed late, say) refuses the event as a
/// conflict, alone or within a batch whose other events are kept; the same event
/// recorded again (a retry) is acknowledged and kept once.
#[tokio::test]
async fn an_event_whose_seq_is_taken_is_refused_and_a_retry_is_acknowledged() {
    let db = TestDb::create().await;
    let store = db.store(Arc::new(HandClock(AtomicI64::new(0))));
    store.apply(ensure("u1", "alice", false, 0)).await.unwrap();
    let event = |seq, login: &str, body: &str| {
        Event::new(
            "ch_u1",
            seq,
            Arc::new(ChatEvent::new(said(&format!("id_{login}"), login, body, 7))),
        )
    };
    let first = event(1, "alice", "first");
    store.record(&first, 7).await.unwrap();
    store.record(&first, 7).await.unwrap();
    let late = event(1, "bob", "late");
    let refused = store.record(&late, 7).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    // Sent together, so that they are likely to share a batch: the others are kept.
    let (two, again, taken, three) = (
        event(2, "carol", "two"),
        first.clone(),
        event(1, "dave", "taken"),
        event(3, "erin", "three"),
    );
    let answers = tokio::join!(
        store.record(&two, 8),
        store.record(&again, 7),
        store.record(&taken, 8),
        store.record(&three, 8),
    );
    assert!(
        answers.0.is_ok() && answers.1.is_ok() && answers.3.is_ok(),
        "{answers:?}"
    );
    assert!(
        matches!(answers.2, Err(StoreError::Conflict(_))),
        "{answers:?}"
    );
    let tail = store.tail("ch_u1", 10).await.unwrap().unwrap();
    let kept: Vec<(u64, &Chat)> = tail.events.iter().map(|(s, e)| (*s, &e.chat)).collect();
    assert_eq!(
        kept,
        [
            (1, &first.payload.chat),
            (2, &two.payload.chat),
            (3, &three.payload.chat)
        ]
    );
}

#[tokio::test]
async fn with_nothing_listening_the_store_starts_and_every_call_is_unavailable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = PgStore::new(
        &PgSettings {
            url: format!("postgres://postgres@127.0.0.1:{port}/streamhub"),
            pool_size: 2,
            pools: 1,
            pool_wait: Duration::from_millis(200),
            statement_timeout: Duration::from_secs(1),
            replica: None,
        },
        Arc::new(HandClock(AtomicI64::new(0))),
    )
    .expect("made without connecting");
    let message = unavailable(store.ready().await);
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    unavailable(store.users(&["u1"]).await);
    unavailable(store.user_by_login("alice").await);
    unavailable(store.channels(&["ch_u1"]).await);
    unavailable(store.streams(&["st1"]).await);
    unavailable(store.categories().await);
    unavailable(store.live().await);
    unavailable(store.follows("u1", &["ch_u1"]).await);
    unavailable(store.followers("ch_u1", None, 10).await);
    unavailable(store.following("u1", Some(4), 10).await);
    unavailable(store.messages("ch_u1", 10, None).await);
    unavailable(store.message("ch_u1", 1).await);
    unavailable(store.membership("ch_u1", Some("u1")).await);
    unavailable(store.search("a", 10).await);
    unavailable(store.apply(ensure("u1", "alice", false, 0)).await);
    unavailable(store.apply(follow("u1", "ch_u2")).await);
    let event = Event::new(
        "ch_u1",
        1,
        Arc::new(ChatEvent::new(said("u1", "a", "b", 0))),
    );
    unavailable(store.record(&event, 0).await);
    unavailable(store.tail("ch_u1", 10).await);
}

#[test]
fn a_bad_url_is_refused_at_construction() {
    let err = PgStore::new(
        &settings("postgres://app@db:notaport/x".into()),
        Arc::new(HandClock(AtomicI64::new(0))),
    )
    .unwrap_err();
    assert!(matches!(err, ConnectError::Url { .. }), "{err:?}");
}

#[tokio::test]
async fn a_statement_past_its_timeout_and_a_server_closing_are_unavailable_then_recovered() {
    let db = TestDb::create().await;
    let store = PgStore::new(
        &PgSettings {
            statement_timeout: Duration::from_millis(200),
            ..settings(db.url())
        },
        Arc::new(HandClock(AtomicI64::new(0))),
    )
    .unwrap();
    store.apply(ensure("u1", "alice", false, 0)).await.unwrap();
    // Another session holds the channel's row: the command waits for it past its
    // statement timeout.
    let mut other = db.client().await;
    let holding = other.transaction().await.unwrap();
    holding
        .execute("SELECT 1 FROM channels WHERE id = 'ch_u1' FOR UPDATE", &[])
        .await
        .unwrap();
    let message = unavailable(store.apply(start("ch_u1", "blocked", 1)).await);
    assert!(message.contains("statement_timeout"), "{message}");
    holding.rollback().await.unwrap();
    store.apply(start("ch_u1", "free", 1)).await.unwrap();

    // The server ends the store's sessions: calls fail as unavailable, then the pool
    // makes new connections by itself.
    db.client()
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let mut recovered = false;
    for _ in 0..10 {
        match store.ready().await {
            Ok(()) => {
                recovered = true;
                break;
            }
            Err(e) => {
                unavailable::<()>(Err(e));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(recovered, "the pool did not make a new connection");
    assert_eq!(
        store.live().await.unwrap()[0].stream_id.as_ref(),
        "st1",
        "and the data is there"
    );
}

/// Rows enough that only an index makes sense: 5,000 users, channels and streams (20
/// live), 20,000 follows, 20,000 room events over 10 rooms (one in 50 a ban, one message
/// in 7 deleted), moderators and bans.
const PLAN_DATA: &str = "
    INSERT INTO users (id, login, display_name, created_at, channel_id)
        SELECT 'u' || n, 'user' || n, 'User ' || n, n, 'ch_u' || n
        FROM generate_series(1, 5000) n;
    INSERT INTO channels (id, owner_id, login, title, language)
        SELECT 'ch_u' || n, 'u' || n, 'user' || n, 'title ' || n, 'en'
        FROM generate_series(1, 5000) n;
    INSERT INTO streams (id, channel_id, title, language, started_at, ended_at)
        SELECT 'st' || n, 'ch_u' || n, 'stream ' || n, 'en', n,
            CASE WHEN n > 20 THEN n + 1 END
        FROM generate_series(1, 5000) n;
    UPDATE channels SET stream_id = 'st' || substr(id, 5)
        WHERE substr(id, 5)::int <= 20;
    INSERT INTO follows (user_id, channel_id)
        SELECT 'u' || (1 + n % 5000), 'ch_u' || (1 + ((n / 5000) * 37 + n) % 5000)
        FROM generate_series(0, 19999) n;
    UPDATE channels c SET follower_count =
        (SELECT count(*) FROM follows f WHERE f.channel_id = c.id);
    INSERT INTO moderators (channel_id, user_id)
        SELECT 'ch_u' || n, 'u' || (n + 1) FROM generate_series(1, 500) n;
    INSERT INTO bans (channel_id, user_id, until)
        SELECT 'ch_u' || n, 'u' || (n + 2), NULL FROM generate_series(1, 500) n;
    INSERT INTO chat_events (channel_id, seq, kind, recorded_at, author_id, author_login,
            author_display_name, body, sent_at, deleted, target_user_id)
        SELECT 'ch_u' || (1 + n % 10), 1 + n / 10, e.kind, n,
            m.author_id, m.author_id, m.author_id, 'hello ' || n, m.sent_at,
            e.kind = 'message' AND n % 7 = 0,
            CASE WHEN e.kind = 'banned' THEN 'u2' END
        FROM generate_series(0, 19999) n,
            LATERAL (SELECT CASE WHEN n % 50 = 49 THEN 'banned' ELSE 'message' END
                AS kind) e,
            LATERAL (SELECT CASE WHEN e.kind = 'message' THEN 'u1' END AS author_id,
                CASE WHEN e.kind = 'message' THEN n END AS sent_at) m;
    ANALYZE;
";

/// What each of [`READS`] is executed with in the plan test, and the indexes one of
/// which its plan must use (none: any index).
fn plan_arguments(name: &str) -> (&'static str, &'static [&'static str]) {
    match name {
        "users" => ("('{u1,u20,u300}')", &["users_pkey"]),
        "user_by_login" => ("('user42')", &["users_login_lower"]),
        "user_and_channel_by_login" => ("('user42')", &["users_login_lower"]),
        "channels" => ("('{ch_u1,ch_u2,ch_u3}')", &["moderators_pkey"]),
        "streams" => ("('{st1,st2}')", &[]),
        "live" => ("", &["channels_live"]),
        "follows" => ("('u1', '{ch_u1,ch_u38,ch_u75}')", &[]),
        "followers" => (
            "('ch_u38', 9223372036854775807, 21)",
            &["follows_channel_key"],
        ),
        "followers_with_users" => (
            "('ch_u38', 9223372036854775807, 21, 10)",
            &["follows_channel_key"],
        ),
        "following_with_channels" => ("('u1', 9223372036854775807, 21, 10)", &["follows_user_key"]),
        "following" => ("('u1', 9223372036854775807, 21)", &["follows_user_key"]),
        "messages" => (
            "('ch_u1', 9223372036854775807, 50)",
            &["chat_events_messages", "chat_events_pkey"],
        ),
        "message" => ("('ch_u1', 5)", &["chat_events_messages"]),
        "membership" => ("('ch_u1', 'u3', 0)", &["bans_pkey"]),
        "tail" => ("('ch_u1', 100)", &["chat_events_pkey"]),
        other => panic!("no arguments for `{other}`"),
    }
}

#[tokio::test]
async fn the_main_queries_use_indexes_not_sequential_scans() {
    let db = TestDb::create().await;
    let client = db.client().await;
    client.batch_execute(PLAN_DATA).await.unwrap();
    for &(name, sql) in READS {
        client
            .batch_execute(&format!("DEALLOCATE ALL; PREPARE q AS {sql}"))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        // Prepared statements run on custom plans first, then on a generic plan.
        for mode in ["force_custom_plan", "force_generic_plan"] {
            client
                .batch_execute(&format!("SET plan_cache_mode = {mode}"))
                .await
                .unwrap();
            let (arguments, indexes) = plan_arguments(name);
            let rows = client
                .query(&format!("EXPLAIN EXECUTE q{arguments}"), &[])
                .await
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let plan: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            let plan = plan.join("\n");
            for table in ["follows", "chat_events", "users", "channels"] {
                assert!(
                    !plan.contains(&format!("Seq Scan on {table}")),
                    "{name} ({mode}) scans {table}:\n{plan}"
                );
            }
            assert!(plan.contains("Index"), "{name} ({mode}):\n{plan}");
            // A plan line names its index between spaces ("Index Scan using x on t",
            // "Bitmap Index Scan on x  (cost=...)").
            let used = |index: &&str| plan.contains(&format!(" {index} "));
            assert!(
                indexes.is_empty() || indexes.iter().any(used),
                "{name} ({mode}) uses none of {indexes:?}:\n{plan}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_send_and_serve_a_multi_threaded_runtime() {
    let db = TestDb::create().await;
    let store = Arc::new(db.store(Arc::new(HandClock(AtomicI64::new(0)))));
    for n in 1..=4 {
        let id = format!("u{n}");
        store.apply(ensure(&id, &id, false, n)).await.unwrap();
    }
    let tasks: Vec<_> = (1..=4)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let id = format!("u{n}");
                let channel = format!("ch_u{}", n % 4 + 1);
                store.apply(follow(&id, &channel)).await.unwrap();
                let users = store.users(&[&id]).await.unwrap();
                assert_eq!(
                    users[0].as_ref().unwrap().channel_id.as_ref(),
                    format!("ch_{id}")
                );
                store.follows(&id, &[&channel]).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), [true]);
    }
}

/// `streamhub_db_calls_total` from `/metrics`.
fn db_calls(server: &support::Server) -> u64 {
    let text = String::from_utf8(server.get("/metrics", &[]).body).expect("metrics are text");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("streamhub_db_calls_total ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no streamhub_db_calls_total in\n{text}"))
}

/// With the shard caches off, the channel page the benchmarks ask for costs one
/// statement per batch of its levels, and a row it needs twice is read once: the user
/// and channel by login together (level 1); categories, the stream, the recent
/// messages and the followers with their users (level 2: the owner is the user level 1
/// read); the live list for the category's viewers and the messages' authors (level 3:
/// the stream's category and channel are the ones read before). Seven, on any shard.
#[test]
fn a_channel_page_with_caches_off_costs_one_statement_per_batch() {
    let db = Database::empty("calls");
    let url = db.url();
    let server = support::Server::start(&[
        ("DATABASE_URL", url.as_str()),
        ("STREAMHUB_MIGRATE", "true"),
        ("STREAMHUB_DEMO_DATA", "small"),
        ("STREAMHUB_CACHE_ENTRIES", "0"),
        ("STREAMHUB_RATE_QUERY", "off"),
    ]);
    let page = serde_json::json!({
        "query": include_str!("../../bench/queries/channel-page.graphql"),
        "variables": {"login": "alice"},
    });
    for _ in 0..6 {
        let before = db_calls(&server);
        let r = server.graphql(None, &page).json();
        assert!(r.get("errors").is_none(), "{r}");
        assert_eq!(r["data"]["channel"]["owner"]["login"], "alice", "{r}");
        assert!(
            r["data"]["channel"]["stream"]["category"]["id"].is_string(),
            "{r}"
        );
        assert_eq!(
            r["data"]["channel"]["followers"]["nodes"]
                .as_array()
                .unwrap()
                .len(),
            10,
            "{r}"
        );
        assert!(
            !r["data"]["channel"]["recentMessages"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{r}"
        );
        assert_eq!(db_calls(&server) - before, 7, "statements for one page");
    }
}
