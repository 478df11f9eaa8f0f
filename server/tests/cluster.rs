//! Nodes through Redis, as they run behind one load balancer: two real `streamhub`
//! processes (two shards each) on one PostgreSQL and a Redis the test starts itself.
//! Members on both nodes get every acknowledged event of their room once, in seq order,
//! whichever node it was sent on; Redis lost makes sends fail fast with
//! `SERVICE_UNAVAILABLE` and `/readyz` say why, and once it is back (empty) seqs go
//! on past the last one, never repeating, on every node (a void a node saw included),
//! and a node back after the new epoch settled tells its members to reload; a node
//! whose subscriber link was lost catches up on what was sent meanwhile (from the
//! room's Redis stream, or PostgreSQL for a longer gap); viewer counts are summed
//! across nodes, and a node killed stops counting; a write answered on one node is read
//! on every node right after; with the cluster rate scope a client has one budget; a
//! node leaves a room its last member left. On a Redis Cluster of three masters the
//! same holds for rooms of every master.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::{json, Value};
use support::redis::{PrivateCluster, PrivateRedis};
use support::{graphql_at, token, Database, Server, WsClient, PATIENCE, SECRET};

/// Node `n` on `db` and `redis`: the first one migrates and seeds the demo data.
fn node(n: usize, db: &Database, redis: &PrivateRedis) -> Server {
    node_with(n, db, redis, &[])
}

/// [`node`] with more settings.
fn node_with(n: usize, db: &Database, redis: &PrivateRedis, extra: &[(&str, &str)]) -> Server {
    node_at(n, db, &redis.url(), extra)
}

/// [`node_with`] on the Redis at `redis`.
fn node_at(n: usize, db: &Database, redis: &str, extra: &[(&str, &str)]) -> Server {
    let db = db.url();
    let mut env = vec![
        ("DATABASE_URL", db.as_str()),
        ("REDIS_URL", redis),
        ("STREAMHUB_SHARDS", "2"),
        ("STREAMHUB_JWT_SECRET", SECRET),
        ("STREAMHUB_LOG", "warn,streamhub=info"),
        ("STREAMHUB_RATE_CHAT", "off"),
        ("STREAMHUB_RATE_MUTATION", "off"),
        ("STREAMHUB_RATE_WS_CONNECT", "off"),
    ];
    if n == 0 {
        env.extend([
            ("STREAMHUB_MIGRATE", "true"),
            ("STREAMHUB_DEMO_DATA", "small"),
        ]);
    }
    env.extend_from_slice(extra);
    let server = Server::start(&env);
    server.wait_for_log(|l| l["message"] == "rooms: ordered through Redis");
    wait_ready(&server);
    server
}

