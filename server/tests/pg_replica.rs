//! A read replica (`DATABASE_REPLICA_URL`) against the real binary: each test makes a
//! PostgreSQL primary and a streaming replica of it of its own ([`PrivatePg`]) and runs
//! a server on both, with the shards' caches off so that reads reach the store. Reads
//! go to the replica; a viewer who wrote reads the primary, on every shard; a replica
//! that lags beyond the setting, or stops, leaves reads to the primary until it is back
//! (visible in `/metrics`); the primary down makes the node unready (the reason says
//! where reads go) while the replica still serves reads; and the replica alone is
//! refused at start.
//!
//! Replay is paused on the replica (`pg_wal_replay_pause()`) to make it lag at will.
//! Nothing here asserts a duration: every wait polls with a bound ([`PATIENCE`]).
//!
//! These tests make their own PostgreSQL; on `.ci/run`'s PostgreSQL pass
//! (`STREAMHUB_TEST_PG_TEMPLATE` set) they have nothing more to show and skip.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::pg::PrivatePg;
use support::{token, Server, PATIENCE, PG_TEMPLATE, SECRET};

/// A primary and a streaming replica of it, or None on the PostgreSQL pass.
fn primary_and_replica() -> Option<(PrivatePg, PrivatePg)> {
    if std::env::var_os(PG_TEMPLATE).is_some() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped on the PostgreSQL pass: the test makes its own PostgreSQL");
        }
        return None;
    }
    let primary = PrivatePg::start_new();
    let replica = PrivatePg::replica_of(&primary);
    Some((primary, replica))
}

/// A server on `primary` and `replica` (the demo data seeded at start, the caches
/// off), with `extra` settings; returned once reads go to the replica.
fn serve(primary: &PrivatePg, replica: &PrivatePg, extra: &[(&str, &str)]) -> Server {
    let (primary_url, replica_url) = (primary.url(), replica.url());
    let mut env = vec![
        ("DATABASE_URL", primary_url.as_str()),
        ("DATABASE_REPLICA_URL", replica_url.as_str()),
        ("STREAMHUB_MIGRATE", "true"),
        ("STREAMHUB_DEMO_DATA", "small"),
        ("STREAMHUB_CACHE_ENTRIES", "0"),
        ("STREAMHUB_JWT_SECRET", SECRET),
        ("STREAMHUB_LOG", "warn,streamhub=info"),
        ("STREAMHUB_RATE_QUERY", "off"),
        ("STREAMHUB_RATE_MUTATION", "off"),
        ("STREAMHUB_DRAIN_DELAY", "0s"),
    ];
    env.extend_from_slice(extra);
    let server = Server::start(&env);
    server.wait_for_log(|l| l["message"] == "store: PostgreSQL" && l["replica"] == true);
    wait_for(&server, "reads going to the replica", |m| {
        metric(m, "streamhub_db_replica_serving") == Some(1.0)
    });
    server
}

/// `/metrics`' text.
fn metrics(server: &Server) -> String {
    String::from_utf8(server.get("/metrics", &[]).body).expect("metrics are text")
}

