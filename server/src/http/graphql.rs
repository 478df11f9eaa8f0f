//! `/graphql`: GraphQL over HTTP. A request is read (POST body or GET query string),
//! its document found in the shard's plan cache (by manifest id, `sha256:` id, APQ hash
//! or the hash of its text), else in the node-wide registry, else prepared, registered
//! node-wide and cached, its operation picked, checked
//! against the method and the rate limits, its variables coerced, and its plan executed
//! straight into the response body.
//!
//! Status codes follow the GraphQL-over-HTTP specification: with
//! `application/graphql-response+json`, a request that cannot execute (parse,
//! validation, limits, variables) is a 4xx; with legacy `application/json` it is a 200
//! with `errors`. A persisted request is hash, look up, execute: nothing is parsed.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use async_graphql_parser::types::OperationType;
use bytes::Bytes;
use graphql_exec::limits::Limits;
use graphql_exec::persisted::{
    self, apq_hash_matches, parse_document_id, parse_hex_hash, DocumentRef, PlanCache,
    PrepareError, Prepared,
};
use graphql_exec::plan::Plan;
use graphql_exec::registry::Registered;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER, VARY,
};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::json;

use super::graphql_request::{self, negotiate, GraphQlRequest, MediaType};
use super::Body;
use crate::auth::Viewer;
use crate::domain::plan_info::{op_info, OpInfo};
use crate::domain::Obj;
use crate::limits::rate::{retry_after_secs, Budget, Client};
use crate::shard::Shard;

/// A prepared document with what the HTTP layer derives from each of its operations.
#[derive(Debug)]
pub struct Doc {
    prepared: Prepared,
    info: Vec<OpInfo>,
    /// The node-wide registry's entry of a registered document, marked on every use so
    /// the registry keeps what any shard uses; `None` for a manifest document.
    registered: Option<Arc<Registered>>,
}

impl Doc {
    fn new(prepared: Prepared, registered: Option<Arc<Registered>>) -> Doc {
        let info = prepared.plans.iter().map(|(_, p)| op_info(p)).collect();
        Doc {
            prepared,
            info,
            registered,
        }
    }

    /// The plan of the operation at `index`.
    pub fn plan_at(&self, index: usize) -> &Plan {
        &self.prepared.plans[index].1
    }

    /// What the HTTP layer derives from the operation at `index`.
    pub fn info_at(&self, index: usize) -> OpInfo {
        self.info[index]
    }

    /// The index of the operation `name` (or the only one).
    pub fn operation_index(&self, name: Option<&str>) -> Option<usize> {
        match name {
            Some(n) => self
                .prepared
                .plans
                .iter()
                .position(|(op, _)| op.as_deref() == Some(n)),
            None if self.prepared.plans.len() == 1 => Some(0),
            None => None,
        }
    }

    fn operation(&self, name: Option<&str>) -> Option<(&Plan, OpInfo)> {
        let i = match name {
            Some(n) => self
                .prepared
                .plans
                .iter()
                .position(|(op, _)| op.as_deref() == Some(n))?,
            None if self.prepared.plans.len() == 1 => 0,
            None => return None,
        };
        Some((&self.prepared.plans[i].1, self.info[i]))
    }
}

/// One shard's GraphQL state: its plan cache, filled from the node-wide registry of
/// persisted documents (`Node::persisted`) on a miss.
#[derive(Debug)]
pub struct GraphQlState {
    cache: RefCell<PlanCache<Doc>>,
    /// The registry's manifest generation the pinned documents come from.
    generation: Cell<u64>,
    limits: Limits,
}

impl GraphQlState {
    /// The shard's state, empty: documents are prepared on their first use here.
    pub fn new(shard_node: &crate::node::Node) -> GraphQlState {
        let config = &shard_node.config;
        GraphQlState {
            cache: RefCell::new(PlanCache::new(config.plan_cache)),
            generation: Cell::new(shard_node.persisted.generation()),
            limits: config.graphql_limits(),
        }
    }

