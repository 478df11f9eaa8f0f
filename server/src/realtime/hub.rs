//! A shard's rooms: who is joined here, and delivery of each room's events in seq order,
//! exactly once, encoded once for all of this shard's members.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use streamhub_ws::queue::SendQueue;
use streamhub_ws::room;

use super::fanout::Inbox;
use crate::domain::values::date_time;
use crate::store::{ChannelIx, Data, RoomEvent, Store};

/// A connection's id within its shard.
pub type ConnId = u64;

#[derive(Debug)]
struct Room {
    channel: ChannelIx,
    /// The last seq delivered to this shard's members.
    delivered: u32,
    members: Vec<(ConnId, Rc<SendQueue>)>,
}

/// Why a join is refused: (code, message) for the room protocol's `error`.
pub type Refusal = (&'static str, String);

/// One shard's rooms.
#[derive(Debug)]
pub struct Hub {
    store: Arc<Store>,
    inbox: Arc<Inbox>,
    rooms: RefCell<HashMap<Box<str>, Room, foldhash::fast::RandomState>>,
    next_conn: Cell<ConnId>,
    /// Events of a room kept for `since` recovery.
    history: u32,
}

impl Hub {
    /// A hub over `store`, hearing of changes on `inbox`.
    pub fn new(store: Arc<Store>, inbox: Arc<Inbox>, history: u32) -> Hub {
        Hub {
            store,
            inbox,
            rooms: RefCell::default(),
            next_conn: Cell::new(1),
            history,
        }
    }

    /// A fresh connection id.
    pub fn connection(&self) -> ConnId {
        let id = self.next_conn.get();
        self.next_conn.set(id + 1);
        id
    }

    /// Joins `conn` to `room`. Queues `joined` (with the room's last seq) and, when
    /// `since` is given and within the history kept, every event after it, in order;
    /// later events come by delivery. Returns false when already joined.
    pub fn join(
        &self,
        conn: ConnId,
        queue: &Rc<SendQueue>,
        room_id: &str,
        since: Option<u64>,
    ) -> Result<bool, Refusal> {
        let mut rooms = self.rooms.borrow_mut();
        let d = self.store.read();
        let channel = d
            .channel_by_id(room_id)
            .ok_or_else(|| ("NOT_FOUND", format!("no channel has id `{room_id}`")))?;
        let room = rooms.entry(room_id.into()).or_insert_with(|| Room {
            channel,
            delivered: d.channel(channel).log.len() as u32,
            members: Vec::new(),
        });
        if room.members.iter().any(|(c, _)| *c == conn) {
            return Ok(false);
        }
        // Bring the room up to date first, so the member starts exactly at `delivered`.
        deliver(&d, room_id, room);
        let last = u64::from(room.delivered);
        let (recovered, replay) = match since {
            None => (false, 0..0),
            Some(s) if s > last => {
                return Err((
                    "BAD_USER_INPUT",
                    format!("`since` {s} is past the room's last seq {last}"),
                ))
            }
            Some(s) if last - s <= u64::from(self.history) => (true, s + 1..last + 1),
            Some(_) => (false, 0..0),
        };
        queue.push(room::joined(room_id, last, recovered));
        for seq in replay {
            if let Some(frame) = encode(&d, room_id, room.channel, seq as u32) {
                queue.push(frame);
            }
        }
        room.members.push((conn, Rc::clone(queue)));
        let channel = room.channel;
        drop(d);
        drop(rooms);
        self.store.write().channels[channel.0 as usize].viewers += 1;
        Ok(true)
    }

    /// Removes `conn` from `room`; false if it was not there.
    pub fn leave(&self, conn: ConnId, room_id: &str) -> bool {
        let mut rooms = self.rooms.borrow_mut();
        let Some(room) = rooms.get_mut(room_id) else {
            return false;
        };
        let before = room.members.len();
        room.members.retain(|(c, _)| *c != conn);
        if room.members.len() == before {
            return false;
        }
        let channel = room.channel;
        if room.members.is_empty() {
            rooms.remove(room_id);
        }
        drop(rooms);
        let mut d = self.store.write();
        let v = &mut d.channels[channel.0 as usize].viewers;
        *v = v.saturating_sub(1);
        true
    }

    /// Delivers rooms' new events to their members, whenever the inbox says rooms
    /// changed, until the shard stops.
    pub async fn run(self: Rc<Self>) {
        loop {
            let changed = self.inbox.take().await;
            let mut rooms = self.rooms.borrow_mut();
            let d = self.store.read();
            for room_id in &changed {
                if let Some(room) = rooms.get_mut(room_id) {
                    deliver(&d, room_id, room);
                }
            }
        }
    }
}

/// Queues every event after `room.delivered` on every member, each encoded once.
fn deliver(d: &Data, room_id: &str, room: &mut Room) {
    let last = d.channel(room.channel).log.len() as u32;
    while room.delivered < last {
        room.delivered += 1;
        let Some(frame) = encode(d, room_id, room.channel, room.delivered) else {
            continue;
        };
        room.members.retain(|(_, q)| !q.is_closing());
        for (_, q) in &room.members {
            // A member past its queue limit is closed with 4008 by its queue.
            q.push(frame.clone());
        }
    }
}

/// The room protocol frame of the event at `seq`.
fn encode(d: &Data, room_id: &str, c: ChannelIx, seq: u32) -> Option<Bytes> {
    let event = d.channel(c).log.get((seq as usize).checked_sub(1)?)?;
    Some(match event {
        RoomEvent::Message {
            author,
            body,
            sent_at,
            ..
        } => {
            let u = d.user(*author);
            room::message(
                room_id,
                u64::from(seq),
                &format!("msg_{room_id}_{seq}"),
                room::Author {
                    id: &u.id,
                    login: &u.login,
                    display_name: &u.display_name,
                },
                body,
                &date_time(*sent_at),
            )
        }
        RoomEvent::Deleted { message_seq } => {
            room::deleted(room_id, u64::from(seq), u64::from(*message_seq))
        }
        RoomEvent::Banned { user, until } => room::banned(
            room_id,
            u64::from(seq),
            &d.user(*user).id,
            until.map(date_time).as_deref(),
        ),
    })
}
