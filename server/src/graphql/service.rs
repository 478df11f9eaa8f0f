//! The GraphQL service every transport calls: find or prepare the document, pick the
//! operation, check it against how it came and against the rate limits, coerce its
//! variables, then execute it into JSON, or describe the subscription for the hub.
//! What stops a request is a [`Refusal`]: its errors and a [`Kind`] each transport
//! maps to its own form (an HTTP status and headers, a `graphql-transport-ws` `error`).

use std::rc::Rc;

use async_graphql_parser::types::OperationType;
use async_graphql_value::ConstValue;
use graphql_exec::coerce::Variables;
use graphql_exec::plan::Arg;
use serde_json::{json, Value};

use super::documents::{self, document, Doc};
use super::metrics::{Labels, Outcome};
use super::request::GraphQlRequest;
use crate::auth::Viewer;
use crate::domain::plan_info::OpInfo;
use crate::domain::Obj;
use crate::limits::rate::{retry_after_secs, Budget, Client};
use crate::realtime::hub::Topic;
use crate::shard::Shard;

/// What kind of refusal, for the transport to answer in its own form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request is malformed (HTTP: 400 whatever the media type).
    BadRequest,
    /// A GraphQL error before execution: parse, validation, limits, variables (HTTP:
    /// 400, or 200 for legacy `application/json`).
    GraphQl,
    /// An APQ hash no one registered (HTTP: 200, revalidate).
    PersistedNotFound,
    /// A mutation sent with GET (HTTP: 405, `Allow: POST`).
    MutationOverGet,
    /// A subscription sent where only queries and mutations run.
    SubscriptionHere,
    /// Over a rate limit; retry after this many seconds (HTTP: 429, `Retry-After`).
    RateLimited(u64),
    /// The store cannot serve now (HTTP: 503).
    Unavailable,
}

/// Why a request was not executed.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The kind, for the transport.
    pub kind: Kind,
    /// The GraphQL `errors` array.
    pub errors: Value,
}

impl Refusal {
    /// A refusal of `kind` with these errors.
    pub fn new(kind: Kind, errors: Value) -> Refusal {
        Refusal { kind, errors }
    }

    /// A malformed request, with its code and message.
    pub fn bad_request(code: &str, message: &str) -> Refusal {
        Refusal::new(Kind::BadRequest, one_error(code, message))
    }

    /// A GraphQL error before execution.
    pub fn graphql(errors: Value) -> Refusal {
        Refusal::new(Kind::GraphQl, errors)
    }
}

/// An `errors` array of one error with its code.
pub fn one_error(code: &str, message: &str) -> Value {
    json!([{ "message": message, "extensions": { "code": code } }])
}

/// How a request came, as far as the service cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// HTTP GET: queries (and, by `start`, subscriptions), no mutations.
    Get,
    /// HTTP POST or a WebSocket `subscribe`: queries and mutations (and, by `start`,
    /// subscriptions).
    Post,
}

/// An executed query or mutation: its JSON response and what the transport may derive
/// from the operation (caching).
#[derive(Debug)]
pub struct Executed {
    /// The response body: `{"data": ...}` with `errors` when some fields failed.
    pub body: Vec<u8>,
    /// What is known of the operation.
    pub info: OpInfo,
}

impl Executed {
    /// Whether some field failed (the engine writes `errors` first).
    pub fn has_errors(&self) -> bool {
        self.body.starts_with(b"{\"errors\"")
    }
}

/// The document of `req` and the index of the operation to run.
pub fn operation(shard: &Shard, req: &GraphQlRequest<'_>) -> Result<(Rc<Doc>, usize), Refusal> {
    let doc = document(shard, req)?;
    let Some(index) = doc.operation_index(req.operation_name.as_deref()) else {
        let message = match &req.operation_name {
            Some(n) => format!("Unknown operation named \"{n}\"."),
            None => "Must provide operation name if query contains multiple operations.".into(),
        };
        return Err(Refusal::graphql(one_error(
            "GRAPHQL_VALIDATION_FAILED",
            &message,
        )));
    };
    Ok((doc, index))
}

/// Who calls: the viewer, the rate-limit client, and the client application's name
/// (`apollographql-client-name`) for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The authenticated viewer, if any.
    pub viewer: Option<&'a Viewer>,
    /// Whose rate budgets are spent.
    pub client: &'a Client,
    /// The client application, for the per-operation metrics.
    pub app: Option<&'a str>,
}

/// Runs a query or mutation: checks, rate, variables, execution (awaited: a transport
/// bounds it with its request timeout by dropping the future); counted in the
/// per-operation metrics.
pub async fn execute(
    shard: &Shard,
    req: &GraphQlRequest<'_>,
    via: Via,
    caller: Caller<'_>,
) -> Result<Executed, Refusal> {
    let started = quanta::Instant::now();
    let mut found = operation(shard, req);
    if let Some(redis) = &shard.node.domain.redis {
        found = shared(shard, req, redis, found).await;
    }
    finish(shard, req, found, via, caller, started).await
}

