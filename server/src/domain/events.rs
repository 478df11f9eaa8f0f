//! The one seam through which the domain tells the rest of the node what changed: every
//! ordered room event and every mutation's changes are published as a [`Notice`] to the
//! node's [`EventSink`]: every shard's hub delivers room events and applies changes to
//! its cache; the node counts them for `/metrics`.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use streamhub_pubsub::Event;

use crate::store::Change;

/// What happened.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A room event (message, deletion, ban), ordered and kept.
    Room(Event),
    /// What a mutation changed.
    Changed(Arc<[Change]>),
    /// Changes may have been missed (another node's, while the link to them was
    /// down): every cache drops everything.
    Cleared,
}

/// Where notices go.
pub trait EventSink: Send + Sync + Debug {
    /// Publishes one notice (called after the change is in the store).
    fn publish(&self, notice: Notice);
}

/// Counts of what was published, for `/metrics`: room events, and stream changes (live
/// status, title, category).
#[derive(Debug, Default)]
pub struct Counted {
    room: AtomicU64,
    stream: AtomicU64,
}

impl Counted {
    /// (room events, stream changes) published so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.room.load(Ordering::Relaxed),
            self.stream.load(Ordering::Relaxed),
        )
    }
}

impl EventSink for Counted {
    fn publish(&self, notice: Notice) {
        match notice {
            Notice::Room(_) => {
                self.room.fetch_add(1, Ordering::Relaxed);
            }
            Notice::Changed(changes) => {
                let streams = changes
                    .iter()
                    .filter(|c| matches!(c, Change::Stream(_)))
                    .count();
                self.stream.fetch_add(streams as u64, Ordering::Relaxed);
            }
            Notice::Cleared => {}
        }
    }
}
