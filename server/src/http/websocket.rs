//! WebSocket routes: the upgrade answered on the request path, then the session run on
//! the connection once hyper hands the socket over (see `conn::serve`), so the shard
//! counts a session as an open connection and closes it with 1001 when it shuts down.

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
            *conn.upgrade.borrow_mut() = Some(Box::new(Pending { fut, kind }));
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

impl Pending {
    /// The upgrade to wait for, and the session it starts.
    pub fn into_parts(self) -> (UpgradeFut, Kind) {
        (self.fut, self.kind)
    }
}

/// The socket once hyper hands it over; None if the upgrade did not complete.
pub async fn upgraded(fut: UpgradeFut) -> Option<streamhub_ws::upgrade::Socket> {
    match streamhub_ws::upgrade::socket(fut).await {
        Ok(ws) => Some(ws),
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket upgrade did not complete");
            None
        }
    }
}

/// The session an upgrade starts, to run until it ends: one future whatever its kind,
/// as large as the largest.
pub fn session<'a>(
    shard: &'a Shard,
    conn: &'a std::rc::Rc<ConnState>,
    ws: streamhub_ws::upgrade::Socket,
    kind: Kind,
) -> impl std::future::Future<Output = ()> + 'a {
    use futures_util::future::Either;
    match kind {
        Kind::Echo => Either::Left(echo(shard, ws)),
        Kind::Room(start) => Either::Right(Either::Left(crate::realtime::session::run(
            shard, conn, ws, start,
        ))),
        Kind::GraphQl(start) => Either::Right(Either::Right(crate::realtime::graphql_ws::run(
            shard, conn, ws, start,
        ))),
    }
}

/// An echo session, to run to its end (boxed: the echo endpoint's state does not widen
/// every session's).
fn echo(
    shard: &Shard,
    ws: streamhub_ws::upgrade::Socket,
) -> std::pin::Pin<Box<impl std::future::Future<Output = ()> + '_>> {
    Box::pin(streamhub_ws::echo::run(
        ws,
        ECHO_MAX_MESSAGE,
        shard.closing(),
    ))
}
