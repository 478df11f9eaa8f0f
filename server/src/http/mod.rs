//! The HTTP request path: every request goes through [`handle`], which routes it, bounds
//! it, answers it (`OPTIONS` with 204 and `Allow` on every route), then settles how the
//! answer is sent: compressed as the client accepts ([`compress`]), 304 when the client
//! already holds it ([`conditional`]), with CORS headers for pages on other origins
//! ([`cors`]); and records one metrics sample and one access log line.

mod body;
pub mod compress;
pub mod conditional;
pub mod cors;
pub mod graphql;
pub mod media;
pub mod meta;
pub mod multipart;
pub mod ops;
pub mod response;
pub mod route;
pub mod sse;
pub mod stream;
pub mod websocket;

use std::future::Future;
use std::time::Duration;

use std::rc::Rc;

use hyper::header::{
    HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};

use crate::auth::{AuthError, Viewer};
use crate::config::Config;
use crate::conn::ConnState;
use crate::limits::rate::{retry_after_secs, Budget, Client};
use crate::shard::Shard;
use response::{error_response, ErrorCode};
use route::Route;

pub use body::Body;

/// Answers one request on `shard`.
pub async fn handle(
    shard: &Shard,
    conn: &ConnState,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let _in_flight = conn.begin_request();
    let started = quanta::Instant::now();
    shard.metrics.request_started();
    // The head stays here for the access log; the GraphQL route reads the body.
    let (mut head, body) = req.into_parts();
    let config = &shard.node.config;
    let request_id = meta::request_id(&head.headers);
    let route = Route::of(head.uri.path());
    // Credentials are checked on every route: a bad token is refused, never anonymous.
    let viewer = head
        .headers
        .get(AUTHORIZATION)
        .map(|h| shard.auth.authenticate(h.as_bytes()));
    let user: Option<Rc<str>> = match &viewer {
        Some(Ok(v)) => Some(Rc::clone(&v.id)),
        _ => None,
    };
    let client_ip = meta::client_ip(conn.peer, &head.headers, &config.trusted_proxies);

    let resp = if conn.is_over_limit() {
        let mut r = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many connections from your address",
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        r
    } else if let Some(Err(e)) = &viewer {
        unauthenticated(e)
    } else if declared_body_len(&head).is_some_and(|n| n > config.max_body_bytes as u64) {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadRequest,
            "request body is larger than the limit",
        )
    } else if !route.allows(&head.method) {
        let mut r = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "method not allowed on this route",
        );
        r.headers_mut().insert(
            hyper::header::ALLOW,
            HeaderValue::from_static(route.allow()),
        );
        r
    } else if head.method == Method::OPTIONS {
        options(route, config)
    } else if route == Route::Ws || (route == Route::GraphQl && websocket::is_upgrade(&head)) {
        let client = match &user {
            Some(id) => Client::User(Rc::clone(id)),
            None => Client::Ip(client_ip),
        };
        match shard
            .node
            .limiter
            .spend(Budget::WsConnect, &client, tokio::time::Instant::now())
            .await
        {
            Err(wait) => {
                let mut r = error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::RateLimited,
                    "too many WebSocket connections; retry later",
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
                r
            }
            Ok(()) => {
                let viewer = match &viewer {
                    Some(Ok(v)) => Some(Rc::clone(v)),
                    _ => None,
                };
                let origin_ok = websocket::origin_allowed(&head, &config.ws_allowed_origins);
                let kind = if route == Route::Ws {
                    websocket::Kind::Room(crate::realtime::session::Start {
                        viewer,
                        ip: client_ip,
                        origin_ok,
                    })
                } else {
                    websocket::Kind::GraphQl(crate::realtime::graphql_ws::Start {
                        viewer,
                        ip: client_ip,
                        subprotocol: websocket::offers_graphql_ws(&head),
                        origin_ok,
                    })
                };
                websocket::accept(conn, &mut head, kind)
            }
        }
    } else if route == Route::WsEcho {
        if config.ws_echo {
            websocket::accept(conn, &mut head, websocket::Kind::Echo)
        } else {
            error_response(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
        }
    } else {
        let viewer = match &viewer {
            Some(Ok(v)) => Some(v),
            _ => None,
        };
        let client = match &user {
            Some(id) => Client::User(Rc::clone(id)),
            None => Client::Ip(client_ip),
        };
        let request = Incoming {
            head: &head,
            body,
            viewer,
            client,
            conn,
        };
        within(config.request_timeout, dispatch(shard, route, request)).await
    };
    let mut resp = represent(&head, resp, config);
    cors::decorate(
        &config.cors_origins,
        route,
        &head.method,
        &head.headers,
        &mut resp,
    );

    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    shard.metrics.request_finished(route, status, elapsed);
    tracing::info!(
        target: "streamhub::access",
        method = head.method.as_str(),
        route = route.name(),
        path = truncate(head.uri.path(), 256),
        status,
        duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        request_id = request_id.to_str().unwrap_or_default(),
        trace_id = meta::trace_id(&head.headers),
        client_ip = %client_ip,
        user = user.as_deref(),
        shard = shard.id,
        "request"
    );

    let headers = resp.headers_mut();
    headers.insert(meta::REQUEST_ID, request_id);
    if conn.is_closing() || conn.is_over_limit() {
        // hyper closes the connection after a response that says so.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// `OPTIONS`: 204 with the route's `Allow` (a CORS preflight's headers are added by
/// [`cors::decorate`]); 404 where nothing is served.
fn options(route: Route, config: &Config) -> Response<Body> {
    if route == Route::NotFound || (route == Route::WsEcho && !config.ws_echo) {
        return error_response(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route");
    }
    let mut r = Response::new(Body::new(bytes::Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r.headers_mut().insert(
        hyper::header::ALLOW,
        HeaderValue::from_static(route.allow()),
    );
    r
}

/// How a response is sent: compressed when the client takes an encoding (its `ETag` then
/// names that variant), or 304 when the client already holds that variant.
fn represent(head: &Parts, mut resp: Response<Body>, config: &Config) -> Response<Body> {
    let coding = if compress::compressible(&head.method, &resp, config) {
        compress::vary(&mut resp);
        compress::negotiate(&head.headers)
    } else {
        None
    };
    if let Some(c) = coding {
        conditional::tag_variant(resp.headers_mut(), c.token());
    }
    if conditional::client_has(&head.method, &head.headers, &resp) {
        return conditional::not_modified(resp);
    }
    match coding {
        Some(c) => compress::encode(c, resp),
        None => resp,
    }
}

/// What a route handler may read of a request.
struct Incoming<'a> {
    head: &'a hyper::http::request::Parts,
    body: hyper::body::Incoming,
    viewer: Option<&'a Rc<Viewer>>,
    client: Client,
    conn: &'a ConnState,
}

/// The handler of each route.
async fn dispatch(shard: &Shard, route: Route, req: Incoming<'_>) -> Response<Body> {
    match route {
        Route::GraphQl => {
            let client = req.client;
            // Boxed, once: GraphQL's future holds the execution's state (kilobytes: a
            // batch's holds the resolver's), which the timeout and the transport above
            // would otherwise copy again as each starts.
            Box::pin(graphql::handle(
                shard, req.conn, req.head, req.body, req.viewer, client,
            ))
            .await
        }
        Route::Healthz => ops::healthz(),
        // Answered in `handle`, which owns the request head the upgrade needs.
        Route::Ws | Route::WsEcho => {
            error_response(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
        }
        Route::Readyz => ops::readyz(shard).await,
        Route::Metrics => ops::metrics(shard),
        Route::Schema => ops::schema(),
        Route::Playground => ops::playground(),
        Route::NotFound => {
            error_response(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
        }
    }
}

/// 401 for a refused token, with the reason in the body and in `WWW-Authenticate`.
fn unauthenticated(e: &AuthError) -> Response<Body> {
    let mut r = error_response(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthenticated,
        &e.to_string(),
    );
    let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{e}\"");
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    r
}

/// Runs a request's handler under the request timeout; past it the answer is 503.
pub async fn within(
    limit: Duration,
    handler: impl Future<Output = Response<Body>>,
) -> Response<Body> {
    match tokio::time::timeout(limit, handler).await {
        Ok(resp) => resp,
        Err(_) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            "request timed out",
        ),
    }
}

/// The body length a request declares, if it declares one.
fn declared_body_len(head: &hyper::http::request::Parts) -> Option<u64> {
    head.headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn a_handler_past_the_request_timeout_gets_503() {
        let never = std::future::pending::<Response<Body>>();
        let resp = within(Duration::from_secs(30), never).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE");
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_within_the_timeout_is_answered() {
        let resp = within(Duration::from_secs(30), async { ops::healthz() }).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }
}