/// With other nodes: an APQ registration is shared through Redis before it is answered
/// (so a GET by its hash on another node right after finds it), and a hash this node
/// does not know is looked up among those shared (not in trusted-documents mode,
/// where nothing registers). Redis unreachable: the hash is not found, and the APQ
/// client sends its text again.
async fn shared(
    shard: &Shard,
    req: &GraphQlRequest<'_>,
    redis: &streamhub_pubsub::redis::RedisRooms,
    found: Result<(Rc<Doc>, usize), Refusal>,
) -> Result<(Rc<Doc>, usize), Refusal> {
    let Some(hash) = req.apq_hash.as_deref() else {
        return found;
    };
    let hash = hash.to_ascii_lowercase();
    match (&req.query, &found) {
        (Some(text), Ok(_)) => {
            if let Err(e) = redis.share_document(&hash, text).await {
                tracing::warn!(error = %e, "apq: a registration was not shared with other nodes");
            }
            found
        }
        (None, Err(r))
            if r.kind == Kind::PersistedNotFound && !shard.node.config.trusted_documents =>
        {
            match redis.shared_document(&hash).await {
                Ok(Some(text)) if graphql_exec::persisted::apq_hash_matches(&hash, &text) => {
                    documents::adopt(shard, &text)?;
                    operation(shard, req)
                }
                Ok(_) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "apq: shared registrations cannot be read");
                    found
                }
            }
        }
        _ => found,
    }
}

/// Runs the operation found (or passes on the refusal) and counts it.
async fn finish(
    shard: &Shard,
    req: &GraphQlRequest<'_>,
    found: Result<(Rc<Doc>, usize), Refusal>,
    via: Via,
    caller: Caller<'_>,
    started: quanta::Instant,
) -> Result<Executed, Refusal> {
    let (result, found) = match found {
        Ok((doc, index)) => (
            run(shard, &doc, index, req, via, caller.viewer, caller.client).await,
            Some((doc, index)),
        ),
        Err(r) => (Err(r), None),
    };
    record(shard, req, found.as_ref(), caller.app, &result, started);
    result
}

/// Counts an operation's outcome and duration under its labels.
fn record(
    shard: &Shard,
    req: &GraphQlRequest<'_>,
    found: Option<&(Rc<Doc>, usize)>,
    app: Option<&str>,
    result: &Result<Executed, Refusal>,
    started: quanta::Instant,
) {
    let outcome = match result {
        Ok(done) if done.has_errors() => Outcome::Error,
        Ok(_) => Outcome::Ok,
        Err(_) => Outcome::Refused,
    };
    let mut document = String::new();
    let labels = found.map(|(doc, index)| Labels {
        document: document_label(req, &mut document),
        operation: doc.name_at(*index).unwrap_or("anonymous"),
        client: app.map_or("unknown", app_name),
    });
    shard.known_operations.record(
        &shard.node.operations,
        &shard.metrics.operations,
        labels,
        outcome,
        started.elapsed(),
    );
}

/// Client names longer than this are cut in the metrics' labels.
const MAX_APP_NAME: usize = 64;

/// A client application's name as the metrics label it: at most [`MAX_APP_NAME`] bytes.
fn app_name(name: &str) -> &str {
    let mut end = name.len().min(MAX_APP_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// How the request named its document: the manifest id, `sha256:` and the hash's first
/// 12 hex digits, or `adhoc` for text.
fn document_label<'a>(req: &'a GraphQlRequest<'_>, buf: &'a mut String) -> &'a str {
    let hash = match (&req.document_id, &req.apq_hash) {
        (Some(id), _) => match id.strip_prefix("sha256:") {
            Some(hex) => hex,
            None => return id,
        },
        (None, Some(hex)) => hex,
        (None, None) => return "adhoc",
    };
    buf.push_str("sha256:");
    buf.push_str(hash.get(..12).unwrap_or(hash));
    buf
}

