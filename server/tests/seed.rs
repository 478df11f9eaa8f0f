//! `streamhub seed` against this machine's PostgreSQL (127.0.0.1:5432, user `postgres`,
//! trust authentication, database `test`): each test makes a database of its own and
//! drops it at the end. What the seed loads is compared with what the memory store
//! holds for the same demo size, read through the `Store` trait.

mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::Output;
use std::sync::Arc;

use streamhub_pubsub::history::HistoryLimits;
use streamhub_pubsub::Chat;
use streamhub_server::store::memory::demo::DemoSize;
use streamhub_server::store::memory::MemoryStore;
use streamhub_server::store::pg::connect;
use streamhub_server::store::{now, Store, SystemClock};
use support::Database;
use tokio_postgres::Client;

/// A connection to a test's database.
async fn connect_to(db: &Database) -> Client {
    connect(&db.url()).await.unwrap()
}

/// Runs `streamhub seed <args>` with nothing else in its environment but `env`.
async fn streamhub_seed(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_streamhub"))
        .env_clear()
        .envs(env.iter().copied())
        .arg("seed")
        .args(args)
        .output()
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `seed --demo-data <size>` on `db` and expects it to succeed with one line.
async fn seeded(db: &Database, size: &str) -> String {
    let out = streamhub_seed(&["--database-url", &db.url(), "--demo-data", size], &[]).await;
    assert!(out.status.success(), "seed failed: {}", stderr(&out));
    let line = stdout(&out);
    assert_eq!(line.lines().count(), 1, "{line}");
    line
}

/// What a database holds, table by table, in numbers: a second seed must leave it so.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    users: i64,
    channels: i64,
    categories: i64,
    streams: i64,
    follows: i64,
    moderators: i64,
    bans: i64,
    /// The follow keys' sequence's last value.
    last_follow_key: i64,
    /// (channel, its room events, its last seq), by channel.
    chat: BTreeMap<String, (i64, i64)>,
    /// Live channels (with a stream), by id.
    live: Vec<String>,
    /// Channels' follower counts, by channel.
    follower_counts: BTreeMap<String, i32>,
}

