//! A `graphql-transport-ws` session on `/graphql`: `connection_init` (credentials in its
//! payload, or the upgrade's header), then subscriptions (`chatEvents` with `sinceSeq`
//! replay, `streamUpdates`), and queries and mutations over the socket; the protocol's
//! close codes for every misstep.
//!
//! A `subscribe` is the session's message in flight (see `socket.rs`): it executes its
//! query or mutation, or registers its subscription with the hub, before the next
//! message is read. Its execution has `STREAMHUB_REQUEST_TIMEOUT`, as over HTTP: past
//! it the operation gets an `error` with `SERVICE_UNAVAILABLE`.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::json;
use streamhub_ws::frame;
use streamhub_ws::gqlws::{self, close, ClientMsg};
use streamhub_ws::message::code;
use streamhub_ws::queue::SendQueue;
use streamhub_ws::upgrade::Socket;

use super::hub::{ConnId, Sink, Subscription};
use super::socket::{Flight, Protocol, Step};
use crate::auth::Viewer;
use crate::conn::ConnState;
use crate::graphql::request::from_value;
use crate::graphql::service::{self, one_error, Caller, Started, Via};
use crate::limits::rate::Client;
use crate::shard::Shard;

/// What a session starts with.
#[derive(Debug)]
pub struct Start {
    /// The viewer of the upgrade's `Authorization` header.
    pub viewer: Option<Rc<Viewer>>,
    /// The client's address.
    pub ip: std::net::IpAddr,
    /// Whether the client asked for `graphql-transport-ws` (else: close 4406).
    pub subprotocol: bool,
    /// False for an Origin outside the allow-list (close 1008).
    pub origin_ok: bool,
}

/// A session, to run until it closes.
pub fn run<'a>(
    shard: &'a Shard,
    conn: &Rc<ConnState>,
    socket: Socket,
    start: Start,
) -> impl std::future::Future<Output = ()> + 'a {
    let refuse = if !start.origin_ok {
        Some((code::POLICY, "origin not allowed"))
    } else if !start.subprotocol {
        Some((
            close::SUBPROTOCOL_NOT_ACCEPTABLE,
            "Subprotocol not acceptable",
        ))
    } else {
        None
    };
    let make = |queue: &Rc<SendQueue>| Session {
        shard,
        queue: Rc::clone(queue),
        conn: shard.hub.connection(),
        viewer: start.viewer,
        ip: start.ip,
        initialized: false,
        subs: HashMap::new(),
    };
    // No `connection_init` within the header timeout: 4408.
    let init_within = Some(shard.node.config.header_timeout);
    super::socket::run(shard, conn, socket, refuse, init_within, make)
}

struct Session<'a> {
    shard: &'a Shard,
    queue: Rc<SendQueue>,
    conn: ConnId,
    viewer: Option<Rc<Viewer>>,
    ip: std::net::IpAddr,
    initialized: bool,
    /// Active subscriptions: id to room.
    subs: HashMap<String, Box<str>>,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        for (id, room) in &self.subs {
            self.shard.hub.unsubscribe(self.conn, id, room);
        }
    }
}

/// What a `subscribe` handled in flight comes to, for its id.
enum Done {
    /// A query or mutation ran: its result as `next`, then `complete`.
    Executed(String, Vec<u8>),
    /// Refused: an `error` with these errors.
    Refused(String, serde_json::Value),
    /// A subscription was registered on this room.
    Subscribed(String, Box<str>),
}

impl<'a> Protocol<'a> for Session<'a> {
    const BINARY_CLOSE: (u16, &'static str) = (close::BAD_REQUEST, "Invalid message received");
    const INTERNAL_CLOSE: (u16, &'static str) = (close::INTERNAL, "Internal server error");
    type Done = Done;

    fn initialized(&self) -> bool {
        self.initialized
    }

    /// Handles one message: `subscribe` in flight, the others at once.
    fn on_text(&mut self, text: &[u8]) -> Step<'a, Done> {
        let Some(msg) = gqlws::parse(text) else {
            return self.close(close::BAD_REQUEST, "Invalid message received");
        };
        match msg {
            ClientMsg::ConnectionInit { payload } => {
                if std::mem::replace(&mut self.initialized, true) {
                    return self.close(close::TOO_MANY_INITS, "Too many initialisation requests");
                }
                if let Some(token) = payload.as_ref().and_then(token_of) {
                    match self.shard.auth.verify(token.as_bytes()) {
                        Ok(v) => self.viewer = Some(v),
                        Err(_) => return self.close(close::FORBIDDEN, "Forbidden"),
                    }
                }
                self.queue.push(gqlws::ack());
            }
            ClientMsg::Ping { .. } => {
                self.queue.push(gqlws::pong());
            }
            ClientMsg::Pong { .. } => {}
            ClientMsg::Subscribe { id, payload } => {
                if !self.initialized {
                    return self.close(close::UNAUTHORIZED, "Unauthorized");
                }
                if self.subs.contains_key(&id) {
                    return self.close(
                        close::SUBSCRIBER_EXISTS,
                        &format!("Subscriber for {id} already exists"),
                    );
                }
                return Step::Flight(self.subscribe(id, payload));
            }
            ClientMsg::Complete { id } => {
                if let Some(room) = self.subs.remove(&id) {
                    self.shard.hub.unsubscribe(self.conn, &id, &room);
                }
            }
        }
        Step::Done(true)
    }

    /// Records a subscription, or queues the answer to a `subscribe`.
    fn on_done(&mut self, done: Done) -> bool {
        match done {
            Done::Executed(id, body) => {
                // Queries and mutations: one result, then complete.
                self.queue.push(gqlws::next(&id, &body));
                self.queue.push(gqlws::complete(&id));
            }
            Done::Refused(id, errors) => {
                self.queue.push(gqlws::error(&id, &errors));
            }
            Done::Subscribed(id, room) => {
                self.subs.insert(id, room);
            }
        }
        true
    }
}