async fn run(
    shard: &Shard,
    doc: &Doc,
    index: usize,
    req: &GraphQlRequest<'_>,
    via: Via,
    viewer: Option<&Viewer>,
    client: &Client,
) -> Result<Executed, Refusal> {
    let (plan, info) = (doc.plan_at(index), doc.info_at(index));
    let budget = match plan.operation {
        OperationType::Mutation if via == Via::Get => {
            return Err(Refusal::new(
                Kind::MutationOverGet,
                one_error("BAD_REQUEST", "mutations are sent with POST"),
            ));
        }
        OperationType::Subscription => {
            return Err(Refusal::new(
                Kind::SubscriptionHere,
                one_error(
                    "BAD_REQUEST",
                    "subscriptions run over WebSocket (graphql-transport-ws on /graphql) \
                     or a streamed response (Accept: text/event-stream, or \
                     multipart/mixed;subscriptionSpec=\"1.0\")",
                ),
            ));
        }
        OperationType::Mutation if info.sends_chat => Budget::Chat,
        OperationType::Mutation => Budget::Mutation,
        OperationType::Query => Budget::Query,
    };
    spend(shard, budget, client).await?;
    let schema = &shard.node.domain.schema;
    let vars = coerce(shard, doc, index, req)?;
    let domain_req = shard.request(viewer).await.map_err(|e| {
        Refusal::new(
            Kind::Unavailable,
            one_error("SERVICE_UNAVAILABLE", &e.to_string()),
        )
    })?;
    let body = graphql_exec::exec::execute(schema, plan, &domain_req, Obj::Root, &vars).await;
    Ok(Executed { body, info })
}

/// Spends one call of `budget` for `client`, or refuses with the wait.
pub async fn spend(shard: &Shard, budget: Budget, client: &Client) -> Result<(), Refusal> {
    shard
        .node
        .limiter
        .spend(budget, client, tokio::time::Instant::now())
        .await
        .map_err(|wait| {
            Refusal::new(
                Kind::RateLimited(retry_after_secs(wait)),
                one_error("RATE_LIMITED", "too many requests; retry later"),
            )
        })
}

fn coerce(
    shard: &Shard,
    doc: &Doc,
    index: usize,
    req: &GraphQlRequest<'_>,
) -> Result<Variables, Refusal> {
    let schema = &shard.node.domain.schema;
    graphql_exec::coerce::coerce_variables(schema, &doc.plan_at(index).variables, &req.variables)
        .map_err(|errors| {
            Refusal::graphql(Value::Array(
                errors
                    .into_iter()
                    .map(|e| json!({ "message": e.message, "extensions": { "code": "BAD_USER_INPUT" } }))
                    .collect(),
            ))
        })
}

/// A subscription, checked and ready for the shard's hub.
#[derive(Debug)]
pub struct Subscribe {
    /// The prepared document.
    pub doc: Rc<Doc>,
    /// The operation's index in it.
    pub op: usize,
    /// The coerced variables.
    pub vars: Variables,
    /// The variables as sent, to render once per distinct value.
    pub vars_key: String,
    /// What it listens to.
    pub topic: Topic,
    /// The room (channel id) it listens on.
    pub room: String,
    /// `sinceSeq`: replay the room's events after this one first.
    pub since: Option<u64>,
}

/// What a `subscribe` (or any transport's request) comes to: a query or mutation, run
/// at once, or a subscription for the hub.
#[derive(Debug)]
pub enum Started {
    /// A query or mutation, executed.
    Executed(Executed),
    /// A subscription to register.
    Subscription(Subscribe),
}

/// Runs a query or mutation at once, or checks a subscription and says what it
/// listens to. Starting a subscription spends no rate budget here: a transport charges
/// what opens it (a WebSocket upgrade, an HTTP request).
pub async fn start(
    shard: &Shard,
    req: &GraphQlRequest<'_>,
    via: Via,
    caller: Caller<'_>,
) -> Result<Started, Refusal> {
    let started = quanta::Instant::now();
    let found = operation(shard, req);
    let subscription = found
        .as_ref()
        .is_ok_and(|(doc, op)| doc.plan_at(*op).operation == OperationType::Subscription);
    if !subscription {
        return finish(shard, req, found, via, caller, started)
            .await
            .map(Started::Executed);
    }
    let (doc, op) = found?;
    let plan = doc.plan_at(op);
    let vars = coerce(shard, &doc, op, req)?;
    let bad = |message: &str| Refusal::graphql(one_error("BAD_USER_INPUT", message));
    // Validation allows one root field in a subscription.
    let Some(root) = plan.selection.fields.first() else {
        return Err(bad("a subscription selects one field"));
    };
    let Some(topic) = Topic::of_field(&root.name) else {
        return Err(bad(&format!(
            "{} is not a subscription of this server",
            root.name
        )));
    };
    let arg = |name: &str| -> Option<ConstValue> {
        match &root.args.iter().find(|(n, _)| n.as_str() == name)?.1 {
            Arg::Const(c) => Some(c.clone()),
            Arg::Dynamic(async_graphql_value::Value::Variable(v)) => vars.get(v).cloned(),
            Arg::Dynamic(_) => None,
        }
    };
    let Some(ConstValue::String(room)) = arg("channelId") else {
        return Err(bad("`channelId` is required"));
    };
    let since = match arg("sinceSeq") {
        Some(ConstValue::Number(n)) => n.as_u64(),
        _ => None,
    };
    Ok(Started::Subscription(Subscribe {
        doc,
        op,
        vars_key: req.variables_key(),
        vars,
        topic,
        room,
        since,
    }))
}