async fn counts(client: &Client) -> Counts {
    let count = |table: &'static str| async move {
        client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let chat = client
        .query(
            "SELECT channel_id, count(*), max(seq) FROM chat_events GROUP BY channel_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let live = client
        .query(
            "SELECT id FROM channels WHERE stream_id IS NOT NULL ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let follower_counts = client
        .query("SELECT id, follower_count FROM channels", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Counts {
        users: count("users").await,
        channels: count("channels").await,
        categories: count("categories").await,
        streams: count("streams").await,
        follows: count("follows").await,
        moderators: count("moderators").await,
        bans: count("bans").await,
        last_follow_key: client
            .query_one("SELECT last_value FROM follow_keys", &[])
            .await
            .unwrap()
            .get(0),
        chat,
        live,
        follower_counts,
    }
}

/// The memory store with the demo data of `users` users, as `serve` starts it.
fn memory(users: u32) -> MemoryStore {
    MemoryStore::demo(
        DemoSize::Users(users),
        HistoryLimits::default(),
        Arc::new(SystemClock),
    )
    .0
}

/// What the memory store holds for `users` users, in the numbers of [`Counts`] (the
/// follow keys' last value is the highest key).
async fn expected(store: &MemoryStore, users: u32) -> Counts {
    let user_ids: Vec<String> = (1..=users).map(|n| format!("u{n}")).collect();
    let user_ids: Vec<&str> = user_ids.iter().map(String::as_str).collect();
    let found = store.users(&user_ids).await.unwrap();
    let channel_ids: Vec<String> = found
        .iter()
        .map(|u| u.as_ref().unwrap().channel_id.to_string())
        .collect();
    let channel_ids: Vec<&str> = channel_ids.iter().map(String::as_str).collect();
    let channels: Vec<_> = store
        .channels(&channel_ids)
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let mut chat = BTreeMap::new();
    let mut last_follow_key = 0;
    for c in &channels {
        let tail = store.tail(&c.id, usize::MAX).await.unwrap().unwrap();
        if tail.last_seq > 0 {
            chat.insert(
                c.id.to_string(),
                (tail.events.len() as i64, tail.last_seq as i64),
            );
        }
        let page = store.followers(&c.id, None, usize::MAX).await.unwrap();
        if let Some(&(key, _)) = page.items.first() {
            last_follow_key = last_follow_key.max(key as i64);
        }
    }
    let mut live: Vec<String> = store
        .live()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.channel_id.into())
        .collect();
    live.sort();
    Counts {
        users: users.into(),
        channels: channels.len() as i64,
        categories: store.categories().await.unwrap().len() as i64,
        streams: live.len() as i64,
        follows: channels.iter().map(|c| i64::from(c.follower_count)).sum(),
        moderators: channels.iter().map(|c| c.moderator_ids.len() as i64).sum(),
        bans: 0,
        last_follow_key,
        chat,
        live,
        follower_counts: channels
            .iter()
            .map(|c| (c.id.to_string(), c.follower_count as i32))
            .collect(),
    }
}

#[tokio::test]
async fn seed_loads_the_memory_stores_demo_data_once() {
    let db = Database::empty("seed");
    let started = now();
    let first = seeded(&db, "small").await;
    let ended = now();
    assert!(first.starts_with("applied 0001_initial"), "{first}");
    assert!(first.contains("seeded the demo data"), "{first}");
    assert!(first.contains("users 200 "), "{first}");

    let client = connect_to(&db).await;
    let store = memory(200);
    let loaded = counts(&client).await;
    assert_eq!(loaded, expected(&store, 200).await);
    assert!(
        loaded.live.len() > 20 && loaded.follows > 1000,
        "{loaded:?}"
    );

    // The named users, with their ids.
    let named: Vec<(String, String, bool)> = client
        .query(
            "SELECT id, login, admin FROM users WHERE id IN ('u1', 'u2', 'u3') ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        named,
        [
            ("u1".into(), "alice".into(), false),
            ("u2".into(), "bob".into(), false),
            ("u3".into(), "carol".into(), true),
        ]
    );

    // alice's followers in the memory store's order, with its keys.
    let page = store.followers("ch_u1", None, usize::MAX).await.unwrap();
    let want: Vec<(i64, String)> = page
        .items
        .iter()
        .map(|(k, id)| (*k as i64, id.to_string()))
        .collect();
    let got: Vec<(i64, String)> = client
        .query(
            "SELECT key, user_id FROM follows WHERE channel_id = 'ch_u1' ORDER BY key DESC",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(got, want);
    let moderators: Vec<(String, String)> = client
        .query("SELECT channel_id, user_id FROM moderators", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(moderators, [("ch_u1".into(), "u2".into())]);

    // alice's room: every event with its seq and kind, deleted messages marked.
    let tail = store.tail("ch_u1", usize::MAX).await.unwrap().unwrap();
    let want: Vec<(i64, String, Option<String>, Option<i64>)> = tail
        .events
        .iter()
        .map(|(seq, e)| match &e.chat {
            Chat::Message { body, sent_at, .. } => (
                *seq as i64,
                "message".into(),
                Some(body.to_string()),
                Some(*sent_at),
            ),
            Chat::Deleted { message_seq } => (
                *seq as i64,
                "deleted".into(),
                None,
                Some(*message_seq as i64),
            ),
            Chat::Banned { .. } => unreachable!("the demo bans no one"),
        })
        .collect();
    let got: Vec<(i64, String, Option<String>, Option<i64>)> = client
        .query(
            "SELECT seq, kind, body, coalesce(sent_at, target_seq) FROM chat_events
             WHERE channel_id = 'ch_u1' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(got, want);
    let messages: Vec<i64> = store
        .messages("ch_u1", usize::MAX, None)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq as i64)
        .collect();
    let shown: Vec<i64> = client
        .query(
            "SELECT seq FROM chat_events
             WHERE channel_id = 'ch_u1' AND kind = 'message' AND NOT deleted ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(shown, messages, "the deleted messages are marked");
    let (author, recorded): (String, i64) = client
        .query_one(
            "SELECT author_login, recorded_at FROM chat_events
             WHERE channel_id = 'ch_u1' AND seq = 1",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    let first_message = store.message("ch_u1", 1).await.unwrap().unwrap();
    assert_eq!(author, &*first_message.author.login);
    assert!(
        (started..=ended).contains(&recorded),
        "the room events are recorded at the seed"
    );

    // The next follow sorts after the demo's.
    let next: i64 = client
        .query_one("SELECT nextval('follow_keys')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, loaded.last_follow_key + 1);

    // A second seed changes nothing.
    let before = counts(&client).await;
    let second = seeded(&db, "small").await;
    assert!(second.starts_with("already seeded"), "{second}");
    assert!(second.contains("nothing changed"), "{second}");
    assert_eq!(counts(&client).await, before);
}

#[tokio::test]
async fn seeds_started_together_load_the_data_once() {
    let db = Database::empty("seed");
    let url = db.url();
    let args = ["--database-url", &url, "--demo-data", "50"];
    let (a, b, c) = tokio::join!(
        streamhub_seed(&args, &[]),
        streamhub_seed(&args, &[]),
        streamhub_seed(&args, &[])
    );
    let mut loads = 0;
    for out in [&a, &b, &c] {
        assert!(out.status.success(), "{}", stderr(out));
        if stdout(out).contains("seeded the demo data") {
            loads += 1;
        } else {
            assert!(stdout(out).contains("already seeded"), "{}", stdout(out));
        }
    }
    assert_eq!(loads, 1, "exactly one of them loaded the data");
    let client = connect_to(&db).await;
    assert_eq!(counts(&client).await, expected(&memory(50), 50).await);
}

#[tokio::test]
async fn a_thousand_users_are_seeded_from_database_url() {
    let db = Database::empty("seed");
    let url = db.url();
    let out = streamhub_seed(&["--demo-data", "1000"], &[("DATABASE_URL", &url)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("users 1000 "), "{}", stdout(&out));
    let client = connect_to(&db).await;
    assert_eq!(counts(&client).await, expected(&memory(1000), 1000).await);
}

#[tokio::test]
async fn seed_with_an_unreachable_postgres_fails_saying_so() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let out = streamhub_seed(&["--database-url", &url], &[]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[tokio::test]
async fn seed_refuses_off() {
    let out = streamhub_seed(
        &[
            "--database-url",
            "postgres://nowhere/x",
            "--demo-data",
            "off",
        ],
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`off` seeds nothing"),
        "{}",
        stderr(&out)
    );
}