/// Waits until `server` has seen its link to Redis go (it is not ready).
fn wait_link_lost(server: &Server) {
    let deadline = Instant::now() + PATIENCE;
    while server.get("/readyz", &[]).status == 200 {
        assert!(
            Instant::now() < deadline,
            "the node did not see its link go"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Makes `user` a Redis user with every right (password `pw`): its URL.
fn redis_user(redis: &PrivateRedis, user: &str) -> String {
    let r = redis.cli(&["ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all"]);
    assert_eq!(r, "OK");
    format!("redis://{user}:pw@127.0.0.1:{}", redis.port)
}

/// Waits until `server` is ready: its link is up and it has joined Redis' epoch (a new
/// one settles first).
fn wait_ready(server: &Server) {
    let deadline = Instant::now() + PATIENCE;
    while server.get("/readyz", &[]).status != 200 {
        assert!(Instant::now() < deadline, "the node did not become ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn send_gql(server: &Server, who: &str, room: &str, body: &str) -> Value {
    graphql_at(
        server.addr,
        Some(&token(who, who, false)),
        &json!({
            "query": "mutation($c: ID!, $b: String!) { sendChatMessage(channelId: $c, body: $b) { seq } }",
            "variables": {"c": room, "b": body},
        }),
    )
    .json()
}

/// Waits until `server` has logged `message` `n` times.
fn wait_for_logs(server: &Server, message: &str, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while server
        .logs()
        .iter()
        .filter(|l| l["message"] == message)
        .count()
        < n
    {
        assert!(
            Instant::now() < deadline,
            "`{message}` logged fewer than {n} times"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Reads `n` messages: their (seq, body), in the order they came.
fn messages(member: &mut WsClient, n: usize) -> Vec<(u64, String)> {
    (0..n)
        .map(|_| {
            let e = member.next_json();
            assert_eq!(e["type"], "message", "{e}");
            (
                e["seq"].as_u64().unwrap(),
                e["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn members_on_every_node_and_shard_get_every_event_once_in_seq_order() {
    let redis = PrivateRedis::start();
    let db = Database::empty("cluster");
    let nodes = [node(0, &db, &redis), node(1, &db, &redis)];
    every_event_once_in_seq_order(&nodes, "ch_u2");
}

/// Members of `room` on both nodes (both shards of each) get every event sent on
/// either node, by the room protocol and GraphQL at once, once and in seq order.
fn every_event_once_in_seq_order(nodes: &[Server; 2], room: &str) {
    let mut members: Vec<WsClient> = (0..8)
        .map(|i| WsClient::connect(&nodes[i % 2], "/ws", &[]))
        .collect();
    let start: BTreeSet<u64> = members
        .iter_mut()
        .map(|m| m.join(room, None)["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        start.len(),
        1,
        "both nodes start the room at one seq: {start:?}"
    );
    let first = *start.first().unwrap();

    // Publishers on both nodes at once: two room-protocol senders each, and GraphQL.
    let per = 20;
    let mut sent = BTreeSet::new();
    let mut threads = Vec::new();
    for n in 0..4 {
        let user = format!("u{}", 10 + n);
        let auth = format!("Bearer {}", token(&user, &user, false));
        let mut c = WsClient::connect(&nodes[n % 2], "/ws", &[("Authorization", &auth)]);
        let bodies: Vec<String> = (0..per).map(|i| format!("ws {n} {i}")).collect();
        sent.extend(bodies.iter().cloned());
        let room = room.to_owned();
        threads.push(std::thread::spawn(move || {
            for b in &bodies {
                c.send_json(&json!({"type": "send", "room": room, "body": b}));
            }
            let mut acks = 0;
            while acks < bodies.len() {
                let m = c.next_json();
                assert_ne!(m["type"], "error", "{m}");
                if m["type"] == "sent" {
                    acks += 1;
                }
            }
        }));
    }
    for i in 0..per {
        let body = format!("gql {i}");
        let r = send_gql(&nodes[i % 2], "u1", room, &body);
        assert!(r["data"]["sendChatMessage"]["seq"].is_u64(), "{r}");
        sent.insert(body);
    }
    for t in threads {
        t.join().unwrap();
    }

    let total = sent.len();
    let want: Vec<u64> = (first + 1..=first + total as u64).collect();
    for (k, m) in members.iter_mut().enumerate() {
        let got = messages(m, total);
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            want,
            "member {k} (node {}): every seq once, in order",
            k % 2
        );
        let bodies: BTreeSet<String> = got.into_iter().map(|(_, b)| b).collect();
        assert_eq!(
            bodies, sent,
            "member {k}: every message sent on either node"
        );
    }
}

#[test]
fn on_a_three_master_redis_cluster_rooms_of_every_master_order_fan_out_and_count_once() {
    let cluster = PrivateCluster::start();
    let db = Database::empty("cluster_masters");
    let settings = [
        ("STREAMHUB_REDIS_CLUSTER", "true"),
        ("STREAMHUB_PRESENCE_TTL", "2s"),
    ];
    let nodes = [0, 1].map(|n| node_at(n, &db, &cluster.url(), &settings));

    // A room of each master's slots.
    let mut rooms: BTreeMap<u16, String> = BTreeMap::new();
    for u in 2..40 {
        let room = format!("ch_u{u}");
        rooms
            .entry(cluster.master_of(&format!("sh:{{{room}}}")))
            .or_insert(room);
    }
    assert_eq!(rooms.len(), 3, "a room on each master: {rooms:?}");
    for (master, room) in &rooms {
        every_event_once_in_seq_order(&nodes, room);
        let stream = cluster.cli_on(*master, &["XLEN", &format!("sh:{{{room}}}:x")]);
        assert_eq!(stream, "100", "{room}'s Redis stream, on its master");
    }

    // A write answered on one node is read on the other right after: the announcement
    // waits for every node's link, whose sharded subscriptions to `sh:changes` are all
    // on its slot's master (where an SPUBLISH counts them).
    let changes = cluster.master_of("sh:changes");
    for &port in &cluster.ports {
        let links = cluster.cli_on(port, &["PUBSUB", "SHARDNUMSUB", "sh:changes"]);
        let want = if port == changes { 2 } else { 0 };
        assert_eq!(links, format!("sh:changes\n{want}"), "links on :{port}");
    }
    each_write_is_read_on_the_other_node_at_once(&nodes, 3);

    // Viewer counts are summed across the nodes.
    let mut members: Vec<WsClient> = (0..3)
        .map(|i| WsClient::connect(&nodes[i % 2], "/ws", &[]))
        .collect();
    for m in &mut members {
        m.join("ch_u5", None);
    }
    wait_for_viewers(&nodes[0], 3);
    wait_for_viewers(&nodes[1], 3);
}

#[test]
fn redis_lost_fails_sends_fast_and_back_empty_seqs_go_on_without_repeating() {
    let mut redis = PrivateRedis::start();
    let db = Database::empty("cluster_lost");
    let nodes = [node(0, &db, &redis), node(1, &db, &redis)];
    let mut member = WsClient::connect(&nodes[1], "/ws", &[]);
    let first = member.join("ch_u3", None)["seq"].as_u64().unwrap();
    for i in 0..3 {
        let r = send_gql(&nodes[0], "u1", "ch_u3", &format!("before {i}"));
        assert_eq!(
            r["data"]["sendChatMessage"]["seq"],
            first + 1 + i as u64,
            "{r}"
        );
    }
    let got = messages(&mut member, 3);
    assert_eq!(got.last().unwrap().0, first + 3);

    redis.kill();
    for node in &nodes {
        let r = send_gql(node, "u1", "ch_u3", "while redis is gone");
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE",
            "{r}"
        );
        assert!(r["data"]["sendChatMessage"].is_null(), "{r}");
    }

    let ready = nodes[1].get("/readyz", &[]);
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["status"], "redis", "{:?}", ready.json());

    redis.restart_empty();
    // Both nodes subscribe again and settle the new epoch before node 0 sends.
    nodes.iter().for_each(wait_ready);
    let r = send_gql(&nodes[0], "u1", "ch_u3", "after");
    assert_eq!(
        r["data"]["sendChatMessage"]["seq"],
        first + 4,
        "the seq goes on past the last one, not from 1: {r}"
    );
    assert_eq!(messages(&mut member, 1), [(first + 4, "after".to_owned())]);
}

#[test]
fn a_node_whose_link_was_lost_catches_up_on_what_was_sent_meanwhile() {
    let redis = PrivateRedis::start();
    let db = Database::empty("cluster_catch_up");
    // Each node is a Redis user of its own, so that only node 1's link is cut: node 0,
    // whose link stays, sends meanwhile (a node without its link refuses sends).
    let urls = ["n0", "n1"].map(|u| redis_user(&redis, u));
    let nodes = [0, 1].map(|n| {
        node_with(
            n,
            &db,
            &redis,
            &[("STREAMHUB_HISTORY_EVENTS", "20"), ("REDIS_URL", &urls[n])],
        )
    });
    let cut_node_1 = || {
        assert_eq!(redis.cli(&["ACL", "SETUSER", "n1", "-subscribe"]), "OK");
        redis.cli(&["CLIENT", "KILL", "USER", "n1", "TYPE", "pubsub"]);
    };
    let mut member = WsClient::connect(&nodes[1], "/ws", &[]);
    let first = member.join("ch_u4", None)["seq"].as_u64().unwrap();
    let r = send_gql(&nodes[0], "u1", "ch_u4", "before");
    assert_eq!(r["data"]["sendChatMessage"]["seq"], first + 1, "{r}");

    // Node 1's link is cut and cannot subscribe again until Redis allows it: node 0
    // sends while node 1 hears nothing.
    cut_node_1();
    wait_for_logs(&nodes[1], "redis link: lost", 1);
    assert_eq!(nodes[1].get("/readyz", &[]).json()["status"], "redis");
    let mut sent = vec!["before".to_owned()];
    for i in 0..10 {
        let body = format!("meanwhile {i}");
        let r = send_gql(&nodes[0], "u1", "ch_u4", &body);
        assert!(r["data"]["sendChatMessage"]["seq"].is_u64(), "{r}");
        sent.push(body);
    }
    assert_eq!(redis.cli(&["ACL", "SETUSER", "n1", "+subscribe"]), "OK");
    wait_for_logs(&nodes[1], "redis link: subscribed", 2);
    let r = send_gql(&nodes[0], "u1", "ch_u4", "after");
    assert!(r["data"]["sendChatMessage"]["seq"].is_u64(), "{r}");
    sent.push("after".to_owned());

    let got = messages(&mut member, sent.len());
    let want: Vec<(u64, String)> = (first + 1..).zip(sent).collect();
    assert_eq!(
        got, want,
        "every message once, in order, the missed ones included"
    );
    // The room's Redis stream held what node 1 missed.
    wait_for_logs(&nodes[1], "rooms: caught up from the Redis stream", 1);

    // Cut again, and more is sent meanwhile than the stream keeps (about the history's
    // 20 events, trimmed in Redis' own steps): the store fills the gap.
    let last = want.last().unwrap().0;
    cut_node_1();
    wait_link_lost(&nodes[1]);
    let sent: Vec<String> = (0..300).map(|i| format!("long gap {i}")).collect();
    for body in &sent {
        let r = send_gql(&nodes[0], "u1", "ch_u4", body);
        assert!(r["data"]["sendChatMessage"]["seq"].is_u64(), "{r}");
    }
    assert_eq!(redis.cli(&["ACL", "SETUSER", "n1", "+subscribe"]), "OK");
    let got = messages(&mut member, sent.len());
    let want: Vec<(u64, String)> = (last + 1..).zip(sent).collect();
    assert_eq!(got, want, "the long gap once, in order, from the store");
    let from_stream = nodes[1]
        .logs()
        .iter()
        .filter(|l| l["message"] == "rooms: caught up from the Redis stream")
        .count();
    assert_eq!(from_stream, 1, "the long gap did not come from the stream");
}

/// `ch_u5`'s viewer count as `server` answers it.
fn viewers(server: &Server) -> u64 {
    let r = graphql_at(
        server.addr,
        None,
        &json!({"query": "{ channel(id: \"ch_u5\") { viewerCount } }"}),
    )
    .json();
    r["data"]["channel"]["viewerCount"]
        .as_u64()
        .unwrap_or_else(|| panic!("{r}"))
}

/// Waits until `server` counts `n` viewers in `ch_u5`.
fn wait_for_viewers(server: &Server, n: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = viewers(server);
        if seen == n {
            return;
        }
        assert!(Instant::now() < deadline, "{seen} viewers, not {n}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn viewer_counts_are_summed_across_nodes_and_a_killed_node_stops_counting() {
    let redis = PrivateRedis::start();
    let db = Database::empty("cluster_presence");
    let ttl = [("STREAMHUB_PRESENCE_TTL", "2s")];
    let nodes = [
        node_with(0, &db, &redis, &ttl),
        node_with(1, &db, &redis, &ttl),
    ];
    let mut members: Vec<WsClient> = (0..5)
        .map(|i| WsClient::connect(&nodes[if i < 3 { 0 } else { 1 }], "/ws", &[]))
        .collect();
    for m in &mut members {
        m.join("ch_u5", None);
    }
    // Three members on node 0, two on node 1: both count five.
    wait_for_viewers(&nodes[1], 5);
    wait_for_viewers(&nodes[0], 5);
    support::pg::signal(&[nodes[0].pid().to_string()], "KILL");
    wait_for_viewers(&nodes[1], 2);
}

#[test]
fn a_member_moving_nodes_with_since_gets_the_exact_gap_or_is_told_it_cannot() {
    let redis = PrivateRedis::start();
    let db = Database::empty("cluster_moving");
    let nodes = [
        node_with(0, &db, &redis, &[("STREAMHUB_HISTORY_EVENTS", "20")]),
        node_with(1, &db, &redis, &[("STREAMHUB_HISTORY_EVENTS", "20")]),
    ];
    // Node 1 has the room open (a member there), so it hears every event.
    let mut stays = WsClient::connect(&nodes[1], "/ws", &[]);
    let mut mover = WsClient::connect(&nodes[0], "/ws", &[]);
    let left_at = mover.join("ch_u6", None)["seq"].as_u64().unwrap();
    stays.join("ch_u6", None);
    drop(mover);
    for i in 0..5 {
        let r = send_gql(&nodes[0], "u1", "ch_u6", &format!("gap {i}"));
        assert!(r["data"]["sendChatMessage"]["seq"].is_u64(), "{r}");
    }
    assert_eq!(messages(&mut stays, 5).last().unwrap().0, left_at + 5);
    let mut moved = WsClient::connect(&nodes[1], "/ws", &[]);
    let joined = moved.join("ch_u6", Some(left_at));
    assert_eq!(joined["recovered"], true, "{joined}");
    let got = messages(&mut moved, 5);
    let want: Vec<(u64, String)> = (0..5)
        .map(|i| (left_at + 1 + i, format!("gap {i}")))
        .collect();
    assert_eq!(got, want);

    // A gap longer than the history (20 events) is not replayed, on either node.
    for i in 0..25 {
        let r = send_gql(&nodes[1], "u1", "ch_u6", &format!("more {i}"));
        assert!(r["data"]["sendChatMessage"]["seq"].is_u64(), "{r}");
    }
    let mut late = WsClient::connect(&nodes[0], "/ws", &[]);
    let joined = late.join("ch_u6", Some(left_at));
    assert_eq!(joined["recovered"], false, "{joined}");
}

#[test]
fn an_apq_registration_on_one_node_runs_by_its_hash_on_the_other() {
    use sha2::{Digest, Sha256};
    let redis = PrivateRedis::start();
    let db = Database::empty("cluster_apq");
    let nodes = [node(0, &db, &redis), node(1, &db, &redis)];
    let text = "{ category(slug: \"chess\") { name } }";
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    let by_hash = json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    let code = |r: &Value| r["errors"][0]["extensions"]["code"].clone();
    assert_eq!(
        code(&graphql_at(nodes[1].addr, None, &by_hash).json()),
        "PERSISTED_QUERY_NOT_FOUND"
    );
    let register = json!({"query": text, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    let r = graphql_at(nodes[0].addr, None, &register).json();
    assert_eq!(r["data"]["category"]["name"], "Chess", "{r}");
    let r = graphql_at(nodes[1].addr, None, &by_hash).json();
    assert_eq!(r["data"]["category"]["name"], "Chess", "{r}");
    // A text in Redis that does not match its hash is not run.
    let other = hex::encode(Sha256::digest(b"something else"));
    redis.cli(&["SET", &format!("sh:apq:{other}"), text]);
    let forged = json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": other}}});
    let r = graphql_at(nodes[1].addr, None, &forged).json();
    assert!(r["data"].is_null(), "{r}");
    assert_eq!(code(&r), "PERSISTED_QUERY_NOT_FOUND", "{r}");
}

#[test]
fn a_seq_whose_orderer_never_settled_it_is_voided_and_the_room_goes_on() {
    let redis = PrivateRedis::start();
    let db = Database::empty("cluster_stale");
    // A seq counts as stale after the pool wait, the statement timeout, two Redis calls
    // and a second: about 2 s here.
    let quick = [
        ("STREAMHUB_DB_POOL_WAIT", "200ms"),
        ("STREAMHUB_DB_STATEMENT_TIMEOUT", "500ms"),
        ("STREAMHUB_REDIS_TIMEOUT", "200ms"),
    ];
    let nodes = [
        node_with(0, &db, &redis, &quick),
        node_with(1, &db, &redis, &quick),
    ];
    let mut member = WsClient::connect(&nodes[1], "/ws", &[]);
    let first = member.join("ch_u7", None)["seq"].as_u64().unwrap();
    // An orderer gave the next seq and died before settling it: it stays pending.
    let stuck: u64 = redis
        .cli(&["INCR", "sh:{ch_u7}:seq"])
        .parse()
        .expect("the room's counter");
    assert_eq!(stuck, first + 1);
    redis.cli(&["ZADD", "sh:{ch_u7}:pend", "1", &stuck.to_string()]);
    let r = send_gql(&nodes[0], "u1", "ch_u7", "after the stuck one");
    assert_eq!(r["data"]["sendChatMessage"]["seq"], first + 2, "{r}");
    // It waits for the stuck seq until a node voids it, then comes (a void shows nothing).
    assert_eq!(
        messages(&mut member, 1),
        [(first + 2, "after the stuck one".to_owned())]
    );
    assert_eq!(redis.cli(&["ZCARD", "sh:{ch_u7}:pend"]), "0");
}

/// Sends `body` to `room` through `server` as soon as it takes it (it answers
/// `SERVICE_UNAVAILABLE` until then): the message's seq.
fn send_when_taken(server: &Server, room: &str, body: &str) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = send_gql(server, "u1", room, body);
        if let Some(seq) = r["data"]["sendChatMessage"]["seq"].as_u64() {
            return seq;
        }
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE",
            "{r}"
        );
        assert!(Instant::now() < deadline, "never taken: {r}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The last seq `server` has settled in `room`, as a member joining there is told.
fn last_seq(server: &Server, room: &str) -> u64 {
    let mut c = WsClient::connect(server, "/ws", &[]);
    c.join(room, None)["seq"].as_u64().unwrap()
}

#[test]
fn redis_back_empty_never_gives_again_a_seq_a_node_saw_and_a_node_back_too_late_says_so() {
    let mut redis = PrivateRedis::start();
    let db = Database::empty("cluster_epoch");
    // Each node is a Redis user of its own, so that the test decides when each may
    // connect again once Redis has come back empty (and forgotten them).
    let urls = ["n0", "n1", "n2"].map(|u| redis_user(&redis, u));
    let nodes = [0, 1, 2].map(|n| node_with(n, &db, &redis, &[("REDIS_URL", &urls[n])]));
    let mut member = WsClient::connect(&nodes[1], "/ws", &[]);
    member.join("ch_u8", None);
    let first = send_when_taken(&nodes[0], "ch_u8", "first");
    assert_eq!(messages(&mut member, 1), [(first, "first".to_owned())]);
    // A void above the chat log's last seq, which nodes 0 and 1 saw and node 2 did not
    // (it has not opened the room): node 0's send is refused after it was ordered (the
    // seq is taken in the log), then the row goes.
    let void = first + 1;
    db.psql(&format!(
        "INSERT INTO chat_events (channel_id, seq, kind, recorded_at, target_seq) \
         VALUES ('ch_u8', {void}, 'deleted', 0, 0)"
    ));
    let r = send_gql(&nodes[0], "u1", "ch_u8", "refused");
    assert!(r["data"]["sendChatMessage"].is_null(), "{r}");
    db.psql(&format!(
        "DELETE FROM chat_events WHERE channel_id = 'ch_u8' AND seq = {void}"
    ));
    let deadline = Instant::now() + PATIENCE;
    while last_seq(&nodes[1], "ch_u8") != void {
        assert!(Instant::now() < deadline, "node 1 never saw the void");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // Redis comes back empty, and node 2 (which never saw the void) connects first and
    // sends as soon as it may: not before nodes 0 and 1, connecting after it, have
    // raised the room's counter past the void (a seq given again would be dropped as a
    // duplicate on node 1).
    redis.restart_empty();
    redis_user(&redis, "n2");
    std::thread::scope(|s| {
        let sent = s.spawn(|| send_when_taken(&nodes[2], "ch_u8", "after"));
        wait_for_logs(&nodes[2], "rooms: joined Redis' epoch", 2);
        redis_user(&redis, "n0");
        redis_user(&redis, "n1");
        assert_eq!(
            sent.join().unwrap(),
            void + 1,
            "the seq goes on past the void"
        );
    });
    assert_eq!(messages(&mut member, 1), [(void + 1, "after".to_owned())]);

    // Redis loses everything again while node 1 cannot subscribe; node 0 goes on in a
    // new epoch; node 1 comes back after it settled and cannot prove that no seq it saw
    // was given again: its member is told to reload, and goes on from there.
    assert_eq!(redis.cli(&["ACL", "SETUSER", "n1", "-subscribe"]), "OK");
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    wait_link_lost(&nodes[1]);
    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");
    let seq = send_when_taken(&nodes[0], "ch_u8", "in the new epoch");
    assert_eq!(seq, void + 2);
    assert_eq!(redis.cli(&["ACL", "SETUSER", "n1", "+subscribe"]), "OK");
    wait_ready(&nodes[1]);
    // The next event tells the member (its seq is the room's last: a reload shows it).
    let seq = send_when_taken(&nodes[0], "ch_u8", "later");
    let told = member.next_json();
    assert_eq!(told["type"], "joined", "{told}");
    assert_eq!(told["recovered"], false, "{told}");
    assert_eq!(told["seq"], seq, "{told}");
    let seq = send_when_taken(&nodes[2], "ch_u8", "from there on");
    assert_eq!(
        messages(&mut member, 1),
        [(seq, "from there on".to_owned())]
    );

    // `since` across the change of epoch: exact where the node can prove it, and said
    // where it cannot.
    let mut moved = WsClient::connect(&nodes[0], "/ws", &[]);
    assert_eq!(moved.join("ch_u8", Some(void + 1))["recovered"], true);
    let bodies: Vec<String> = messages(&mut moved, 3).into_iter().map(|m| m.1).collect();
    assert_eq!(bodies, ["in the new epoch", "later", "from there on"]);
    let mut moved = WsClient::connect(&nodes[1], "/ws", &[]);
    assert_eq!(moved.join("ch_u8", Some(void + 1))["recovered"], false);
}

#[test]
fn a_cluster_master_back_empty_gives_its_rooms_a_new_epoch_past_every_seq_a_node_saw() {
    let mut cluster = PrivateCluster::start();
    let db = Database::empty("cluster_master_lost");
    let on = [("STREAMHUB_REDIS_CLUSTER", "true")];
    let nodes = [0, 1, 2].map(|n| node_at(n, &db, &cluster.url(), &on));
    // A room on a master other than `sh:changes`' (the nodes hear of a new epoch there).
    let changes = cluster.master_of("sh:changes");
    let room = (2..40)
        .map(|u| format!("ch_u{u}"))
        .find(|r| cluster.master_of(&format!("sh:{{{r}}}")) != changes)
        .expect("a room on another master");
    let master = cluster.master_of(&format!("sh:{{{room}}}"));
    let mut member = WsClient::connect(&nodes[1], "/ws", &[]);
    member.join(&room, None);
    let first = send_when_taken(&nodes[0], &room, "first");
    assert_eq!(messages(&mut member, 1), [(first, "first".to_owned())]);
    // A void above the chat log's last seq, which nodes 0 and 1 saw and node 2 did not.
    let void = first + 1;
    db.psql(&format!(
        "INSERT INTO chat_events (channel_id, seq, kind, recorded_at, target_seq) \
         VALUES ('{room}', {void}, 'deleted', 0, 0)"
    ));
    let r = send_gql(&nodes[0], "u1", &room, "refused");
    assert!(r["data"]["sendChatMessage"].is_null(), "{r}");
    db.psql(&format!(
        "DELETE FROM chat_events WHERE channel_id = '{room}' AND seq = {void}"
    ));
    let deadline = Instant::now() + PATIENCE;
    while last_seq(&nodes[1], &room) != void {
        assert!(Instant::now() < deadline, "node 1 never saw the void");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // The room's master comes back empty: node 2 finds its slot's epoch gone and makes
    // a new one, which every node hears of and raises the room's counter in before it
    // settles: node 2's send goes on past the void, and node 1's member gets it.
    cluster.restart_empty(master);
    assert_eq!(
        send_when_taken(&nodes[2], &room, "after"),
        void + 1,
        "the seq goes on past the void"
    );
    assert_eq!(messages(&mut member, 1), [(void + 1, "after".to_owned())]);
    let seq = send_when_taken(&nodes[0], &room, "and on");
    assert_eq!(messages(&mut member, 1), [(seq, "and on".to_owned())]);
    assert_eq!(seq, void + 2);
}

/// `ch_u2`'s title as `server` answers it.
fn title(server: &Server) -> Value {
    let r = graphql_at(
        server.addr,
        None,
        &json!({"query": "{ channel(id: \"ch_u2\") { title } }"}),
    )
    .json();
    r["data"]["channel"]["title"].clone()
}

fn retitle(server: &Server, title: &str) -> Value {
    graphql_at(
        server.addr,
        Some(&token("u2", "u2", false)),
        &json!({
            "query": "mutation($t: String!) { updateChannel(input: {title: $t}) { title } }",
            "variables": {"t": title},
        }),
    )
    .json()
}

/// `rounds` times: node 1's caches (both shards) hold `ch_u2`'s title, node 0 changes
/// it, and node 1 answers the new one right after.
fn each_write_is_read_on_the_other_node_at_once(nodes: &[Server; 2], rounds: usize) {
    for i in 0..rounds {
        for _ in 0..4 {
            title(&nodes[1]);
        }
        let new = format!("title {i}");
        let r = retitle(&nodes[0], &new);
        assert_eq!(r["data"]["updateChannel"]["title"], new.as_str(), "{r}");
        assert_eq!(title(&nodes[1]), new.as_str());
    }
}

#[test]
fn a_write_answered_on_one_node_is_read_on_every_node_right_after() {
    let redis = PrivateRedis::start();
    let db = Database::empty("cluster_changes");
    let urls = ["n0", "n1"].map(|u| redis_user(&redis, u));
    let nodes = [0, 1].map(|n| node_with(n, &db, &redis, &[("REDIS_URL", &urls[n])]));
    each_write_is_read_on_the_other_node_at_once(&nodes, 5);

    // Node 1's link is cut while node 0 writes: once back, its caches drop what they
    // held (the announcement did not reach it).
    for _ in 0..4 {
        title(&nodes[1]);
    }
    assert_eq!(redis.cli(&["ACL", "SETUSER", "n1", "-subscribe"]), "OK");
    redis.cli(&["CLIENT", "KILL", "USER", "n1"]);
    wait_link_lost(&nodes[1]);
    // Meanwhile node 1 refuses writes at once: it could not tell the other nodes.
    let r = retitle(&nodes[1], "refused");
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE",
        "{r}"
    );
    let r = retitle(&nodes[0], "while cut");
    assert_eq!(r["data"]["updateChannel"]["title"], "while cut", "{r}");
    assert_eq!(redis.cli(&["ACL", "SETUSER", "n1", "+subscribe"]), "OK");
    wait_ready(&nodes[1]);
    assert_eq!(title(&nodes[1]), "while cut");
}

#[test]
fn with_the_cluster_rate_scope_a_client_has_one_budget_across_the_nodes() {
    let redis = PrivateRedis::start();
    let db = Database::empty("cluster_rates");
    let rates = [
        ("STREAMHUB_RATE_SCOPE", "cluster"),
        ("STREAMHUB_RATE_QUERY", "5/1h"),
        ("STREAMHUB_RATE_CHAT", "3/1h"),
    ];
    let nodes = [
        node_with(0, &db, &redis, &rates),
        node_with(1, &db, &redis, &rates),
    ];
    let query = json!({"query": "{ category(slug: \"chess\") { name } }"});
    let code = |r: &Value| r["errors"][0]["extensions"]["code"].clone();
    let who = token("u3", "u3", false);
    for n in [0, 1, 0, 1, 1] {
        let r = graphql_at(nodes[n].addr, Some(&who), &query).json();
        assert_eq!(r["data"]["category"]["name"], "Chess", "{r}");
    }
    for node in &nodes {
        let r = graphql_at(node.addr, Some(&who), &query);
        assert_eq!(r.status, 429);
        assert_eq!(code(&r.json()), "RATE_LIMITED");
    }
    // Another client's budget is its own.
    let r = graphql_at(nodes[0].addr, Some(&token("u4", "u4", false)), &query).json();
    assert_eq!(r["data"]["category"]["name"], "Chess", "{r}");

    // Chat: two sends by mutation on node 0, the third over the room protocol on node 1
    // goes, the fourth does not.
    for i in 0..2 {
        let r = send_gql(&nodes[0], "u5", "ch_u9", &format!("m{i}"));
        assert!(r["data"]["sendChatMessage"]["seq"].is_u64(), "{r}");
    }
    let mut ws = WsClient::connect(
        &nodes[1],
        "/ws",
        &[(
            "Authorization",
            &format!("Bearer {}", token("u5", "u5", false)),
        )],
    );
    ws.join("ch_u9", None);
    ws.send_json(&json!({"type": "send", "room": "ch_u9", "body": "m2", "nonce": "a"}));
    ws.send_json(&json!({"type": "send", "room": "ch_u9", "body": "m3", "nonce": "b"}));
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let f = ws.next_json();
        if f["type"] == "sent" || f["type"] == "error" {
            answers.push((f["nonce"].clone(), f["type"].clone(), f["code"].clone()));
        }
    }
    assert_eq!(
        answers,
        [
            (json!("a"), json!("sent"), Value::Null),
            (json!("b"), json!("error"), json!("RATE_LIMITED")),
        ]
    );
}

/// How many links are subscribed to `room`'s channel.
fn subscribed(redis: &PrivateRedis, room: &str) -> u64 {
    let out = redis.cli(&["PUBSUB", "NUMSUB", &format!("sh:{{{room}}}")]);
    out.lines()
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_node_leaves_a_room_its_last_member_left_and_comes_back_with_the_next() {
    let redis = PrivateRedis::start();
    let db = Database::empty("cluster_idle");
    let nodes = [node(0, &db, &redis), node(1, &db, &redis)];
    let mut member = WsClient::connect(&nodes[1], "/ws", &[]);
    member.join("ch_u2", None);
    assert_eq!(subscribed(&redis, "ch_u2"), 1, "node 1 listens");
    member.send_json(&json!({"type": "leave", "room": "ch_u2"}));
    // Once no shard has held it for the linger (5 s), node 1 unsubscribes.
    let deadline = Instant::now() + PATIENCE;
    while subscribed(&redis, "ch_u2") != 0 {
        assert!(Instant::now() < deadline, "node 1 never left the room");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Sent meanwhile on node 0, then a member joins node 1 again: the room opens anew
    // and hears every event from there on.
    let r = send_gql(&nodes[0], "u1", "ch_u2", "while nobody listened");
    let missed = r["data"]["sendChatMessage"]["seq"].as_u64().unwrap();
    let mut back = WsClient::connect(&nodes[1], "/ws", &[]);
    let joined = back.join("ch_u2", Some(missed - 1));
    assert_eq!(joined["recovered"], true, "{joined}");
    assert_eq!(
        messages(&mut back, 1),
        [(missed, "while nobody listened".to_owned())]
    );
    // (Node 0, which sent, has the room open too, until it has been idle a while.)
    let r = send_gql(&nodes[0], "u1", "ch_u2", "after");
    let seq = r["data"]["sendChatMessage"]["seq"].as_u64().unwrap();
    assert_eq!(messages(&mut back, 1), [(seq, "after".to_owned())]);
}