    /// The cached document for `r`, or the registry's prepared and cached now; `None`
    /// when neither has it. A plan-cache hit takes no lock.
    fn find(&self, shard: &Shard, r: &DocumentRef) -> Result<Option<Rc<Doc>>, Refused> {
        let registry = &shard.node.persisted;
        let generation = registry.generation();
        if generation != self.generation.get() {
            self.cache.borrow_mut().unpin_all();
            self.generation.set(generation);
        }
        if let Some(doc) = self.cache.borrow_mut().get(r) {
            if let Some(entry) = &doc.registered {
                entry.touch(registry);
            }
            return Ok(Some(doc));
        }
        let Some(found) = registry.find(r) else {
            return Ok(None);
        };
        let mut cache = self.cache.borrow_mut();
        if let Some(doc) = cache.get(&DocumentRef::Sha256(found.hash)) {
            // A manifest document already pinned by its hash, now asked for by its id.
            if let DocumentRef::Id(id) = r {
                cache.pin(Some(id), found.hash, Rc::clone(&doc));
            }
            return Ok(Some(doc));
        }
        let prepared = persisted::prepare(&shard.node.domain.schema, &found.text, &self.limits)
            .map_err(prepare_error)?;
        let manifest = found.registered.is_none();
        let doc = Rc::new(Doc::new(prepared, found.registered));
        if manifest {
            let id = match r {
                DocumentRef::Id(id) => Some(id.as_str()),
                DocumentRef::Sha256(_) => None,
            };
            cache.pin(id, found.hash, Rc::clone(&doc));
        } else {
            cache.insert(found.hash, Rc::clone(&doc));
        }
        Ok(Some(doc))
    }
}

fn hex_of(hash: &persisted::Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// An error that stops the request before execution.
struct Refused {
    status: StatusCode,
    /// Status when the client asked for legacy `application/json`.
    json_status: StatusCode,
    errors: serde_json::Value,
    extra: Vec<(hyper::header::HeaderName, HeaderValue)>,
}

impl Refused {
    /// A request error: 4xx whatever the media type.
    fn request(status: StatusCode, code: &str, message: &str) -> Refused {
        Refused {
            status,
            json_status: status,
            errors: json!([{ "message": message, "extensions": { "code": code } }]),
            extra: Vec::new(),
        }
    }

    /// A GraphQL error before execution: 400, or 200 for `application/json`.
    fn graphql(errors: serde_json::Value) -> Refused {
        Refused {
            status: StatusCode::BAD_REQUEST,
            json_status: StatusCode::OK,
            errors,
            extra: Vec::new(),
        }
    }

    fn with(mut self, name: hyper::header::HeaderName, value: &'static str) -> Refused {
        self.extra.push((name, HeaderValue::from_static(value)));
        self
    }
}

fn one_error(code: &str, message: &str) -> serde_json::Value {
    json!([{ "message": message, "extensions": { "code": code } }])
}

/// Answers `/graphql`.
pub async fn handle(
    shard: &Shard,
    head: &Parts,
    body: Incoming,
    viewer: Option<&Viewer>,
    client: Client,
) -> Response<Body> {
    let accept = head.headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    let Some(media) = negotiate(accept) else {
        return respond(
            MediaType::Json,
            Err(Refused::request(
                StatusCode::NOT_ACCEPTABLE,
                "BAD_REQUEST",
                "Accept must allow application/graphql-response+json or application/json",
            )),
        );
    };
    let raw: Bytes;
    let request = if head.method == Method::POST {
        if let Err(r) = check_content_type(head) {
            return respond(media, Err(r));
        }
        let limit = shard.node.config.max_body_bytes;
        raw = match Limited::new(body, limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return respond(
                    media,
                    Err(Refused::request(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "BAD_REQUEST",
                        "request body is larger than the limit",
                    )),
                )
            }
            Err(_) => {
                return respond(
                    media,
                    Err(Refused::request(
                        StatusCode::BAD_REQUEST,
                        "BAD_REQUEST",
                        "the request body could not be read",
                    )),
                )
            }
        };
        graphql_request::from_body(&raw)
    } else {
        graphql_request::from_query_string(head.uri.query().unwrap_or(""))
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            return respond(
                media,
                Err(Refused::request(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    &e.to_string(),
                )),
            )
        }
    };
    let is_get = head.method == Method::GET;
    let persisted = request.query.is_none();
    let result = run(shard, &request, is_get, viewer, &client);
    match result {
        Ok((body, info)) => {
            let cache = if is_get && persisted && info.public {
                Caching::Public
            } else {
                Caching::Private
            };
            executed(media, body, cache, head, shard)
        }
        Err(r) => respond(media, Err(r)),
    }
}

