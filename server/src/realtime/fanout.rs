//! The node's event sink: counts events for `/metrics` and tells each shard's hub which
//! rooms changed, through a lock-free queue and a wake-up per shard (a burst of events
//! wakes a shard once).

use std::sync::Arc;

use crossbeam::queue::SegQueue;
use tokio::sync::Notify;

use crate::domain::events::{Counted, Event, EventSink};

/// A shard's notices of changed rooms.
#[derive(Debug, Default)]
pub struct Inbox {
    rooms: SegQueue<Box<str>>,
    wake: Notify,
}

impl Inbox {
    /// Waits for notices and takes them all.
    pub async fn take(&self) -> Vec<Box<str>> {
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
        if let Event::Room { channel_id, .. } = &event {
            for inbox in &self.inboxes {
                inbox.rooms.push(channel_id.clone());
                inbox.wake.notify_one();
            }
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
                vec![Box::from("a"), Box::from("b")]
            );
        }
        assert_eq!(f.counts(), (2, 1));
    }
}
