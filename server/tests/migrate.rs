//! `streamhub migrate` and the schema check against this machine's PostgreSQL
//! (127.0.0.1:5432, user `postgres`, trust authentication, database `test`): each test
//! makes a database of its own and drops it at the end.

mod support;

use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, Instant};

use streamhub_server::store::pg::migrate::{
    check, migrate_with, MigrateError, Migration, SchemaState, LATEST, LOCK_KEY, MIGRATIONS,
};
use streamhub_server::store::pg::{connect, CONNECT_TIMEOUT};
use support::Database;
use tokio_postgres::Client;

/// A connection to a test's database.
async fn connect_to(db: &Database) -> Client {
    connect(&db.url()).await.unwrap()
}

/// The tables the first migration makes.
const TABLES: &[&str] = &[
    "users",
    "categories",
    "channels",
    "streams",
    "follows",
    "moderators",
    "bans",
    "chat_events",
];

/// Runs `streamhub migrate --database-url <url>` with nothing else in its environment.
async fn streamhub_migrate(url: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_streamhub"))
        .env_clear()
        .args(["migrate", "--database-url", url])
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

/// Runs `migrate` and expects it to succeed.
async fn migrated(db: &Database) -> String {
    let out = streamhub_migrate(&db.url()).await;
    assert!(out.status.success(), "migrate failed: {}", stderr(&out));
    stdout(&out)
}

/// The rows of `streamhub_schema`: (version, name, compatible_from).
async fn recorded(client: &Client) -> Vec<(i32, String, i32)> {
    client
        .query(
            "SELECT version, name, compatible_from FROM streamhub_schema ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn ours() -> Vec<(i32, String, i32)> {
    MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_owned(), m.compatible_from))
        .collect()
}

async fn exists(client: &Client, relation: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation])
        .await
        .unwrap()
        .get(0)
}

