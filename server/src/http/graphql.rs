//! `/graphql` over HTTP: a thin layer over the GraphQL service (`crate::graphql`). A
//! request is read (POST body or GET query string), handed to the service, and its
//! outcome written as GraphQL over HTTP says: with `application/graphql-response+json`,
//! a request that cannot execute (parse, validation, limits, variables) is a 4xx; with
//! legacy `application/json` it is a 200 with `errors`.
//!
//! A persisted GET of a query whose cache policy (from the schema's cache hints, worked
//! out once per document) is public with a max age is served `public, max-age` (capped
//! by `public_max_age`) with an `ETag`, unless it has errors; everything else is
//! `private, no-store`.
//!
//! A request whose `Accept` asks for a stream (`text/event-stream`, or
//! `multipart/mixed;subscriptionSpec="1.0"`) is answered with one ([`super::stream`]):
//! a query or mutation as one result and the end, a subscription as its events until
//! the client leaves or the node closes. Refusals then travel inside the stream, as the
//! protocols ask. `Last-Event-ID` resumes `chatEvents` like `sinceSeq` (and wins over
//! it). Opening a subscription this way spends one call of the query budget, as a
//! WebSocket upgrade spends one of its own.

use bytes::Bytes;
use graphql_exec::persisted;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE, ETAG, RETRY_AFTER, VARY,
};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::json;

use std::rc::Rc;

use super::media::{negotiate, MediaType};
use super::stream::{EventStream, Framing, StreamBody, Subscribed};
use super::{sse, Body};
use crate::auth::Viewer;
use crate::conn::ConnState;
use crate::graphql::request::{self, GraphQlRequest};
use crate::graphql::service::{self, one_error, Caller, Kind, Refusal, Started, Via};
use crate::limits::rate::{Budget, Client};
use crate::realtime::hub::{Sink, Subscription, Topic};
use crate::shard::Shard;

/// An error that stops the request before execution, in HTTP's terms.
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
            errors: one_error(code, message),
            extra: Vec::new(),
        }
    }
}

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Refused {
        let (status, json_status) = match r.kind {
            Kind::BadRequest | Kind::SubscriptionHere => {
                (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST)
            }
            Kind::GraphQl => (StatusCode::BAD_REQUEST, StatusCode::OK),
            Kind::PersistedNotFound => (StatusCode::OK, StatusCode::OK),
            Kind::MutationOverGet => (
                StatusCode::METHOD_NOT_ALLOWED,
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            Kind::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, StatusCode::TOO_MANY_REQUESTS),
            Kind::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        };
        let extra = match r.kind {
            Kind::PersistedNotFound => vec![(
                CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache, must-revalidate"),
            )],
            Kind::MutationOverGet => vec![(ALLOW, HeaderValue::from_static("POST"))],
            Kind::RateLimited(secs) => vec![(RETRY_AFTER, HeaderValue::from(secs))],
            _ => Vec::new(),
        };
        Refused {
            status,
            json_status,
            errors: r.errors,
            extra,
        }
    }
}

