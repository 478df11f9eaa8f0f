//! The corpus: many operations run against StreamHub's executor (graphql-exec with the
//! server's domain) and against async-graphql (the bench peer's schema), each over its
//! own data layer made from the same demo data; the `data` must be equal, and errors must
//! agree on their number, paths and codes. Mutations run in the same order on both.

use std::rc::Rc;
use std::sync::Arc;

use serde_json::{json, Value};
use streamhub_bench::peers::async_graphql::{
    schema as peer_schema, viewer_data, PeerSchema, PeerViewer,
};
use streamhub_pubsub::history::HistoryLimits;
use streamhub_server::auth::Viewer;
use streamhub_server::domain::events::Counted;
use streamhub_server::domain::{DataLayer, Domain, Obj};
use streamhub_server::metrics::ShardMetrics;
use streamhub_server::store::cache::{Cache, CacheLimits};
use streamhub_server::store::memory::demo::DemoSize;
use streamhub_server::store::SystemClock;

struct Both {
    ours: Domain,
    /// Our shard's cache.
    cache: Cache,
    peer: PeerSchema,
    peer_data: DataLayer,
    rt: tokio::runtime::Runtime,
    /// Operations compared so far.
    ran: std::cell::Cell<usize>,
}

fn both() -> Both {
    let schema = Arc::new(streamhub_server::schema::build().unwrap());
    let data = || {
        DataLayer::embedded(
            DemoSize::SMALL,
            HistoryLimits::default(),
            Arc::new(SystemClock),
        )
    };
    let ours = Domain::new(Arc::clone(&schema), data(), Arc::new(Counted::default()));
    let cache = Cache::new(
        CacheLimits {
            entries: 10_000,
            ttl: 30_000,
            primary_after_change: 0,
        },
        Arc::new(ShardMetrics::new(0)),
    );
    let peer_data = data();
    Both {
        ours,
        cache,
        peer: peer_schema(peer_data.clone()),
        peer_data,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        ran: std::cell::Cell::new(0),
    }
}

/// (id, login, admin)
type Who = Option<(&'static str, &'static str, bool)>;

impl Both {
    fn ours(&self, who: Who, query: &str, vars: &Value) -> Value {
        serde_json::from_slice(&self.ours_raw(who, query, vars)).unwrap()
    }

    /// Our response's bytes.
    fn ours_raw(&self, who: Who, query: &str, vars: &Value) -> Vec<u8> {
        let schema = &self.ours.schema;
        let prepared = graphql_exec::persisted::prepare(
            schema,
            query,
            &graphql_exec::limits::Limits::default(),
        )
        .unwrap_or_else(|e| panic!("{query}: {e:?}"));
        let plan = prepared.plan(None).unwrap();
        let Value::Object(map) = vars else { panic!() };
        let vars = graphql_exec::coerce::coerce_variables(schema, &plan.variables, map).unwrap();
        let viewer = who.map(|(id, login, admin)| Viewer {
            id: Rc::from(id),
            login: Rc::from(login),
            admin,
        });
        self.rt.block_on(async {
            let req = self
                .ours
                .request(&self.cache, viewer.as_ref())
                .await
                .unwrap();
            graphql_exec::exec::execute(schema, plan, &req, Obj::Root, &vars).await
        })
    }

    fn peer(&self, who: Who, query: &str, vars: &Value) -> Value {
        serde_json::from_slice(&self.peer_raw(who, query, vars)).unwrap()
    }