/// A metric without labels, if listed.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `/metrics` until `ok` holds, for at most [`PATIENCE`].
fn wait_for(server: &Server, what: &str, ok: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let m = metrics(server);
        if ok(&m) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {PATIENCE:?}; metrics:\n{}",
            m.lines()
                .filter(|l| l.starts_with("streamhub_db_replica"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One GraphQL operation on a new connection: the data (no error allowed) and the shard
/// that answered it.
fn gql(server: &Server, who: Option<&str>, query: &str, variables: Value) -> (Value, u64) {
    let r = server.graphql(who, &json!({"query": query, "variables": variables}));
    let v = r.json();
    assert!(v.get("errors").is_none(), "unexpected errors: {v}");
    let id = r.header("x-request-id").expect("a request id").to_owned();
    (v["data"].clone(), server.shard_of(&id))
}

const NAME: &str = "query { user(id: \"u1\") { displayName } }";

/// u1's display name as `who` reads it.
fn display_name(server: &Server, who: Option<&str>) -> String {
    gql(server, who, NAME, json!({})).0["user"]["displayName"]
        .as_str()
        .expect("a display name")
        .to_owned()
}

/// alice (u1) renames herself.
fn rename(server: &Server, alice: &str, name: &str) {
    let (d, _) = gql(
        server,
        Some(alice),
        "mutation($n: String!) { updateProfile(input: {displayName: $n}) { displayName } }",
        json!({"n": name}),
    );
    assert_eq!(d["updateProfile"]["displayName"], name, "{d}");
}

/// Polls u1's display name as `who` reads it until it is `name`.
fn wait_for_name(server: &Server, who: Option<&str>, name: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = display_name(server, who);
        if seen == name {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {seen:?}, not {name:?}, after {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_writer_reads_its_own_writes_on_every_shard_while_others_read_the_replica() {
    let Some((primary, replica)) = primary_and_replica() else {
        return;
    };
    // No lag is too much, and the writer's window outlasts the test: what each viewer
    // reads is where it reads, not when.
    let server = serve(
        &primary,
        &replica,
        &[
            ("STREAMHUB_DB_REPLICA_MAX_LAG", "1h"),
            ("STREAMHUB_DB_READ_YOUR_WRITES", "1h"),
        ],
    );
    let alice = token("u1", "alice", false);
    let bob = token("u2", "bob", false);
    let before = display_name(&server, None);

    replica.pause_replay();
    rename(&server, &alice, "Alice on the primary");

    // alice reads her write at once, on new connections until both shards answered.
    let mut shards = BTreeSet::new();
    for _ in 0..50 {
        let (d, shard) = gql(&server, Some(&alice), NAME, json!({}));
        assert_eq!(d["user"]["displayName"], "Alice on the primary", "{d}");
        shards.insert(shard);
        if shards.len() == 2 {
            break;
        }
    }
    assert_eq!(shards.len(), 2, "every read landed on shard {shards:?}");
    // Everyone else reads the replica, which has not replayed it.
    assert_eq!(display_name(&server, Some(&bob)), before);
    assert_eq!(display_name(&server, None), before);
    let m = metrics(&server);
    assert_eq!(metric(&m, "streamhub_db_replica_serving"), Some(1.0), "{m}");

    // Replayed, the replica shows it to everyone.
    replica.resume_replay();
    wait_for_name(&server, None, "Alice on the primary");
    assert_eq!(display_name(&server, Some(&bob)), "Alice on the primary");
}

#[test]
fn a_replica_that_lags_beyond_the_setting_leaves_reads_to_the_primary() {
    let Some((primary, replica)) = primary_and_replica() else {
        return;
    };
    let server = serve(
        &primary,
        &replica,
        &[("STREAMHUB_DB_REPLICA_MAX_LAG", "200ms")],
    );
    let alice = token("u1", "alice", false);

    replica.pause_replay();
    rename(&server, &alice, "Alice past the lag");
    // The check finds the replica behind the primary for longer than allowed...
    wait_for(&server, "lagging replica left", |m| {
        metric(m, "streamhub_db_replica_serving") == Some(0.0)
            && metric(m, "streamhub_db_replica_reachable") == Some(1.0)
    });
    // ...and from then on everyone reads the primary.
    assert_eq!(display_name(&server, None), "Alice past the lag");
    assert_eq!(
        display_name(&server, Some(&token("u2", "bob", false))),
        "Alice past the lag"
    );

    // Caught up again, it serves again.
    replica.resume_replay();
    wait_for(&server, "replica back", |m| {
        metric(m, "streamhub_db_replica_serving") == Some(1.0)
    });
    assert_eq!(display_name(&server, None), "Alice past the lag");
}

#[test]
fn a_stopped_replica_leaves_reads_to_the_primary_until_it_is_back() {
    let Some((primary, replica)) = primary_and_replica() else {
        return;
    };
    let server = serve(&primary, &replica, &[]);
    let alice = token("u1", "alice", false);
    let before = display_name(&server, None);

    replica.stop();
    // Reads keep working, whether they meet the stopped replica first or not.
    for _ in 0..5 {
        assert_eq!(display_name(&server, None), before);
    }
    wait_for(&server, "stopped replica noticed", |m| {
        metric(m, "streamhub_db_replica_serving") == Some(0.0)
            && metric(m, "streamhub_db_replica_reachable") == Some(0.0)
    });
    // A missing replica is no reason to be unready.
    let ready = server.get("/readyz", &[]);
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    rename(&server, &alice, "Alice without a replica");
    assert_eq!(display_name(&server, None), "Alice without a replica");

    replica.start();
    wait_for(&server, "replica back", |m| {
        metric(m, "streamhub_db_replica_serving") == Some(1.0)
    });
    // Back, and caught up with what was written meanwhile.
    assert_eq!(display_name(&server, None), "Alice without a replica");
}

#[test]
fn the_primary_down_is_unready_while_the_replica_still_serves_reads() {
    let Some((primary, replica)) = primary_and_replica() else {
        return;
    };
    let server = serve(&primary, &replica, &[]);
    let before = display_name(&server, None);

    primary.stop();
    // Readiness follows the primary, and its reason says where reads go meanwhile.
    let deadline = Instant::now() + PATIENCE;
    let reason = loop {
        let r = server.get("/readyz", &[]);
        if r.status == 503 {
            break r.json()["reason"].as_str().unwrap_or_default().to_owned();
        }
        assert!(Instant::now() < deadline, "/readyz still {}", r.status);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(reason.contains("the replica at"), "{reason}");
    assert!(reason.contains("serves reads"), "{reason}");
    // Nothing can measure the lag without the primary: reads stay on the replica.
    assert_eq!(display_name(&server, None), before);

    primary.start();
    let deadline = Instant::now() + PATIENCE;
    while server.get("/readyz", &[]).status != 200 {
        assert!(Instant::now() < deadline, "not ready again");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_replica_without_database_url_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_streamhub"))
        .env_clear()
        .env(
            "DATABASE_REPLICA_URL",
            "postgres://replica.internal/streamhub",
        )
        .env("STREAMHUB_LISTEN", "127.0.0.1:0")
        .output()
        .expect("running streamhub");
    assert!(!out.status.success(), "it started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATABASE_URL"), "{err}");
    assert!(
        !err.contains("replica.internal"),
        "the URL is not echoed: {err}"
    );
}
