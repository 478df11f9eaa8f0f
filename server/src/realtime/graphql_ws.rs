//! A `graphql-transport-ws` session on `/graphql`: `connection_init` (credentials in its
//! payload, or the upgrade's header), then subscriptions (`chatEvents` with `sinceSeq`
//! replay, `streamUpdates`), and queries and mutations over the socket; the protocol's
//! close codes for every misstep.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::json;
use streamhub_ws::frame;
use streamhub_ws::gqlws::{self, close, ClientMsg};
use streamhub_ws::message::code;
use streamhub_ws::queue::SendQueue;
use streamhub_ws::upgrade::Socket;

use super::hub::{ConnId, Sink, Subscription};
use super::socket::Protocol;
use crate::auth::Viewer;
use crate::conn::ConnState;
use crate::graphql::request::from_value;
use crate::graphql::service::{self, Caller, Started, Via};
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

impl Protocol for Session<'_> {
    const BINARY_CLOSE: (u16, &'static str) = (close::BAD_REQUEST, "Invalid message received");
    const INTERNAL_CLOSE: (u16, &'static str) = (close::INTERNAL, "Internal server error");

    fn initialized(&self) -> bool {
        self.initialized
    }

    /// Handles one message; false to end the session (a close is queued).
    fn on_text(&mut self, text: &[u8]) -> bool {
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
                self.subscribe(id, &payload);
            }
            ClientMsg::Complete { id } => {
                if let Some(room) = self.subs.remove(&id) {
                    self.shard.hub.unsubscribe(self.conn, &id, &room);
                }
            }
        }
        true
    }
}

impl Session<'_> {
    fn close(&self, c: u16, reason: &str) -> bool {
        self.queue.close_with(frame::close(c, reason));
        false
    }

    fn subscribe(&mut self, id: String, payload: &serde_json::Value) {
        let req = match from_value(payload) {
            Ok(r) => r,
            Err(e) => {
                self.queue.push(gqlws::error(&id, &bad(&e.to_string())));
                return;
            }
        };
        let client = match &self.viewer {
            Some(v) => Client::User(Rc::clone(&v.id)),
            None => Client::Ip(self.ip),
        };
        let caller = Caller {
            viewer: self.viewer.as_deref(),
            client: &client,
            app: None,
        };
        let start = service::start(self.shard, &req, Via::Post, caller);
        let s = match start {
            Err(refusal) => {
                self.queue.push(gqlws::error(&id, &refusal.errors));
                return;
            }
            Ok(Started::Executed(done)) => {
                // Queries and mutations: one result, then complete.
                self.queue.push(gqlws::next(&id, &done.body));
                self.queue.push(gqlws::complete(&id));
                return;
            }
            Ok(Started::Subscription(s)) => s,
        };
        if self.subs.len() >= self.shard.node.config.ws_max_subscriptions {
            self.queue.push(gqlws::error(
                &id,
                &bad("too many subscriptions on this connection"),
            ));
            return;
        }
        let sub = Rc::new(Subscription {
            conn: self.conn,
            id: id.as_str().into(),
            sink: Sink::WebSocket(Rc::clone(&self.queue)),
            viewer: s
                .doc
                .info_at(s.op)
                .per_viewer
                .then(|| self.viewer.clone())
                .flatten(),
            doc: s.doc,
            op: s.op,
            vars: s.vars,
            vars_key: s.vars_key,
            topic: s.topic,
        });
        match self.shard.hub.subscribe(sub, &s.room, s.since) {
            Ok(()) => {
                self.subs.insert(id, s.room.into());
            }
            Err((code, message)) => {
                self.queue.push(gqlws::error(
                    &id,
                    &json!([{"message": message, "extensions": {"code": code}}]),
                ));
            }
        }
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