    /// The peer's response's bytes, as async-graphql-axum writes them.
    fn peer_raw(&self, who: Who, query: &str, vars: &Value) -> Vec<u8> {
        let mut req = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(vars.clone()));
        if let Some((id, login, admin)) = who {
            let v = PeerViewer {
                id: id.into(),
                login: login.into(),
                admin,
            };
            req = req.data(self.rt.block_on(viewer_data(&self.peer_data, &v)).unwrap());
        }
        let resp = self.rt.block_on(self.peer.execute(req));
        serde_json::to_vec(&resp).unwrap()
    }

    fn same(&self, who: Who, query: &str, vars: Value) -> Value {
        self.ran.set(self.ran.get() + 1);
        let a = self.ours(who, query, &vars);
        let b = self.peer(who, query, &vars);
        // Where a field errors, async-graphql 7.2 departs from the specification
        // (GraphQL 6.4.4, "Handling Field Errors"): it leaves the failing field out of
        // its object, whatever the field's nullability, and an object left with no
        // fields becomes null. So a nullable root field that fails alone gives
        // `"data": null` (ours: `{"user": null}`), and a failing non-null field keeps
        // its nullable parent with the field missing (ours: the parent is null). So
        // `data` is compared whole when there are no errors, and otherwise root field by
        // root field for those with no error under them; the errors themselves (count,
        // paths, codes) are compared either way. `async_graphql_departures` pins the
        // differences exactly.
        let failed_roots: Vec<&str> = a["errors"]
            .as_array()
            .map(|es| es.iter().filter_map(|e| e["path"][0].as_str()).collect())
            .unwrap_or_default();
        if failed_roots.is_empty() && b.get("errors").is_none() {
            assert_eq!(
                a["data"], b["data"],
                "data differs for {query} {vars}\nours: {a}\npeer: {b}"
            );
        } else if let (Some(ours), Some(peer)) = (a["data"].as_object(), b["data"].as_object()) {
            for (key, value) in ours {
                if !failed_roots.contains(&key.as_str()) {
                    assert_eq!(
                        Some(value),
                        peer.get(key),
                        "{key} differs for {query}\nours: {a}\npeer: {b}"
                    );
                }
            }
        }
        let summary = |v: &Value| -> Vec<(Value, Value)> {
            let mut e: Vec<(Value, Value)> = v["errors"]
                .as_array()
                .map(|es| {
                    es.iter()
                        .map(|e| (e["path"].clone(), e["extensions"]["code"].clone()))
                        .collect()
                })
                .unwrap_or_default();
            e.sort_by_key(|x| x.0.to_string());
            e
        };
        assert_eq!(
            summary(&a),
            summary(&b),
            "errors differ for {query} {vars}\nours: {a}\npeer: {b}"
        );
        a
    }
}

const CHANNEL_PAGE: &str = include_str!("../queries/channel-page.graphql");

const ALICE: Who = Some(("u1", "alice", false));
const BOB: Who = Some(("u2", "bob", false));
const CAROL: Who = Some(("u3", "carol", true));

