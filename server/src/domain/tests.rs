//! The domain through the engine: operations over the demo data, as clients send them.

use std::rc::Rc;
use std::sync::{Arc, Mutex};

use graphql_exec::coerce::coerce_variables;
use graphql_exec::limits::Limits;
use graphql_exec::persisted::prepare;
use serde_json::{json, Value};

use super::events::{EventSink, Notice};
use super::*;
use crate::metrics::ShardMetrics;
use crate::store::cache::{Cache, CacheLimits};
use crate::store::SystemClock;

#[derive(Debug, Default)]
struct Recorded(Mutex<Vec<Notice>>);

impl EventSink for Recorded {
    fn publish(&self, notice: Notice) {
        self.0.lock().unwrap().push(notice);
    }
}

struct Fixture {
    domain: Domain,
    cache: Cache,
    events: Arc<Recorded>,
    rt: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let schema = Arc::new(crate::schema::build().unwrap());
    let data = DataLayer::embedded(
        DemoSize::SMALL,
        HistoryLimits::default(),
        Arc::new(SystemClock),
    );
    let events = Arc::new(Recorded::default());
    Fixture {
        domain: Domain::new(schema, data, events.clone()),
        cache: Cache::new(
            CacheLimits {
                entries: 1000,
                ttl: 60_000,
                primary_after_change: 0,
            },
            Arc::new(ShardMetrics::new(0)),
        ),
        events,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    }
}

fn viewer(id: &str, login: &str, admin: bool) -> Viewer {
    Viewer {
        id: Rc::from(id),
        login: Rc::from(login),
        admin,
    }
}

impl Fixture {
    fn run(&self, who: Option<&Viewer>, query: &str, vars: Value) -> Value {
        let schema = &self.domain.schema;
        let prepared =
            prepare(schema, query, &Limits::default()).unwrap_or_else(|e| panic!("{query}: {e:?}"));
        let plan = prepared.plan(None).unwrap();
        let Value::Object(vars) = vars else { panic!() };
        let vars = coerce_variables(schema, &plan.variables, &vars).unwrap();
        let out = self.rt.block_on(async {
            let req = self.domain.request(&self.cache, who).await.unwrap();
            graphql_exec::exec::execute(schema, plan, &req, Obj::Root, &vars).await
        });
        serde_json::from_slice(&out).unwrap()
    }

    fn code(&self, who: Option<&Viewer>, query: &str, vars: Value) -> String {
        let r = self.run(who, query, vars);
        r["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {r}"))
            .to_owned()
    }

    /// alice's channel, from the store.
    fn alice(&self) -> Channel {
        self.rt
            .block_on(self.domain.store.channels(&["ch_u1"]))
            .unwrap()
            .pop()
            .flatten()
            .unwrap()
    }

    /// The room's last seq.
    fn last_seq(&self, room: &str) -> u64 {
        self.rt
            .block_on(self.domain.rooms.open(room))
            .unwrap()
            .unwrap()
            .last_seq()
    }

    /// The room events published so far, as (room, seq).
    fn room_events(&self) -> Vec<(String, u64)> {
        self.events
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|n| match n {
                Notice::Room(e) => Some((e.room.to_string(), e.seq)),
                Notice::Changed(_) | Notice::Cleared => None,
            })
            .collect()
    }
}

const CHANNEL_PAGE: &str = include_str!("../../../bench/queries/channel-page.graphql");

#[test]
fn the_channel_page_reads_the_store() {
    let f = fixture();
    let r = f.run(None, CHANNEL_PAGE, json!({"login": "alice"}));
    assert!(r.get("errors").is_none(), "{r}");
    let c = &r["data"]["channel"];
    let alice = f.alice();
    assert_eq!(c["id"], "ch_u1");
    assert_eq!(c["login"], "alice");
    assert_eq!(c["isLive"], true);
    assert_eq!(c["viewerIsFollowing"], false);
    assert_eq!(c["owner"]["displayName"], "Alice");
    assert_eq!(c["followerCount"], alice.follower_count);
    assert_eq!(c["followers"]["totalCount"], alice.follower_count);
    assert_eq!(c["followers"]["nodes"].as_array().unwrap().len(), 10);
    assert_eq!(c["followers"]["pageInfo"]["hasNextPage"], true);
    let msgs = c["recentMessages"].as_array().unwrap();
    assert_eq!(msgs.len(), 20);
    let seqs: Vec<i64> = msgs.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {seqs:?}"
    );
    // The newest message: the last seq, or the one before when the last event is a
    // deletion (the demo deletes now and then).
    let last = f.last_seq("ch_u1") as i64;
    assert!(
        *seqs.last().unwrap() == last || *seqs.last().unwrap() == last - 1,
        "{seqs:?} against {last}"
    );
    let sent = msgs[0]["sentAt"].as_str().unwrap();
    assert!(sent.ends_with('Z') && sent.len() == 24, "{sent}");
    assert!(c["stream"]["id"].as_str().unwrap().starts_with("st"));
}