fn hex_of(hash: &persisted::Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Answers `/graphql`.
pub async fn handle(
    shard: &Shard,
    conn: &ConnState,
    head: &Parts,
    body: Incoming,
    viewer: Option<&Rc<Viewer>>,
    client: Client,
) -> Response<Body> {
    let accept = head.headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    let framing = Framing::of_accept(accept);
    // A request that cannot be read is refused in plain JSON, streamed or not.
    let negotiated = if framing.is_some() {
        Some(MediaType::Json)
    } else {
        negotiate(accept)
    };
    let Some(media) = negotiated else {
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
        if raw.trim_ascii_start().first() == Some(&b'[') {
            let caller = Caller {
                viewer: viewer.map(|v| &**v),
                client: &client,
                app: app_name(head),
            };
            // Boxed, like the streamed path: rare, and kept out of the common path's future.
            return Box::pin(batch(shard, media, &raw, caller)).await;
        }
        request::from_body(&raw)
    } else {
        request::from_query_string(head.uri.query().unwrap_or(""))
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
    let via = if is_get { Via::Get } else { Via::Post };
    let caller = Caller {
        viewer: viewer.map(|v| &**v),
        client: &client,
        app: app_name(head),
    };
    if let Some(framing) = framing {
        // Boxed: a subscription's future is large and waits long; a query's stays small.
        return Box::pin(streamed(
            shard, conn, framing, head, &request, via, viewer, caller,
        ))
        .await;
    }
    match service::execute(shard, &request, via, caller).await {
        Ok(done) => {
            // The operation's policy, capped by the configured public max age; an
            // answer with errors is nobody's to keep (a failure must not outlive it).
            let cap = shard.node.config.public_max_age.as_secs();
            let max_age = u64::from(done.info.max_age).min(cap);
            let cache = if is_get && persisted && max_age > 0 && !done.has_errors() {
                Caching::Public { max_age }
            } else {
                Caching::Private
            };
            executed(media, done.body, cache)
        }
        Err(r) => respond(media, Err(r.into())),
    }
}

/// The client application's name (`apollographql-client-name`), for the metrics.
fn app_name(head: &Parts) -> Option<&str> {
    head.headers
        .get("apollographql-client-name")
        .and_then(|v| v.to_str().ok())
}

/// Answers a POSTed batch (a JSON array of requests, as Apollo Client's
/// `BatchHttpLink` sends): 200 with an array of results in the same order, each
/// operation read, checked, rate-counted and executed on its own, one after another,
/// so one's error does not spoil the others and mutations run in order.
async fn batch(shard: &Shard, media: MediaType, raw: &[u8], caller: Caller<'_>) -> Response<Body> {
    let max = shard.node.config.max_batch;
    let refuse = |message: &str| {
        respond(
            media,
            Err(Refused::request(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                message,
            )),
        )
    };
    if max == 0 {
        return refuse(
            "batching is off here (STREAMHUB_MAX_BATCH=0): send one operation per request",
        );
    }
    let items: Vec<serde_json::Value> = match serde_json::from_slice(raw) {
        Ok(items) => items,
        Err(e) => return refuse(&format!("the body is not valid: {e}")),
    };
    if items.is_empty() {
        return refuse("a batch must hold at least one operation");
    }
    if items.len() > max {
        return refuse(&format!(
            "a batch of {} operations is over the limit of {max} (STREAMHUB_MAX_BATCH)",
            items.len()
        ));
    }
    let mut out = Vec::with_capacity(items.len() * 1024);
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let result = match request::from_value(item) {
            Ok(req) => service::execute(shard, &req, Via::Post, caller)
                .await
                .map_err(|r| r.errors),
            Err(e) => Err(one_error("BAD_REQUEST", &e.to_string())),
        };
        match result {
            Ok(done) => out.extend_from_slice(&done.body),
            Err(errors) => {
                out.extend_from_slice(json!({ "errors": errors }).to_string().as_bytes())
            }
        }
    }
    out.push(b']');
    executed(media, out, Caching::Private)
}

/// Answers a request with a stream: its subscription's events, or its one result (or
/// refusal) and the end.
#[allow(clippy::too_many_arguments)]
async fn streamed(
    shard: &Shard,
    conn: &ConnState,
    framing: Framing,
    head: &Parts,
    req: &GraphQlRequest<'_>,
    via: Via,
    viewer: Option<&Rc<Viewer>>,
    caller: Caller<'_>,
) -> Response<Body> {
    let stream = shard
        .streams
        .open(framing, shard.node.config.ws_queue_bytes);
    let subscribed = match subscribe(shard, &stream, head, req, via, viewer, caller).await {
        Ok(Some(subscribed)) => Some(subscribed),
        Ok(None) => {
            stream.complete();
            None
        }
        Err(errors) => {
            stream.next(json!({ "errors": errors }).to_string().as_bytes(), None);
            stream.complete();
            None
        }
    };
    shard.streams.end_if_closed(&stream);
    let body = StreamBody::new(stream, subscribed, conn.stream_guard());
    let mut r = Response::new(Body::Stream(body));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(framing.content_type()),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    // Proxies that buffer responses (nginx) pass this one through as it comes.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// Starts `req` on `stream`: a subscription registered with the hub (Some), or a query
/// or mutation whose result is queued (None); Err with the `errors` of a refusal.
#[allow(clippy::too_many_arguments)]
async fn subscribe(
    shard: &Shard,
    stream: &Rc<EventStream>,
    head: &Parts,
    req: &GraphQlRequest<'_>,
    via: Via,
    viewer: Option<&Rc<Viewer>>,
    caller: Caller<'_>,
) -> Result<Option<Subscribed>, serde_json::Value> {
    let s = match service::start(shard, req, via, caller).await {
        Err(refusal) => return Err(refusal.errors),
        Ok(Started::Executed(done)) => {
            stream.next(&done.body, None);
            return Ok(None);
        }
        Ok(Started::Subscription(s)) => s,
    };
    service::spend(shard, Budget::Query, caller.client)
        .await
        .map_err(|r| r.errors)?;
    let since = match s.topic {
        Topic::ChatEvents => sse::last_event_id(head).or(s.since),
        _ => s.since,
    };
    let conn = shard.hub.connection();
    let sub = Rc::new(Subscription {
        conn,
        id: "".into(),
        sink: Sink::Http(Rc::clone(stream)),
        viewer: s
            .doc
            .info_at(s.op)
            .per_viewer
            .then(|| viewer.cloned())
            .flatten(),
        doc: s.doc,
        op: s.op,
        vars: s.vars,
        vars_key: s.vars_key,
        topic: s.topic,
    });
    shard
        .hub
        .subscribe(sub, &s.room, since)
        .await
        .map_err(|(code, message)| one_error(code, &message))?;
    Ok(Some(Subscribed {
        hub: Rc::clone(&shard.hub),
        conn,
        room: s.room.into(),
    }))
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

/// How a response may be cached.
enum Caching {
    /// `public, max-age`, with an `ETag`.
    Public {
        /// Seconds, more than 0.
        max_age: u64,
    },
    /// `private, no-store`.
    Private,
}

/// The response of an executed operation: a public one with its `ETag` (the 304 for a
/// client that holds it is answered once its encoding is known: `http::conditional`).
fn executed(media: MediaType, body: Vec<u8>, caching: Caching) -> Response<Body> {
    let mut etag = None;
    let cache_control = match caching {
        Caching::Private => HeaderValue::from_static("private, no-store"),
        Caching::Public { max_age } => {
            let tag = format!(
                "\"{}\"",
                &hex_of(&persisted::hash(std::str::from_utf8(&body).unwrap_or("")))[..32]
            );
            etag = HeaderValue::from_str(&tag).ok();
            HeaderValue::from_str(&format!("public, max-age={max_age}"))
                .unwrap_or(HeaderValue::from_static("no-store"))
        }
    };
    let mut r = Response::new(Body::new(Bytes::from(body)));
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
