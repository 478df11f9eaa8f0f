//! The node's event sink: counts events for `/metrics` and tells each shard's hub which
//! rooms changed, through a lock-free queue and a wake-up per shard (a burst of events
//! wakes a shard once).

use std::sync::Arc;

use crossbeam::queue::SegQueue;
use tokio::sync::Notify;

use crate::domain::events::{Counted, Event, EventSink};

/// What changed in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// New room events (chat, deletions, bans).
    Events(Box<str>),
    /// The channel's live status, title or category.
    Stream(Box<str>),
}

/// A shard's notices of changed rooms.
#[derive(Debug, Default)]
pub struct Inbox {
    rooms: SegQueue<Notice>,
    wake: Notify,
}

impl Inbox {
    /// Waits for notices and takes them all.
    pub async fn take(&self) -> Vec<Notice> {
        loop {
            let mut rooms = Vec::new();
            while let Some(r) = self.rooms.pop() {
                rooms.push(r);
            }
            if !rooms.is_empty() {
                return rooms;
            }
            self.wake.notified().await;
        }
    }
}

/// Routes the domain's events to every shard.
#[derive(Debug)]
pub struct Fanout {
    counted: Counted,
    inboxes: Vec<Arc<Inbox>>,
}

impl Fanout {
    /// A fan-out to `shards` shards.
    pub fn new(shards: usize) -> Fanout {
        Fanout {
            counted: Counted::default(),
            inboxes: (0..shards).map(|_| Arc::default()).collect(),
        }
    }

    /// Shard `id`'s inbox.
    pub fn inbox(&self, id: usize) -> Arc<Inbox> {
        Arc::clone(&self.inboxes[id])
    }

    /// (room events, stream events) published so far.
    pub fn counts(&self) -> (u64, u64) {
        self.counted.counts()
    }
}

impl EventSink for Fanout {
    fn publish(&self, event: Event) {
        let notice = match &event {
            Event::Room { channel_id, .. } => Notice::Events(channel_id.clone()),
            Event::Stream { channel_id } => Notice::Stream(channel_id.clone()),
        };
        for inbox in &self.inboxes {
            inbox.rooms.push(notice.clone());
            inbox.wake.notify_one();
        }
        self.counted.publish(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_shard_hears_of_every_room_event_once_per_notice() {
        let f = Fanout::new(2);
        f.publish(Event::Room {
            channel_id: "a".into(),
            seq: 1,
        });
        f.publish(Event::Stream {
            channel_id: "a".into(),
        });
        f.publish(Event::Room {
            channel_id: "b".into(),
            seq: 1,
        });
        for id in 0..2 {
            assert_eq!(
                f.inbox(id).take().await,
                vec![
                    Notice::Events("a".into()),
                    Notice::Stream("a".into()),
                    Notice::Events("b".into())
                ]
            );
        }
        assert_eq!(f.counts(), (2, 1));
    }
}