#[test]
fn queries_give_the_same_json_on_both_engines() {
    let b = both();
    let mut ran = 0;
    let mut run = |who: Who, q: &str, vars: Value| {
        b.same(who, q, vars);
        ran += 1;
    };
    for login in ["alice", "bob", "carol", "swiftfox4", "nobody"] {
        run(None, CHANNEL_PAGE, json!({"login": login}));
        run(BOB, CHANNEL_PAGE, json!({"login": login}));
    }
    run(ALICE, "{ viewer { id login roles channel { login followerCount } following(first: 5) { totalCount nodes { login } } } }", json!({}));
    run(CAROL, "{ viewer { roles } }", json!({}));
    run(None, "{ viewer { id } }", json!({}));
    // Deep nesting.
    run(None, "{ channel(login: \"alice\") { owner { channel { followers(first: 3) { nodes { login following(first: 2) { nodes { login owner { displayName channel { title } } } } } } } } } }", json!({}));
    // Aliases.
    run(None, "{ a: channel(login: \"alice\") { t: title l: login } b: channel(login: \"bob\") { t: title } c: category(slug: \"chess\") { n: name s: slug } d: user(login: \"carol\") { x: displayName } }", json!({}));
    // Fragments, inline fragments on the interface and the union, nested fragments.
    run(None, "query { channel(login: \"alice\") { ...C owner { ...U } } } fragment C on Channel { id title ...L } fragment L on Channel { language tags } fragment U on User { login ... on User { displayName } }", json!({}));
    for id in ["ch_u1", "u2", "cat_chess", "st1", "msg_ch_u1_3", "nope"] {
        run(None, "query($id: ID!) { node(id: $id) { __typename id ... on User { login } ... on Channel { title } ... on Category { slug } ... on Stream { title viewerCount } ... on ChatMessage { seq body } } }", json!({"id": id}));
    }
    run(None, "{ search(query: \"a\", first: 15) { __typename ... on User { login } ... on Channel { title login } ... on Category { name } } }", json!({}));
    run(
        None,
        "{ search(query: \"CHESS\") { __typename ... on Category { slug } } }",
        json!({}),
    );
    // __typename everywhere.
    run(None, "{ __typename channel(login: \"bob\") { __typename owner { __typename } followers(first: 2) { __typename edges { __typename cursor node { __typename } } pageInfo { __typename } } } }", json!({}));
    // @skip / @include with variables.
    let skip = "query($a: Boolean!, $b: Boolean!) { channel(login: \"alice\") { title @include(if: $a) login @skip(if: $b) owner @include(if: $b) { login } } }";
    for (a, bb) in [(true, true), (true, false), (false, true), (false, false)] {
        run(None, skip, json!({"a": a, "b": bb}));
    }
    // Pagination with cursors.
    let page = "query($after: String) { channel(login: \"alice\") { followers(first: 7, after: $after) { totalCount edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }";
    let mut after = Value::Null;
    loop {
        let r = b.same(None, page, json!({"after": after}));
        ran += 1;
        let info = &r["data"]["channel"]["followers"]["pageInfo"];
        if info["hasNextPage"] == false {
            break;
        }
        after = info["endCursor"].clone();
    }
    let mut run = |who: Who, q: &str, vars: Value| {
        b.same(who, q, vars);
        ran += 1;
    };
    // Lists.
    run(None, "{ streams(first: 15) { totalCount nodes { id title viewerCount startedAt channel { login } category { name } } pageInfo { hasNextPage endCursor } } }", json!({}));
    run(
        None,
        "{ streams(first: 5, language: \"en\") { nodes { language channel { login } } } }",
        json!({}),
    );
    run(
        None,
        "{ streams(categoryId: \"cat_chess\") { totalCount nodes { category { slug } } } }",
        json!({}),
    );
    run(
        None,
        "{ streams(categoryId: \"cat_none\") { totalCount } }",
        json!({}),
    );
    run(None, "{ categories { totalCount nodes { name slug viewerCount liveStreamCount streams(first: 2) { nodes { channel { login } } } } } }", json!({}));
    run(
        None,
        "{ chatHistory(channelId: \"ch_u1\", last: 5) { seq body author { login } } }",
        json!({}),
    );
    run(
        None,
        "{ chatHistory(channelId: \"ch_u1\", last: 3, beforeSeq: 20) { seq sentAt } }",
        json!({}),
    );
    run(None, "{ channel(login: \"alice\") { moderators { login } stream { category { streams(first: 1) { totalCount } } } } }", json!({}));
    // Errors: bad input, not found, null propagation (a non-null field erroring nulls its parent).
    run(
        None,
        "{ user(id: \"u1\", login: \"alice\") { id } }",
        json!({}),
    );
    run(None, "{ channel { id } }", json!({}));
    run(None, "{ streams(first: 101) { totalCount } }", json!({}));
    run(
        None,
        "{ streams(after: \"garbage\") { totalCount } }",
        json!({}),
    );
    run(
        None,
        "{ chatHistory(channelId: \"nope\") { seq } }",
        json!({}),
    );
    run(None, "{ a: channel(login: \"alice\") { title followers(first: 500) { totalCount } } b: category(slug: \"art\") { name } }", json!({}));
    run(None, "{ search(query: \" \") { __typename } }", json!({}));
    assert!(ran >= 40, "only {ran} operations ran");
    assert!(b.ran.get() >= 55, "only {} operations ran", b.ran.get());
}

