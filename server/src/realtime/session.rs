//! A room protocol session on `/ws`: authentication (upgrade header or `auth`
//! message), join with `since` recovery, leave, send (rate-limited, ordered by the store,
//! acknowledged with `sent`), ping/pong both ways, and the close codes of SPEC.md.
//!
//! Deliveries only queue frames on the connection's send queue, which the session's
//! writer drains (see `socket.rs`): they never wait on a slow reader, and a slow
//! consumer is closed with 4008 by its queue.

use std::rc::Rc;
use streamhub_ws::frame;
use streamhub_ws::message::code;
use streamhub_ws::queue::SendQueue;
use streamhub_ws::room::{self, ClientMsg};
use streamhub_ws::upgrade::Socket;

use super::socket::Protocol;
use crate::auth::Viewer;
use crate::conn::ConnState;
use crate::limits::rate::{Budget, Client};
use crate::shard::Shard;

/// What a session starts with.
#[derive(Debug)]
pub struct Start {
    /// The viewer of the upgrade's `Authorization` header.
    pub viewer: Option<Rc<Viewer>>,
    /// The client's address (for anonymous rate limits).
    pub ip: std::net::IpAddr,
    /// False when the upgrade came from an Origin outside the allow-list: closed with
    /// 1008 at once.
    pub origin_ok: bool,
}

/// A session, to run until it closes.
pub fn run<'a>(
    shard: &'a Shard,
    conn: &Rc<ConnState>,
    socket: Socket,
    start: Start,
) -> impl std::future::Future<Output = ()> + 'a {
    let refuse = (!start.origin_ok).then_some((code::POLICY, "origin not allowed"));
    let make = |queue: &Rc<SendQueue>| Session {
        shard,
        queue: Rc::clone(queue),
        conn: shard.hub.connection(),
        viewer: start.viewer,
        ip: start.ip,
        rooms: Vec::new(),
    };
    super::socket::run(shard, conn, socket, refuse, None, make)
}

struct Session<'a> {
    shard: &'a Shard,
    queue: Rc<SendQueue>,
    conn: crate::realtime::hub::ConnId,
    viewer: Option<Rc<Viewer>>,
    ip: std::net::IpAddr,
    rooms: Vec<Box<str>>,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        for r in &self.rooms {
            self.shard.hub.leave(self.conn, r);
        }
    }
}

impl Protocol for Session<'_> {
    const BINARY_CLOSE: (u16, &'static str) = (code::UNSUPPORTED, "the room protocol is JSON text");
    const INTERNAL_CLOSE: (u16, &'static str) = (code::INTERNAL, "internal error");

    /// Handles one client message; false to end the session (a close is queued).
    /// The room protocol needs no initialisation.
    fn initialized(&self) -> bool {
        true
    }

    fn on_text(&mut self, text: &[u8]) -> bool {
        let msg = match room::parse(text) {
            Ok(m) => m,
            Err(e) => {
                self.queue.push(room::error(
                    "BAD_USER_INPUT",
                    &format!("not a room protocol message: {e}"),
                    None,
                ));
                return true;
            }
        };
        match msg {
            ClientMsg::Ping => {
                self.queue.push(room::pong());
            }
            ClientMsg::Auth { token } => match self.shard.auth.verify(token.as_bytes()) {
                Ok(v) => self.viewer = Some(v),
                Err(e) => {
                    self.queue
                        .close_with(frame::close(code::POLICY, &e.to_string()));
                    return false;
                }
            },
            ClientMsg::Join { room: r, since } => {
                match self.shard.hub.join(self.conn, &self.queue, &r, since) {
                    Ok(true) => self.rooms.push(r.into()),
                    Ok(false) => {}
                    Err((code, message)) => {
                        self.queue.push(room::error(code, &message, None));
                    }
                }
            }
            ClientMsg::Leave { room: r } => {
                if self.shard.hub.leave(self.conn, &r) {
                    self.rooms.retain(|x| **x != *r);
                }
            }
            ClientMsg::Send {
                room: r,
                body,
                nonce,
            } => {
                let nonce = nonce.as_deref();
                let client = match &self.viewer {
                    Some(v) => Client::User(Rc::clone(&v.id)),
                    None => Client::Ip(self.ip),
                };
                let now = tokio::time::Instant::now();
                if self
                    .shard
                    .node
                    .limiter
                    .check(Budget::Chat, &client, now)
                    .is_err()
                {
                    self.queue.push(room::error(
                        "RATE_LIMITED",
                        "too many messages; slow down",
                        nonce,
                    ));
                    return true;
                }
                let req = self.shard.node.domain.request(self.viewer.as_deref());
                match req.send_chat(&r, &body) {
                    Ok(seq) => {
                        self.queue.push(room::sent(nonce, u64::from(seq)));
                    }
                    Err(e) => {
                        self.queue.push(room::error(
                            e.code.unwrap_or("INTERNAL_SERVER_ERROR"),
                            &e.message,
                            nonce,
                        ));
                    }
                }
            }
        }
        true
    }
}
