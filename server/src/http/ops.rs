//! The operations endpoints (liveness, readiness, metrics) and the schema's: the SDL
//! and a GraphiQL page.

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::response::json;
use super::Body;
use crate::node::Phase;
use crate::shard::Shard;

/// `GET /healthz`: 200 while the process serves.
pub fn healthz() -> Response<Body> {
    no_store(json(StatusCode::OK, &b"{\"status\":\"ok\"}"[..]))
}

/// `GET /readyz`: 200 while the node wants traffic and its store can serve; 503 from
/// the moment it drains (`draining`), while the store cannot serve (`store`, with
/// the store's reason) or Redis cannot be reached (`redis`, with the link's).
pub async fn readyz(shard: &Shard) -> Response<Body> {
    let resp = match shard.node.phase() {
        Phase::Serving => {
            let unready = match shard.node.domain.store.ready().await {
                Err(e) => Some(("store", e.to_string())),
                Ok(()) => shard.node.domain.rooms.unready().map(|why| ("redis", why)),
            };
            match unready {
                None => json(StatusCode::OK, &b"{\"status\":\"ready\"}"[..]),
                Some((status, reason)) => json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::to_vec(&serde_json::json!({"status": status, "reason": reason}))
                        .unwrap_or_default(),
                ),
            }
        }
        Phase::Draining | Phase::Closing => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &b"{\"status\":\"draining\"}"[..],
        ),
    };
    no_store(resp)
}

/// `GET /metrics`: every shard's metrics, summed, in the Prometheus text format.
pub fn metrics(shard: &Shard) -> Response<Body> {
    let mut r = Response::new(Body::new(shard.node.render_metrics().into()));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    no_store(r)
}

fn no_store(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /graphql/schema.graphql`: the SDL, for code generators.
pub fn schema() -> Response<Body> {
    // The schema the node runs is built from this same text at start.
    let mut r = Response::new(Body::new(crate::schema::SDL.into()));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// The GraphiQL page (its scripts come from a CDN, as GraphiQL's own example does).
const PLAYGROUND: &str = include_str!("playground.html");

/// `GET /playground`: GraphiQL against this server's `/graphql`.
pub fn playground() -> Response<Body> {
    let mut r = Response::new(Body::new(PLAYGROUND.into()));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}