#[test]
fn pages_follow_their_cursors_without_overlap() {
    let f = fixture();
    let q =
        "query($after: String) { channel(login: \"alice\") { followers(first: 7, after: $after) {
        edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }";
    let mut seen = std::collections::HashSet::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let r = f.run(None, q, json!({"after": after}));
        let conn = &r["data"]["channel"]["followers"];
        for e in conn["edges"].as_array().unwrap() {
            assert!(seen.insert(e["node"]["id"].as_str().unwrap().to_owned()));
        }
        pages += 1;
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    let total = f.alice().follower_count as usize;
    assert_eq!(seen.len(), total);
    assert_eq!(pages, total.div_ceil(7));
}

#[test]
fn lists_are_ordered_as_the_schema_says() {
    let f = fixture();
    let r = f.run(
        None,
        "{ streams(first: 100) { totalCount nodes { viewerCount channel { login } } }
           categories { nodes { name viewerCount liveStreamCount } } }",
        json!({}),
    );
    let streams = r["data"]["streams"]["nodes"].as_array().unwrap();
    assert!(streams.len() > 20);
    for w in streams.windows(2) {
        let (a, b) = (w[0]["viewerCount"].as_i64(), w[1]["viewerCount"].as_i64());
        assert!(
            a > b
                || (a == b
                    && w[0]["channel"]["login"].as_str() < w[1]["channel"]["login"].as_str())
        );
    }
    let cats = r["data"]["categories"]["nodes"].as_array().unwrap();
    assert_eq!(cats.len(), 12);
    for w in cats.windows(2) {
        assert!(w[0]["viewerCount"].as_i64() >= w[1]["viewerCount"].as_i64());
    }
    let live: i64 = cats
        .iter()
        .map(|c| c["liveStreamCount"].as_i64().unwrap())
        .sum();
    let in_categories = streams.len() as i64;
    assert_eq!(live, in_categories, "every demo stream has a category");
}

#[test]
fn every_object_is_found_by_its_id() {
    let f = fixture();
    let r = f.run(
        None,
        "{ channel(login: \"alice\") { id owner { id } category { id } stream { id }
             recentMessages(last: 1) { id } } }",
        json!({}),
    );
    let c = &r["data"]["channel"];
    for (id, ty) in [
        (&c["id"], "Channel"),
        (&c["owner"]["id"], "User"),
        (&c["category"]["id"], "Category"),
        (&c["stream"]["id"], "Stream"),
        (&c["recentMessages"][0]["id"], "ChatMessage"),
    ] {
        let n = f.run(
            None,
            "query($id: ID!) { node(id: $id) { __typename id } }",
            json!({"id": id}),
        );
        assert_eq!(n["data"]["node"]["__typename"], ty);
        assert_eq!(&n["data"]["node"]["id"], id);
    }
    let none = f.run(None, "{ node(id: \"nope\") { id } }", json!({}));
    assert_eq!(none["data"]["node"], Value::Null);
}

#[test]
fn bad_arguments_are_bad_user_input() {
    let f = fixture();
    for q in [
        "{ user(id: \"u1\", login: \"alice\") { id } }",
        "{ channel { id } }",
        "{ streams(first: 101) { totalCount } }",
        "{ streams(after: \"garbage\") { totalCount } }",
        "{ search(query: \"  \") { __typename } }",
    ] {
        assert_eq!(f.code(None, q, json!({})), "BAD_USER_INPUT", "{q}");
    }
    assert_eq!(
        f.code(
            None,
            "{ chatHistory(channelId: \"nope\") { id } }",
            json!({})
        ),
        "NOT_FOUND"
    );
}

#[test]
fn a_new_token_subject_becomes_a_user_with_a_channel() {
    let f = fixture();
    let dave = viewer("auth0|dave", "alice", false);
    let r = f.run(
        Some(&dave),
        "{ viewer { id login roles channel { id login } } }",
        json!({}),
    );
    let v = &r["data"]["viewer"];
    assert_eq!(v["id"], "auth0|dave");
    assert_eq!(v["login"], "alice2", "a taken login gets a suffix");
    assert_eq!(v["roles"], json!(["VIEWER"]));
    assert_eq!(v["channel"]["login"], "alice2");
    let anon = f.run(None, "{ viewer { id } }", json!({}));
    assert_eq!(anon["data"]["viewer"], Value::Null);
    let carol = viewer("u3", "carol", true);
    let r = f.run(Some(&carol), "{ viewer { roles } }", json!({}));
    assert_eq!(r["data"]["viewer"]["roles"], json!(["VIEWER", "ADMIN"]));
}