#[test]
fn mutations_in_the_same_order_give_the_same_results() {
    let b = both();
    let send = "mutation($c: ID!, $b: String!) { sendChatMessage(channelId: $c, body: $b) { id seq body author { login displayName } channel { login } } }";
    b.same(BOB, send, json!({"c": "ch_u1", "b": "  hello from bob  "}));
    b.same(ALICE, send, json!({"c": "ch_u2", "b": "hi bob"}));
    b.same(None, send, json!({"c": "ch_u1", "b": "anonymous"}));
    b.same(BOB, send, json!({"c": "ch_u1", "b": "   "}));
    b.same(BOB, send, json!({"c": "nope", "b": "x"}));
    b.same(
        BOB,
        "mutation { follow(channelId: \"ch_u3\") { login followerCount viewerIsFollowing } }",
        json!({}),
    );
    b.same(
        BOB,
        "mutation { unfollow(channelId: \"ch_u3\") { login followerCount viewerIsFollowing } }",
        json!({}),
    );
    b.same(
        ALICE,
        "mutation { follow(channelId: \"ch_u1\") { id } }",
        json!({}),
    );
    b.same(CAROL, "mutation { updateProfile(input: {displayName: \"Carol C\", bio: \"admin here\"}) { displayName bio roles } }", json!({}));
    b.same(
        CAROL,
        "mutation { updateProfile(input: {displayName: \"\"}) { displayName } }",
        json!({}),
    );
    b.same(
        CAROL,
        "mutation { a: updateProfile(input: {bio: \"first\"}) { bio } b: updateProfile(input: {bio: \"\"}) { bio } }",
        json!({}),
    );
    // Deleting: the author may, others may not, a deleted message is gone.
    let eve: Who = Some(("u50", "eve", false));
    let seq = |who: Who, body: &str| {
        b.same(who, send, json!({"c": "ch_u1", "b": body}))["data"]["sendChatMessage"]["seq"]
            .as_i64()
            .unwrap()
    };
    let del = "mutation($c: ID!, $s: Int!) { deleteChatMessage(channelId: $c, messageSeq: $s) }";
    let code = |who: Who, q: &str, vars: Value| {
        b.same(who, q, vars)["errors"][0]["extensions"]["code"].clone()
    };
    let mine = seq(eve, "mine");
    let u60: Who = Some(("u60", "u60", false));
    assert_eq!(
        code(u60, del, json!({"c": "ch_u1", "s": mine})),
        "FORBIDDEN"
    );
    assert_eq!(
        code(None, del, json!({"c": "ch_u1", "s": mine})),
        "UNAUTHENTICATED"
    );
    b.same(eve, del, json!({"c": "ch_u1", "s": mine}));
    assert_eq!(
        code(ALICE, del, json!({"c": "ch_u1", "s": mine})),
        "NOT_FOUND"
    );
    assert_eq!(
        code(ALICE, del, json!({"c": "ch_u1", "s": 100_000})),
        "NOT_FOUND"
    );
    let theirs = seq(eve, "theirs");
    b.same(BOB, del, json!({"c": "ch_u1", "s": theirs}));
    let gone = b.same(
        None,
        "query($id: ID!) { node(id: $id) { id } }",
        json!({"id": format!("msg_ch_u1_{theirs}")}),
    );
    assert_eq!(gone["data"]["node"], Value::Null);
    // Bans: staff may, a viewer may not, nobody bans the owner; a banned user's
    // messages are refused with FORBIDDEN until unbanned.
    let ban = "mutation($u: ID!, $d: Int, $r: String) { banUser(channelId: \"ch_u1\", userId: $u, durationSeconds: $d, reason: $r) }";
    let unban = "mutation($u: ID!) { unbanUser(channelId: \"ch_u1\", userId: $u) }";
    assert_eq!(code(eve, ban, json!({"u": "u60"})), "FORBIDDEN");
    assert_eq!(code(CAROL, ban, json!({"u": "u1"})), "FORBIDDEN");
    assert_eq!(code(BOB, ban, json!({"u": "nobody"})), "NOT_FOUND");
    assert_eq!(
        code(BOB, ban, json!({"u": "u50", "d": 0})),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code(BOB, ban, json!({"u": "u50", "r": "x".repeat(301)})),
        "BAD_USER_INPUT"
    );
    b.same(BOB, ban, json!({"u": "u50", "r": "spam"}));
    assert_eq!(
        code(eve, send, json!({"c": "ch_u1", "b": "let me in"})),
        "FORBIDDEN"
    );
    b.same(eve, send, json!({"c": "ch_u2", "b": "elsewhere is fine"}));
    b.same(ALICE, unban, json!({"u": "u50"}));
    b.same(ALICE, unban, json!({"u": "u50"}));
    b.same(CAROL, ban, json!({"u": "u50", "d": 3600}));
    assert_eq!(
        code(eve, send, json!({"c": "ch_u1", "b": "still banned"})),
        "FORBIDDEN"
    );
    assert_eq!(code(eve, unban, json!({"u": "u50"})), "FORBIDDEN");
    b.same(CAROL, unban, json!({"u": "u50"}));
    seq(eve, "back again");
    // Moderators: the owner and admins; a moderator cannot ban another one.
    let add = "mutation($u: ID!) { addModerator(channelId: \"ch_u1\", userId: $u) { moderators { login } } }";
    b.same(BOB, add, json!({"u": "u5"}));
    b.same(ALICE, add, json!({"u": "u4"}));
    b.same(ALICE, add, json!({"u": "u4"}));
    assert_eq!(code(BOB, ban, json!({"u": "u4"})), "FORBIDDEN");
    b.same(
        CAROL,
        "mutation { removeModerator(channelId: \"ch_u1\", userId: \"u4\") { moderators { id } } }",
        json!({}),
    );
    // The channel: the owner's own; bad input is refused.
    b.same(ALICE, "mutation { updateChannel(input: {title: \"new title\", tags: [\"Rust\", \"gamedev2\"], language: \"de\"}) { title tags language category { slug } } }", json!({}));
    b.same(
        ALICE,
        "mutation { updateChannel(input: {categoryId: null}) { category { slug } } }",
        json!({}),
    );
    b.same(
        ALICE,
        "mutation { updateChannel(input: {categoryId: \"cat_chess\"}) { category { slug } } }",
        json!({}),
    );
    b.same(
        ALICE,
        "mutation { updateChannel(input: {categoryId: \"cat_none\"}) { id } }",
        json!({}),
    );
    b.same(
        ALICE,
        "mutation { updateChannel(input: {language: \"xx\"}) { id } }",
        json!({}),
    );
    b.same(
        ALICE,
        "mutation { updateChannel(input: {tags: [\"two words\"]}) { id } }",
        json!({}),
    );
    b.same(
        None,
        "mutation { updateChannel(input: {title: \"x\"}) { id } }",
        json!({}),
    );
    // Streams: one at a time (start times differ between the stores: left out).
    b.same(
        ALICE,
        "mutation { startStream(input: {title: \"go\"}) { id } }",
        json!({}),
    );
    b.same(CAROL, "mutation { startStream(input: {title: \"carol live\", categoryId: \"cat_chess\"}) { id title viewerCount category { slug } channel { login isLive } } }", json!({}));
    b.same(
        CAROL,
        "mutation { endStream { login isLive stream { id } } }",
        json!({}),
    );
    b.same(CAROL, "mutation { endStream { isLive } }", json!({}));
    b.same(None, "{ node(id: \"st200\") { __typename } }", json!({}));
    // What the mutations changed reads the same afterwards (send times are the only
    // thing that differs between the two stores, so they are left out).
    let page_without_times = CHANNEL_PAGE.replace(" sentAt", "");
    for login in ["alice", "bob", "carol"] {
        b.same(BOB, &page_without_times, json!({"login": login}));
        b.same(eve, &page_without_times, json!({"login": login}));
    }
    b.same(
        None,
        "{ chatHistory(channelId: \"ch_u1\", last: 8) { id seq body author { login } } }",
        json!({}),
    );
    b.same(
        None,
        "{ chatHistory(channelId: \"ch_u1\", last: 3) { seq body author { login } } }",
        json!({}),
    );
    b.same(
        None,
        "{ user(login: \"carol\") { displayName bio } }",
        json!({}),
    );
    assert!(b.ran.get() >= 60, "only {} operations ran", b.ran.get());
}

