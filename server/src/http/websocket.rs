//! WebSocket routes: the upgrade answered on the request path, then the session run on
//! the connection once hyper hands the socket over (see `conn::drive`), so the shard
//! counts a session as an open connection and closes it with 1001 when it shuts down.

use std::rc::Rc;

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};

use super::response::{error_response, ErrorCode};
use super::Body;
use crate::conn::ConnState;
use crate::shard::Shard;

/// The echo endpoint's message limit: large enough for a conformance suite's biggest
/// messages (16 MiB).
pub const ECHO_MAX_MESSAGE: usize = 32 << 20;

/// Which session an upgrade starts.
#[derive(Debug)]
pub enum Kind {
    /// `/ws/echo`.
    Echo,
    /// `/ws`: the room protocol.
    Room(crate::realtime::session::Start),
    /// `/graphql`: `graphql-transport-ws`.
    GraphQl(crate::realtime::graphql_ws::Start),
}

/// An accepted upgrade waiting for its socket.
#[derive(Debug)]
pub struct Pending {
    fut: UpgradeFut,
    kind: Kind,
}

/// Whether an upgrade's `Origin` may open a session: no `Origin` (not a browser), or
/// an empty allow-list, or an origin on it.
pub fn origin_allowed(head: &Parts, allowed: &[String]) -> bool {
    match head.headers.get(hyper::header::ORIGIN) {
        None => true,
        Some(_) if allowed.is_empty() => true,
        Some(o) => allowed
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(o.as_bytes())),
    }
}

/// Whether a request asks to upgrade to WebSocket.
pub fn is_upgrade(head: &Parts) -> bool {
    head.headers
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}

/// Whether the client offered `graphql-transport-ws` in `Sec-WebSocket-Protocol`.
pub fn offers_graphql_ws(head: &Parts) -> bool {
    head.headers
        .get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == streamhub_ws::gqlws::SUBPROTOCOL)
}

/// Answers an upgrade request: 101 and a session queued on the connection, or 400.
pub fn accept(conn: &ConnState, head: &mut Parts, kind: Kind) -> Response<Body> {
    // fastwebsockets reads the handshake from a request; hand it the headers and the
    // connection's upgrade slot.
    let mut req = Request::new(());
    *req.headers_mut() = head.headers.clone();
    if let Some(on) = head.extensions.remove::<hyper::upgrade::OnUpgrade>() {
        req.extensions_mut().insert(on);
    }
    let subprotocol = matches!(&kind, Kind::GraphQl(s) if s.subprotocol);
    match streamhub_ws::upgrade::accept(&mut req) {
        Ok((resp, fut)) => {
            *conn.upgrade.borrow_mut() = Some(Pending { fut, kind });
            let (mut parts, _) = resp.into_parts();
            if subprotocol {
                parts.headers.insert(
                    hyper::header::SEC_WEBSOCKET_PROTOCOL,
                    hyper::header::HeaderValue::from_static(streamhub_ws::gqlws::SUBPROTOCOL),
                );
            }
            Response::from_parts(parts, Body::new(Bytes::new()))
        }
        Err(e) => error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            &e.to_string(),
        ),
    }
}

/// Runs an accepted session to its end.
pub async fn run(shard: &Shard, conn: &Rc<ConnState>, pending: Pending) {
    let ws = match streamhub_ws::upgrade::socket(pending.fut).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket upgrade did not complete");
            return;
        }
    };
    match pending.kind {
        // Boxed: the echo endpoint's state does not widen every session's.
        Kind::Echo => {
            Box::pin(streamhub_ws::echo::run(
                ws,
                ECHO_MAX_MESSAGE,
                shard.closing(),
            ))
            .await
        }
        Kind::Room(start) => crate::realtime::session::run(shard, conn, ws, start).await,
        Kind::GraphQl(start) => crate::realtime::graphql_ws::run(shard, conn, ws, start).await,
    }
}