/// Records a migration of a later release than this one, as its `migrate` would.
async fn record_future(client: &Client, name: &str, compatible_from: i32) {
    client
        .execute(
            "INSERT INTO streamhub_schema (version, name, compatible_from) VALUES ($1, $2, $3)",
            &[&(LATEST + 1), &name, &compatible_from],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn migrate_applies_the_schema_once_then_says_it_is_up_to_date() {
    let db = Database::empty("migrate");
    let client = connect_to(&db).await;
    assert_eq!(
        check(&client).await.map_err(|e| e.to_string()),
        Err(format!(
            "the database schema is at version 0 and this release needs version {LATEST}: run `streamhub migrate` first"
        )),
        "an empty database is behind"
    );
    assert!(
        !exists(&client, "streamhub_schema").await,
        "check changes nothing"
    );

    let first = migrated(&db).await;
    assert!(first.starts_with("applied 0001_initial"), "{first}");
    assert_eq!(first.lines().count(), 1, "{first}");
    for table in TABLES.iter().chain(&["streamhub_schema"]) {
        assert!(exists(&client, table).await, "{table} is missing");
    }
    assert_eq!(recorded(&client).await, ours());
    assert_eq!(check(&client).await.unwrap(), SchemaState::Current);

    let second = migrated(&db).await;
    assert!(second.contains("up to date"), "{second}");
    assert_eq!(recorded(&client).await, ours(), "nothing applied twice");
}

#[tokio::test]
async fn nodes_migrating_at_once_apply_each_migration_once() {
    let db = Database::empty("migrate");
    let url = db.url();
    let (a, b, c) = tokio::join!(
        streamhub_migrate(&url),
        streamhub_migrate(&url),
        streamhub_migrate(&url)
    );
    let mut applied = 0;
    for out in [&a, &b, &c] {
        assert!(out.status.success(), "{}", stderr(out));
        if stdout(out).starts_with("applied") {
            applied += 1;
        } else {
            assert!(stdout(out).contains("up to date"), "{}", stdout(out));
        }
    }
    assert_eq!(applied, 1, "exactly one of them applied the schema");
    assert_eq!(recorded(&connect_to(&db).await).await, ours());
}

#[tokio::test]
async fn a_newer_schema_that_was_only_expanded_is_accepted() {
    let db = Database::empty("migrate");
    migrated(&db).await;
    let client = connect_to(&db).await;
    record_future(&client, "future_expansion", LATEST).await;
    assert_eq!(
        check(&client).await.unwrap(),
        SchemaState::Expanded {
            version: LATEST + 1
        }
    );
    let again = migrated(&db).await;
    assert!(again.contains("up to date"), "{again}");
}

#[tokio::test]
async fn a_newer_schema_that_was_contracted_is_refused() {
    let db = Database::empty("migrate");
    migrated(&db).await;
    let client = connect_to(&db).await;
    record_future(&client, "future_contraction", LATEST + 1).await;
    let err = check(&client).await.unwrap_err();
    assert!(matches!(err, MigrateError::TooNew { .. }), "{err:?}");
    assert!(err.to_string().contains("deploy a newer release"), "{err}");

    let out = streamhub_migrate(&db.url()).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("deploy a newer release"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_schema_migrated_by_a_different_build_is_refused() {
    let db = Database::empty("migrate");
    migrated(&db).await;
    let client = connect_to(&db).await;
    client
        .execute(
            "UPDATE streamhub_schema SET name = 'not_ours' WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    let err = check(&client).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::Diverged { version: 1, .. }),
        "{err:?}"
    );
    let out = streamhub_migrate(&db.url()).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("`not_ours`"), "{}", stderr(&out));
}

#[tokio::test]
async fn a_failed_migration_is_rolled_back_and_releases_the_lock() {
    let db = Database::empty("migrate");
    let mut broken = MIGRATIONS.to_vec();
    broken.push(Migration {
        version: LATEST + 1,
        name: "broken",
        sql: "CREATE TABLE half_done (x integer); SELECT 1 / 0;",
        compatible_from: LATEST,
    });
    let broken: &'static [Migration] = Box::leak(broken.into_boxed_slice());
    let mut client = connect_to(&db).await;
    let err = migrate_with(&mut client, broken).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!("applying migration {:04}_broken", LATEST + 1)),
        "{message}"
    );
    assert!(message.contains("division by zero"), "{message}");
    // The migrations before it stay applied; nothing of it does.
    assert_eq!(recorded(&client).await, ours());
    assert!(!exists(&client, "half_done").await);
    // Another node can take the lock at once.
    let other = connect_to(&db).await;
    let locked: bool = other
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .unwrap()
        .get(0);
    assert!(locked, "the migration lock was left held");
}

#[tokio::test]
async fn an_unreachable_postgres_fails_at_once_saying_so() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let out = streamhub_migrate(&format!("postgres://postgres@127.0.0.1:{port}/test")).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(
        started.elapsed() < CONNECT_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_postgres_that_never_answers_times_out() {
    // Connections complete in the kernel's backlog; nothing ever answers them.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let out = streamhub_migrate(&format!("postgres://postgres@127.0.0.1:{port}/test")).await;
    let took = started.elapsed();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(err.contains("no answer within 5s"), "{err}");
    assert!(
        took >= CONNECT_TIMEOUT && took < CONNECT_TIMEOUT + Duration::from_secs(5),
        "{took:?}"
    );
    drop(silent);
}

#[tokio::test]
async fn migrate_needs_a_database_url() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_streamhub"))
        .env_clear()
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--database-url"), "{}", stderr(&out));
}

/// The schema holds what the memory store keeps, and refuses what it must.
#[tokio::test]
async fn the_schema_keeps_the_domain_and_its_rules() {
    let db = Database::empty("migrate");
    migrated(&db).await;
    let client = connect_to(&db).await;
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO users (id, login, display_name, created_at, channel_id)
                 VALUES ('u1', 'Alice', 'Alice', 1, 'ch_u1'), ('u2', 'bob', 'Bob', 2, 'ch_u2');
             INSERT INTO channels (id, owner_id, login, title, language, tags)
                 VALUES ('ch_u1', 'u1', 'Alice', 'hi', 'en', '{chill,music}'),
                        ('ch_u2', 'u2', 'bob', 'yo', 'de', '{}');
             COMMIT;
             INSERT INTO categories (id, slug, name) VALUES ('cat_music', 'music', 'Music');
             BEGIN;
             INSERT INTO streams (id, channel_id, title, category_id, language, started_at)
                 VALUES ('st1', 'ch_u1', 'hi', 'cat_music', 'en', 10);
             UPDATE channels SET stream_id = 'st1', category_id = 'cat_music' WHERE id = 'ch_u1';
             COMMIT;
             INSERT INTO follows (user_id, channel_id) VALUES ('u2', 'ch_u1');
             INSERT INTO follows (user_id, channel_id) VALUES ('u1', 'ch_u2');
             INSERT INTO moderators (channel_id, user_id) VALUES ('ch_u1', 'u2');
             INSERT INTO bans (channel_id, user_id, until) VALUES ('ch_u2', 'u1', NULL);
             INSERT INTO chat_events (channel_id, seq, kind, recorded_at, author_id,
                     author_login, author_display_name, body, sent_at)
                 VALUES ('ch_u1', 1, 'message', 20, 'u2', 'bob', 'Bob', 'hello', 15);
             INSERT INTO chat_events (channel_id, seq, kind, recorded_at, target_seq)
                 VALUES ('ch_u1', 2, 'deleted', 21, 1);
             UPDATE chat_events SET deleted = true WHERE channel_id = 'ch_u1' AND seq = 1;
             INSERT INTO chat_events (channel_id, seq, kind, recorded_at, target_user_id, until)
                 VALUES ('ch_u1', 3, 'banned', 22, 'u1', 99);",
        )
        .await
        .unwrap();
    let keys: Vec<i64> = client
        .query("SELECT key FROM follows ORDER BY key", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        keys.len() == 2 && keys[0] > 0 && keys[1] > keys[0],
        "{keys:?}"
    );
    let live: Vec<String> = client
        .query("SELECT id FROM channels WHERE stream_id IS NOT NULL", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(live, ["ch_u1"]);

    // Each statement that breaks a rule, and the constraint that says no.
    for (sql, constraint) in [
        (
            "INSERT INTO users (id, login, display_name, created_at, channel_id)
                 VALUES ('u3', 'ALICE', 'A', 3, 'ch_u3')",
            "users_login_lower",
        ),
        (
            "INSERT INTO streams (id, channel_id, title, language, started_at)
                 VALUES ('st2', 'ch_u1', 'again', 'en', 30)",
            "streams_one_live",
        ),
        (
            "INSERT INTO streams (id, channel_id, title, language, started_at, ended_at)
                 VALUES ('st3', 'ch_u2', 'x', 'en', 30, 40);
             UPDATE channels SET stream_id = 'st3' WHERE id = 'ch_u1'",
            "channels_stream_fkey",
        ),
        (
            "INSERT INTO users (id, login, display_name, created_at, channel_id)
                 VALUES ('u4', 'dave', 'Dave', 3, 'ch_nowhere')",
            "users_channel_id_fkey",
        ),
        (
            "INSERT INTO chat_events (channel_id, seq, kind, recorded_at, author_id)
                 VALUES ('ch_u1', 4, 'message', 23, 'u2')",
            "chat_events_shape",
        ),
        (
            "INSERT INTO chat_events (channel_id, seq, kind, recorded_at, target_seq)
                 VALUES ('ch_u1', 4, 'deleted', 23, 4)",
            "chat_events_shape",
        ),
        (
            "INSERT INTO chat_events (channel_id, seq, kind, recorded_at)
                 VALUES ('ch_u1', 4, 'whisper', 23)",
            "chat_events_kind_check",
        ),
        (
            "INSERT INTO chat_events (channel_id, seq, kind, recorded_at, target_user_id)
                 VALUES ('ch_u1', 3, 'banned', 23, 'u2')",
            "chat_events_pkey",
        ),
        (
            "INSERT INTO follows (user_id, channel_id) VALUES ('u2', 'ch_u1')",
            "follows_pkey",
        ),
        (
            "UPDATE channels SET follower_count = -1 WHERE id = 'ch_u1'",
            "channels_follower_count_check",
        ),
    ] {
        // In a transaction, so that deferred constraints are checked by the commit.
        let err = client
            .batch_execute(&format!("BEGIN; {sql}; COMMIT"))
            .await
            .expect_err(sql);
        client.batch_execute("ROLLBACK").await.unwrap();
        let db_error = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
        assert_eq!(db_error.constraint(), Some(constraint), "{sql}: {db_error}");
    }
}

/// Each index the schema's comments name serves the query they name (sequential scans
/// are disabled, so that the plan shows an index even on empty tables).
#[tokio::test]
async fn the_indexes_serve_the_queries_they_are_made_for() {
    let db = Database::empty("migrate");
    migrated(&db).await;
    let client = connect_to(&db).await;
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
    for (query, index) in [
        (
            r#"SELECT id FROM users WHERE lower(login COLLATE "C") = lower('Alice' COLLATE "C")"#,
            "users_login_lower",
        ),
        (
            "SELECT id FROM channels WHERE stream_id IS NOT NULL",
            "channels_live",
        ),
        (
            "SELECT id FROM streams WHERE channel_id = 'ch_u1' ORDER BY started_at DESC",
            "streams_channel",
        ),
        (
            "SELECT channel_id, key FROM follows WHERE user_id = 'u1' AND key < 100
             ORDER BY key DESC LIMIT 20",
            "follows_user_key",
        ),
        (
            "SELECT user_id, key FROM follows WHERE channel_id = 'ch_u1' AND key < 100
             ORDER BY key DESC LIMIT 20",
            "follows_channel_key",
        ),
        (
            "SELECT seq, body FROM chat_events
             WHERE channel_id = 'ch_u1' AND seq < 50 AND kind = 'message' AND NOT deleted
             ORDER BY seq DESC LIMIT 50",
            "chat_events_messages",
        ),
        (
            "SELECT seq FROM chat_events WHERE channel_id = 'ch_u1' ORDER BY seq DESC LIMIT 100",
            "chat_events_pkey",
        ),
    ] {
        let plan: Vec<String> = client
            .query(&format!("EXPLAIN {query}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains(index), "{query}\nuses no {index}:\n{plan}");
    }
}