/// The only differences the corpus meets, pinned so that they stay visible:
/// - async-graphql leaves a failing field out of its object instead of nulling it (or,
///   when non-null, nulling its parent), and an object with no fields left is null.
///   The errors themselves are equal, messages and locations included.
/// - async-graphql writes an object's keys in the order its fields complete (they are
///   resolved concurrently, and DataLoader fields finish last), not in selection order
///   (GraphQL 7.2.2); ours follow the selection, and put `errors` before `data`. So
///   the bytes of the two responses differ for many operations (45 of 119 in this
///   corpus, when measured) although the values are equal; with keys put back in
///   selection order, the error-free ones are byte for byte the same.
#[test]
fn async_graphql_departures() {
    let b = both();
    let page = include_str!("../queries/channel-page.graphql");
    let vars = json!({"login": "alice"});
    let ours = b.ours_raw(None, page, &vars);
    assert!(
        ours.starts_with(br#"{"data":{"channel":{"id":"ch_u1","login":"alice","title":"#),
        "ours keeps the selection's order"
    );
    let peer = b.peer_raw(None, page, &vars);
    assert_eq!(
        serde_json::from_slice::<Value>(&ours).unwrap(),
        serde_json::from_slice::<Value>(&peer).unwrap()
    );
    let pair = |q: &str| (b.ours(None, q, &json!({})), b.peer(None, q, &json!({})));
    let (ours, peer) = pair("{ user(id: \"u1\", login: \"alice\") { id } }");
    assert_eq!(ours["data"], json!({"user": null}));
    assert_eq!(peer["data"], Value::Null);
    assert_eq!(ours["errors"], peer["errors"]);
    let (ours, peer) =
        pair("{ a: channel(login: \"alice\") { title followers(first: 500) { totalCount } } b: category(slug: \"art\") { name } }");
    assert_eq!(ours["data"], json!({"a": null, "b": {"name": "Art"}}));
    assert_eq!(
        peer["data"],
        json!({"a": {"title": ours_title(&b)}, "b": {"name": "Art"}})
    );
    assert_eq!(ours["errors"], peer["errors"]);
}

fn ours_title(b: &Both) -> Value {
    b.ours(None, "{ channel(login: \"alice\") { title } }", &json!({}))["data"]["channel"]["title"]
        .clone()
}