fn check_content_type(head: &Parts) -> Result<(), Refused> {
    let ct = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Refused::request(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_REQUEST",
            "a POST body must be application/json",
        ))
    }
}

/// A query or mutation sent over `graphql-transport-ws`: its execution result, or the
/// errors that stopped it (as `error` payloads carry them).
pub fn run_over_ws(
    shard: &Shard,
    req: &GraphQlRequest<'_>,
    viewer: Option<&Viewer>,
    client: &Client,
) -> Result<Vec<u8>, serde_json::Value> {
    run(shard, req, false, viewer, client)
        .map(|(body, _)| body)
        .map_err(|r| r.errors)
}

/// A subscription's document and operation index, or the errors that refuse it.
pub fn subscription_document(
    shard: &Shard,
    req: &GraphQlRequest<'_>,
) -> Result<(Rc<Doc>, usize), serde_json::Value> {
    let doc = document(shard, req).map_err(|r| r.errors)?;
    let index = doc
        .operation_index(req.operation_name.as_deref())
        .ok_or_else(|| {
            one_error(
                "GRAPHQL_VALIDATION_FAILED",
                "Must provide operation name if query contains multiple operations.",
            )
        })?;
    Ok((doc, index))
}

/// Finds or prepares the document, picks the operation, checks it and executes it.
fn run(
    shard: &Shard,
    req: &GraphQlRequest<'_>,
    is_get: bool,
    viewer: Option<&Viewer>,
    client: &Client,
) -> Result<(Vec<u8>, OpInfo), Refused> {
    let doc = document(shard, req)?;
    let Some((plan, info)) = doc.operation(req.operation_name.as_deref()) else {
        let message = match &req.operation_name {
            Some(n) => format!("Unknown operation named \"{n}\"."),
            None => "Must provide operation name if query contains multiple operations.".into(),
        };
        return Err(Refused::graphql(one_error(
            "GRAPHQL_VALIDATION_FAILED",
            &message,
        )));
    };
    match plan.operation {
        OperationType::Mutation if is_get => {
            return Err(Refused::request(
                StatusCode::METHOD_NOT_ALLOWED,
                "BAD_REQUEST",
                "mutations are sent with POST",
            )
            .with(ALLOW, "POST"));
        }
        OperationType::Subscription => {
            return Err(Refused::request(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "subscriptions run over WebSocket (graphql-transport-ws on /graphql)",
            ));
        }
        OperationType::Query | OperationType::Mutation => {}
    }
    let budget = match plan.operation {
        OperationType::Mutation if info.sends_chat => Budget::Chat,
        OperationType::Mutation => Budget::Mutation,
        _ => Budget::Query,
    };
    if let Err(wait) = shard
        .node
        .limiter
        .check(budget, client, tokio::time::Instant::now())
    {
        let mut r = Refused::request(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "too many requests; retry later",
        );
        let secs = retry_after_secs(wait);
        r.extra.push((RETRY_AFTER, HeaderValue::from(secs)));
        return Err(r);
    }
    let schema = &shard.node.domain.schema;
    let vars = graphql_exec::coerce::coerce_variables(schema, &plan.variables, &req.variables)
        .map_err(|errors| {
            Refused::graphql(serde_json::Value::Array(
                errors
                    .into_iter()
                    .map(|e| json!({ "message": e.message, "extensions": { "code": "BAD_USER_INPUT" } }))
                    .collect(),
            ))
        })?;
    let domain_req = shard.node.domain.request(viewer);
    let body = graphql_exec::exec::execute(schema, plan, &domain_req, Obj::Root, &vars);
    Ok((body, info))
}

/// The request's document from the cache, or prepared now (and cached).
fn document(shard: &Shard, req: &GraphQlRequest<'_>) -> Result<Rc<Doc>, Refused> {
    let trusted_only = shard.node.config.trusted_documents;
    let state = &shard.graphql;
    let not_found = || {
        Refused {
            status: StatusCode::OK,
            json_status: StatusCode::OK,
            errors: one_error("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound"),
            extra: Vec::new(),
        }
        .with(CACHE_CONTROL, "private, no-cache, must-revalidate")
    };
    if let Some(id) = &req.document_id {
        let r = parse_document_id(id);
        return state.find(shard, &r)?.ok_or_else(|| {
            Refused::graphql(one_error(
                "PERSISTED_QUERY_NOT_FOUND",
                "no persisted document has this id",
            ))
        });
    }
    match (&req.apq_hash, &req.query) {
        (Some(h), None) => {
            let hash = parse_hex_hash(h).ok_or_else(not_found)?;
            state
                .find(shard, &DocumentRef::Sha256(hash))?
                .ok_or_else(not_found)
        }
        (Some(h), Some(text)) => {
            if !apq_hash_matches(h, text) {
                return Err(Refused::request(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    "provided sha does not match query",
                ));
            }
            text_document(shard, text, trusted_only)
        }
        (None, Some(text)) => text_document(shard, text, trusted_only),
        (None, None) => Err(Refused::request(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "send `query`, `documentId` or an APQ hash",
        )),
    }
}