#[test]
fn mutation_root_fields_run_one_after_another() {
    let f = fixture();
    let alice = viewer("u1", "alice", false);
    let r = f.run(
        Some(&alice),
        "mutation { a: updateProfile(input: {displayName: \"First\"}) { displayName }
                    b: updateProfile(input: {displayName: \"Second\"}) { displayName } }",
        json!({}),
    );
    assert_eq!(r["data"]["a"]["displayName"], "First", "{r}");
    assert_eq!(r["data"]["b"]["displayName"], "Second");
}

const SEND: &str = "mutation($c: ID!, $b: String!) { sendChatMessage(channelId: $c, body: $b) { seq body author { login } } }";

#[test]
fn chat_messages_take_the_next_seq_and_are_published() {
    let f = fixture();
    let bob = viewer("u2", "bob", false);
    let before = f.last_seq("ch_u1");
    let r = f.run(Some(&bob), SEND, json!({"c": "ch_u1", "b": "  hello  "}));
    let m = &r["data"]["sendChatMessage"];
    assert_eq!(m["seq"], before + 1);
    assert_eq!(m["body"], "hello");
    assert_eq!(m["author"]["login"], "bob");
    assert_eq!(f.room_events(), vec![("ch_u1".to_owned(), before + 1)]);
    assert_eq!(
        f.code(None, SEND, json!({"c": "ch_u1", "b": "hi"})),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        f.code(Some(&bob), SEND, json!({"c": "ch_u1", "b": " "})),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        f.code(Some(&bob), SEND, json!({"c": "nope", "b": "hi"})),
        "NOT_FOUND"
    );
}

/// Each role does exactly what schema.graphql's matrix allows, end to end.
#[test]
fn the_roles_matrix_holds_through_the_mutations() {
    let f = fixture();
    let alice = viewer("u1", "alice", false); // owner of ch_u1
    let bob = viewer("u2", "bob", false); // moderator of ch_u1
    let carol = viewer("u3", "carol", true); // admin
    let eve = viewer("u50", "eve", false); // nobody in particular
    let seq_of = |who: &Viewer, body: &str| {
        f.run(Some(who), SEND, json!({"c": "ch_u1", "b": body}))["data"]["sendChatMessage"]["seq"]
            .as_i64()
            .unwrap()
    };
    let del = "mutation($s: Int!) { deleteChatMessage(channelId: \"ch_u1\", messageSeq: $s) }";
    let ok = |who: &Viewer, q: &str, vars: Value| {
        let r = f.run(Some(who), q, vars);
        assert!(r.get("errors").is_none(), "{q}: {r}");
    };
    // Delete: the author, the owner, a moderator and an admin may; others may not.
    let m = seq_of(&eve, "mine");
    assert_eq!(
        f.code(Some(&f_viewer("u60")), del, json!({"s": m})),
        "FORBIDDEN"
    );
    ok(&eve, del, json!({"s": m}));
    for who in [&alice, &bob, &carol] {
        let m = seq_of(&eve, "theirs");
        ok(who, del, json!({"s": m}));
    }
    assert_eq!(
        f.code(Some(&alice), del, json!({"s": m})),
        "NOT_FOUND",
        "already deleted"
    );
    // Ban: owner, moderator, admin; not a viewer; nobody bans the owner; a moderator
    // cannot ban another moderator.
    let ban = "mutation($u: ID!) { banUser(channelId: \"ch_u1\", userId: $u) }";
    let unban = "mutation($u: ID!) { unbanUser(channelId: \"ch_u1\", userId: $u) }";
    assert_eq!(f.code(Some(&eve), ban, json!({"u": "u60"})), "FORBIDDEN");
    assert_eq!(f.code(Some(&carol), ban, json!({"u": "u1"})), "FORBIDDEN");
    for who in [&alice, &bob, &carol] {
        ok(who, ban, json!({"u": "u50"}));
        // Banned: eve's messages are refused.
        assert_eq!(
            f.code(Some(&eve), SEND, json!({"c": "ch_u1", "b": "hey"})),
            "FORBIDDEN"
        );
        ok(who, unban, json!({"u": "u50"}));
        seq_of(&eve, "back");
    }
    ok(
        &alice,
        "mutation { addModerator(channelId: \"ch_u1\", userId: \"u4\") { id } }",
        json!({}),
    );
    assert_eq!(f.code(Some(&bob), ban, json!({"u": "u4"})), "FORBIDDEN");
    // Moderators: the owner and admins only.
    let add = "mutation($u: ID!) { addModerator(channelId: \"ch_u1\", userId: $u) { moderators { id } } }";
    assert_eq!(f.code(Some(&bob), add, json!({"u": "u5"})), "FORBIDDEN");
    ok(&carol, add, json!({"u": "u5"}));
    // The channel itself: the owner only, not even an admin.
    let title = "mutation { updateChannel(input: {title: \"new\"}) { title } }";
    ok(&alice, title, json!({}));
    let start = "mutation { startStream(input: {title: \"go\"}) { id } }";
    assert_eq!(
        f.code(Some(&alice), start, json!({})),
        "BAD_USER_INPUT",
        "already live"
    );
    ok(&carol, start, json!({}));
    ok(&carol, "mutation { endStream { isLive } }", json!({}));
    assert_eq!(f.code(None, title, json!({})), "UNAUTHENTICATED");
    assert_eq!(
        f.code(
            Some(&alice),
            "mutation { updateChannel(input: {language: \"xx\"}) { id } }",
            json!({})
        ),
        "BAD_USER_INPUT"
    );
    // Following: anyone signed in, but not one's own channel.
    ok(
        &eve,
        "mutation { follow(channelId: \"ch_u1\") { viewerIsFollowing } }",
        json!({}),
    );
    assert_eq!(
        f.code(
            Some(&alice),
            "mutation { follow(channelId: \"ch_u1\") { id } }",
            json!({})
        ),
        "BAD_USER_INPUT"
    );
}

fn f_viewer(id: &str) -> Viewer {
    viewer(id, id, false)
}

#[test]
fn stream_changes_are_published() {
    let f = fixture();
    let carol = viewer("u3", "carol", true);
    f.run(
        Some(&carol),
        "mutation { startStream(input: {title: \"hi\"}) { id } }",
        json!({}),
    );
    f.run(Some(&carol), "mutation { endStream { id } }", json!({}));
    f.run(Some(&carol), "mutation { endStream { id } }", json!({}));
    let stream_events = f
        .events
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|n| match n {
            Notice::Changed(c) => c.iter().filter(|c| matches!(c, Change::Stream(_))).count(),
            Notice::Room(_) | Notice::Cleared => 0,
        })
        .sum::<usize>();
    assert_eq!(
        stream_events, 2,
        "ending an offline channel changes nothing"
    );
}

#[test]
fn search_finds_users_channels_and_categories() {
    let f = fixture();
    let r = f.run(
        None,
        "{ search(query: \"CHESS\", first: 50) { __typename ... on Category { slug } } }",
        json!({}),
    );
    let hits = r["data"]["search"].as_array().unwrap();
    assert!(hits.iter().any(|h| h["slug"] == "chess"), "{r}");
    let r = f.run(
        None,
        "{ search(query: \"ali\") { ... on User { login } } }",
        json!({}),
    );
    assert_eq!(r["data"]["search"][0]["login"], "alice");
}

#[test]
fn an_object_handle_is_two_words() {
    // The executor keeps a handle per object of a level and moves them as its lists
    // grow; a fat variant would make every handle bigger.
    assert_eq!(std::mem::size_of::<Obj>(), 16);
}

#[test]
fn a_field_tried_from_the_cache_counts_a_miss_once_and_a_warm_one_as_a_hit() {
    let metrics = Arc::new(ShardMetrics::new(0));
    let mut f = fixture();
    f.cache = Cache::new(
        CacheLimits {
            entries: 1000,
            ttl: 60_000,
            primary_after_change: 0,
        },
        Arc::clone(&metrics),
    );
    let users = |hit| metrics.cache_count(crate::store::cache::Kind::User, hit);
    let q = r#"{ channel(id: "ch_u1") { owner { login } moderators { login } } }"#;
    // Cold: the trial misses and is taken back; the field is loaded for real. Each
    // lookup is counted once, by the real load.
    let cold = f.run(None, q, json!({}));
    assert_eq!(cold["data"]["channel"]["owner"]["login"], "alice", "{cold}");
    let misses = users(false);
    assert!(misses >= 1, "{misses}");
    assert_eq!(users(true), 0);
    // Warm: the trial holds; every lookup a hit, counted once.
    let warm = f.run(None, q, json!({}));
    assert_eq!(warm, cold);
    assert_eq!(users(false), misses);
    assert_eq!(users(true), misses);
}
