//! A room protocol session on `/ws`: authentication (upgrade header or `auth`
//! message), join with `since` recovery, leave, send (rate-limited, ordered by the store,
//! acknowledged with `sent`), ping/pong both ways, and the close codes of SPEC.md.
//!
//! Deliveries only queue frames on the connection's send queue, which the session's
//! writer drains (see `socket.rs`): they never wait on a slow reader, and a slow
//! consumer is closed with 4008 by its queue.
//!
//! `join` and `send` go to the hub and the store: each is the session's message in
//! flight, so the next message is read once it is answered (`sent` follows the order of
//! the sends).

use std::rc::Rc;

use graphql_exec::exec::FieldError;
use streamhub_ws::frame;
use streamhub_ws::message::code;
use streamhub_ws::queue::SendQueue;
use streamhub_ws::room::{self, ClientMsg};
use streamhub_ws::upgrade::Socket;

use super::hub::Refusal;
use super::socket::{Protocol, Step};
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

/// What a message handled in flight comes to.
enum Done {
    /// A join of this room: Ok(true) when joined, Ok(false) when already a member.
    Join(Box<str>, Result<bool, Refusal>),
    /// A send with its nonce: the seq its message took.
    Send(Option<String>, Result<u64, FieldError>),
}

impl<'a> Protocol<'a> for Session<'a> {
    const BINARY_CLOSE: (u16, &'static str) = (code::UNSUPPORTED, "the room protocol is JSON text");
    const INTERNAL_CLOSE: (u16, &'static str) = (code::INTERNAL, "internal error");
    type Done = Done;

    /// The room protocol needs no initialisation.
    fn initialized(&self) -> bool {
        true
    }

    /// Handles one client message: `join` and `send` in flight, the others at once.
    fn on_text(&mut self, text: &[u8]) -> Step<'a, Done> {
        let msg = match room::parse(text) {
            Ok(m) => m,
            Err(e) => {
                self.queue.push(room::error(
                    "BAD_USER_INPUT",
                    &format!("not a room protocol message: {e}"),
                    None,
                ));
                return Step::Done(true);
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
                    return Step::Done(false);
                }
            },
            ClientMsg::Join { room: r, since } => {
                let (shard, conn, queue) = (self.shard, self.conn, Rc::clone(&self.queue));
                // The hub registers the member last, so a flight dropped before its end
                // leaves no membership behind.
                return Step::Flight(Box::pin(async move {
                    let joined = shard.hub.join(conn, &queue, &r, since).await;
                    Done::Join(r.into(), joined)
                }));
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
                let client = match &self.viewer {
                    Some(v) => Client::User(Rc::clone(&v.id)),
                    None => Client::Ip(self.ip),
                };
                let (shard, viewer) = (self.shard, self.viewer.clone());
                return Step::Flight(Box::pin(async move {
                    let now = tokio::time::Instant::now();
                    if shard
                        .node
                        .limiter
                        .spend(Budget::Chat, &client, now)
                        .await
                        .is_err()
                    {
                        let refused =
                            FieldError::new("RATE_LIMITED", "too many messages; slow down");
                        return Done::Send(nonce, Err(refused));
                    }
                    let sent = match shard.request(viewer.as_deref()).await {
                        Ok(req) => req.send_chat(&r, &body).await,
                        Err(e) => Err(crate::domain::field_error(e)),
                    };
                    Done::Send(nonce, sent)
                }));
            }
        }
        Step::Done(true)
    }

    /// Records a joined room, or queues the answer to a join or a send.
    fn on_done(&mut self, done: Done) -> bool {
        match done {
            Done::Join(r, Ok(true)) => {
                // Most sessions join one room: room for one, not the four a first push
                // would make.
                if self.rooms.capacity() == 0 {
                    self.rooms.reserve_exact(1);
                }
                self.rooms.push(r);
            }
            Done::Join(_, Ok(false)) => {}
            Done::Join(_, Err((code, message))) => {
                self.queue.push(room::error(code, &message, None));
            }
            Done::Send(nonce, Ok(seq)) => {
                self.queue.push(room::sent(nonce.as_deref(), seq));
            }
            Done::Send(nonce, Err(e)) => {
                self.queue.push(room::error(
                    e.code.unwrap_or("INTERNAL_SERVER_ERROR"),
                    &e.message,
                    nonce.as_deref(),
                ));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The session future is what an idle connection holds besides the socket and the
    /// queue (perf/RESULTS.md, `ws-idle`): 224 bytes for a room protocol session before
    /// the slot for a message in flight, which adds one pointer pair.
    #[test]
    fn an_idle_session_stays_small() {
        let size = std::mem::size_of::<super::super::socket::Session<'static, Session<'static>>>();
        assert!(size <= 240, "{size} bytes");
    }
}