/// A document sent as text: found by the hash of its text (so text clients skip the
/// parse too after the first time), or prepared and registered node-wide, so a GET by
/// its hash works on every shard at once.
fn text_document(shard: &Shard, text: &str, trusted_only: bool) -> Result<Rc<Doc>, Refused> {
    let state = &shard.graphql;
    let hash = persisted::hash(text);
    if let Some(doc) = state.find(shard, &DocumentRef::Sha256(hash))? {
        return Ok(doc);
    }
    if trusted_only {
        return Err(Refused::request(
            StatusCode::BAD_REQUEST,
            "PERSISTED_QUERY_ID_REQUIRED",
            "only persisted operations run here: send a documentId",
        ));
    }
    let prepared = persisted::prepare(&shard.node.domain.schema, text, &state.limits)
        .map_err(prepare_error)?;
    let registered = shard.node.persisted.register(text);
    let doc = Rc::new(Doc::new(prepared, registered));
    state.cache.borrow_mut().insert(hash, Rc::clone(&doc));
    Ok(doc)
}

fn prepare_error(e: PrepareError) -> Refused {
    match e {
        PrepareError::Parse(message) => {
            Refused::graphql(one_error("GRAPHQL_PARSE_FAILED", &message))
        }
        PrepareError::Invalid(errors) => Refused::graphql(serde_json::Value::Array(
            errors
                .into_iter()
                .map(|e| {
                    let locations: Vec<_> = e
                        .locations
                        .iter()
                        .map(|p| json!({"line": p.line, "column": p.column}))
                        .collect();
                    json!({
                        "message": e.message,
                        "locations": locations,
                        "extensions": { "code": "GRAPHQL_VALIDATION_FAILED" }
                    })
                })
                .collect(),
        )),
        PrepareError::Limit(e) => Refused::graphql(one_error("QUERY_TOO_COMPLEX", &e.to_string())),
    }
}

enum Caching {
    Public,
    Private,
}

fn executed(
    media: MediaType,
    body: Vec<u8>,
    caching: Caching,
    head: &Parts,
    shard: &Shard,
) -> Response<Body> {
    let mut status = StatusCode::OK;
    let mut etag = None;
    let cache_control = match caching {
        Caching::Private => HeaderValue::from_static("private, no-store"),
        Caching::Public => {
            let tag = format!(
                "\"{}\"",
                &hex_of(&persisted::hash(std::str::from_utf8(&body).unwrap_or("")))[..32]
            );
            let matches = head
                .headers
                .get(IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
            if matches {
                status = StatusCode::NOT_MODIFIED;
            }
            etag = HeaderValue::from_str(&tag).ok();
            let age = shard.node.config.public_max_age.as_secs();
            HeaderValue::from_str(&format!("public, max-age={age}"))
                .unwrap_or(HeaderValue::from_static("no-store"))
        }
    };
    let body = if status == StatusCode::NOT_MODIFIED {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut r = Response::new(Body::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(media.content_type()));
    h.insert(CACHE_CONTROL, cache_control);
    h.insert(VARY, HeaderValue::from_static("Accept, Authorization"));
    if let Some(t) = etag {
        h.insert(ETAG, t);
    }
    r
}

fn respond(media: MediaType, result: Result<Response<Body>, Refused>) -> Response<Body> {
    let refused = match result {
        Ok(r) => return r,
        Err(r) => r,
    };
    let status = match media {
        MediaType::GraphQlResponse => refused.status,
        MediaType::Json => refused.json_status,
    };
    let body = json!({ "errors": refused.errors }).to_string();
    let mut r = Response::new(Body::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(media.content_type()));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    for (k, v) in refused.extra {
        h.insert(k, v);
    }
    r
}