impl<'a> Session<'a> {
    fn close(&self, c: u16, reason: &str) -> Step<'a, Done> {
        self.queue.close_with(frame::close(c, reason));
        Step::Done(false)
    }

    /// Runs operation `id`: a query or mutation executed, or a subscription registered
    /// with the hub (which sends its `sinceSeq` replay first). A flight dropped before
    /// its end leaves no subscription behind: the hub takes it out again.
    fn subscribe(&self, id: String, payload: serde_json::Value) -> Flight<'a, Done> {
        let (shard, conn, queue) = (self.shard, self.conn, Rc::clone(&self.queue));
        let viewer = self.viewer.clone();
        let client = match &viewer {
            Some(v) => Client::User(Rc::clone(&v.id)),
            None => Client::Ip(self.ip),
        };
        let room_for_more = self.subs.len() < shard.node.config.ws_max_subscriptions;
        Box::pin(async move {
            let req = match from_value(&payload) {
                Ok(r) => r,
                Err(e) => return Done::Refused(id, bad(&e.to_string())),
            };
            let caller = Caller {
                viewer: viewer.as_deref(),
                client: &client,
                app: None,
            };
            // Bounded as an HTTP request is: past the timeout the execution is dropped.
            let limit = shard.node.config.request_timeout;
            let started =
                tokio::time::timeout(limit, service::start(shard, &req, Via::Post, caller));
            let Ok(started) = started.await else {
                return Done::Refused(id, one_error("SERVICE_UNAVAILABLE", "request timed out"));
            };
            let s = match started {
                Err(refusal) => return Done::Refused(id, refusal.errors),
                Ok(Started::Executed(done)) => return Done::Executed(id, done.body),
                Ok(Started::Subscription(s)) => s,
            };
            if !room_for_more {
                return Done::Refused(id, bad("too many subscriptions on this connection"));
            }
            let sub = Rc::new(Subscription {
                conn,
                id: id.as_str().into(),
                sink: Sink::WebSocket(queue),
                viewer: s.doc.info_at(s.op).per_viewer.then_some(viewer).flatten(),
                doc: s.doc,
                op: s.op,
                vars: s.vars,
                vars_key: s.vars_key,
                topic: s.topic,
            });
            match shard.hub.subscribe(sub, &s.room, s.since).await {
                Ok(()) => Done::Subscribed(id, s.room.into()),
                Err((code, message)) => Done::Refused(
                    id,
                    json!([{"message": message, "extensions": {"code": code}}]),
                ),
            }
        })
    }
}

fn bad(message: &str) -> serde_json::Value {
    json!([{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}])
}

/// The token of a `connection_init` payload: `{"token": "..."}` or
/// `{"Authorization": "Bearer ..."}` (either case).
fn token_of(payload: &serde_json::Value) -> Option<String> {
    if let Some(t) = payload.get("token").and_then(|t| t.as_str()) {
        return Some(t.to_owned());
    }
    let auth = payload
        .get("Authorization")
        .or_else(|| payload.get("authorization"))?
        .as_str()?;
    crate::auth::bearer(auth.as_bytes()).map(|t| String::from_utf8_lossy(t).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The session future is what an idle connection holds besides the socket and the
    /// queue (perf/RESULTS.md, `ws-idle`): 248 bytes for a graphql-transport-ws session before
    /// the slot for a message in flight, which adds one pointer pair.
    #[test]
    fn an_idle_session_stays_small() {
        let size = std::mem::size_of::<super::super::socket::Session<'static, Session<'static>>>();
        assert!(size <= 264, "{size} bytes");
    }
}
