//! The one seam through which the domain tells the real-time side what changed: every
//! mutation that changes what subscribers see publishes an [`Event`] to the node's
//! [`EventSink`]. The real-time hub plugs in here; until it does, the node counts them.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A room event (message, deletion, ban) was appended to a channel's room log.
    Room {
        /// The channel's id.
        channel_id: Box<str>,
        /// The event's seq.
        seq: u32,
    },
    /// A channel went live or offline, or its title or category changed.
    Stream {
        /// The channel's id.
        channel_id: Box<str>,
    },
}

/// Where events go.
pub trait EventSink: Send + Sync + Debug {
    /// Publishes one event (called after the change is in the store).
    fn publish(&self, event: Event);
}

/// The sink a node has before a hub is attached: counts events by kind, for
/// `/metrics`.
#[derive(Debug, Default)]
pub struct Counted {
    room: AtomicU64,
    stream: AtomicU64,
}

impl Counted {
    /// (room events, stream events) published so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.room.load(Ordering::Relaxed),
            self.stream.load(Ordering::Relaxed),
        )
    }
}

impl EventSink for Counted {
    fn publish(&self, event: Event) {
        let counter = match event {
            Event::Room { .. } => &self.room,
            Event::Stream { .. } => &self.stream,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
