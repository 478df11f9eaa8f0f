//! The node's event sink: counts events for `/metrics` and tells every shard's hub
//! which rooms changed. Each shard publishes into its own single-producer broadcast ring
//! (`streamhub-pubsub`), which every shard reads with its own cursor; a burst of notices
//! rings each reader's doorbell once. A reader that falls a lap behind is told so and
//! re-reads every room it serves from the store's room log, so nothing is lost; the ring
//! never waits for a slow reader.
//!
//! A publish from a thread that is not a shard (none in the server; tests and tools)
//! goes through a lock-free fallback queue per shard instead.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use crossbeam::queue::SegQueue;
use streamhub_pubsub::doorbell::Doorbell;
use streamhub_pubsub::ring::{Consumer, Producer, Recv};

use crate::domain::events::{Counted, Event, EventSink};

/// What changed in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// New room events (chat, deletions, bans).
    Events(Box<str>),
    /// The channel's live status, title or category.
    Stream(Box<str>),
}

/// Notices each shard's ring holds before a slow reader is lapped.
const RING_CAPACITY: usize = 4096;

/// Notices a reader takes per ring per wake-up before looking at the others.
const DRAIN_BATCH: usize = 256;

thread_local! {
    /// The ring of the shard running on this thread.
    static PRODUCER: RefCell<Option<Producer<Notice>>> = const { RefCell::new(None) };
}

/// One shard's ends, until the shard takes them.
#[derive(Debug)]
struct Ends {
    producer: Option<Producer<Notice>>,
    consumers: Vec<Consumer<Notice>>,
}

/// Routes the domain's events to every shard.
#[derive(Debug)]
pub struct Fanout {
    counted: Counted,
    ends: Vec<Mutex<Option<Ends>>>,
    doorbells: Vec<Arc<Doorbell>>,
    fallback: Vec<Arc<SegQueue<Notice>>>,
}

/// What a shard reads: every shard's ring (its own included) and its fallback queue.
#[derive(Debug)]
pub struct Inbox {
    consumers: Vec<Consumer<Notice>>,
    doorbell: Arc<Doorbell>,
    fallback: Arc<SegQueue<Notice>>,
}

/// What a wake-up brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// The notices, in ring order per ring.
    pub notices: Vec<Notice>,
    /// Some notices were overwritten before this shard read them: re-read every room.
    pub lapped: bool,
}

impl Fanout {
    /// A fan-out between `shards` shards.
    pub fn new(shards: usize) -> Fanout {
        let doorbells: Vec<Arc<Doorbell>> =
            (0..shards).map(|_| Arc::new(Doorbell::new())).collect();
        let mut producers: Vec<Producer<Notice>> = (0..shards)
            .map(|_| Producer::new(RING_CAPACITY).expect("the ring capacity is a power of two"))
            .collect();
        let ends = (0..shards)
            .map(|reader| {
                let consumers = producers
                    .iter_mut()
                    .map(|p| p.subscribe(Arc::clone(&doorbells[reader])))
                    .collect();
                (reader, consumers)
            })
            .collect::<Vec<_>>();
        let ends = ends
            .into_iter()
            .zip(producers)
            .map(|((_, consumers), producer)| {
                Mutex::new(Some(Ends {
                    producer: Some(producer),
                    consumers,
                }))
            })
            .collect();
        Fanout {
            counted: Counted::default(),
            ends,
            fallback: (0..shards).map(|_| Arc::default()).collect(),
            doorbells,
        }
    }

    /// Called once on shard `id`'s thread when it starts: this thread publishes into the
    /// shard's ring from now on, and the returned inbox reads every ring.
    pub fn attach(&self, id: usize) -> Inbox {
        let ends = self.ends[id]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("each shard attaches once");
        PRODUCER.with(|p| *p.borrow_mut() = ends.producer);
        Inbox {
            consumers: ends.consumers,
            doorbell: Arc::clone(&self.doorbells[id]),
            fallback: Arc::clone(&self.fallback[id]),
        }
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
        let published = PRODUCER.with(|p| match p.borrow_mut().as_mut() {
            Some(producer) => {
                producer.publish(notice.clone());
                true
            }
            None => false,
        });
        if !published {
            for (queue, doorbell) in self.fallback.iter().zip(&self.doorbells) {
                queue.push(notice.clone());
                doorbell.ring();
            }
        }
        self.counted.publish(event);
    }
}

impl Inbox {
    /// Waits for notices and takes what has come, each ring's in order.
    pub async fn take(&mut self) -> Taken {
        let (consumers, fallback) = (&self.consumers, &self.fallback);
        self.doorbell
            .wait_until(|| consumers.iter().any(Consumer::has_pending) || !fallback.is_empty())
            .await;
        let mut taken = Taken::default();
        for c in &mut self.consumers {
            while c.drain(DRAIN_BATCH, |r| match r {
                Recv::Item(n) => taken.notices.push(n.clone()),
                Recv::Lapped(_) => taken.lapped = true,
            }) == DRAIN_BATCH
            {}
        }
        while let Some(n) = self.fallback.pop() {
            taken.notices.push(n);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_shard_hears_of_every_event_each_ring_in_order() {
        let f = Arc::new(Fanout::new(2));
        let mut inboxes: Vec<Inbox> = Vec::new();
        // Shard 1's thread publishes through its ring; this thread has none and uses the
        // fallback.
        let (tx, rx) = std::sync::mpsc::channel();
        let f1 = Arc::clone(&f);
        std::thread::spawn(move || {
            let inbox = f1.attach(1);
            f1.publish(Event::Room {
                channel_id: "a".into(),
                seq: 1,
            });
            f1.publish(Event::Stream {
                channel_id: "a".into(),
            });
            tx.send(inbox).unwrap();
        })
        .join()
        .unwrap();
        inboxes.push(f.attach(0));
        inboxes.push(rx.recv().unwrap());
        f.publish(Event::Room {
            channel_id: "b".into(),
            seq: 1,
        });
        for inbox in &mut inboxes {
            let t = inbox.take().await;
            assert!(!t.lapped);
            // Each ring keeps its order; rings are read one after another.
            let pos = |n: &Notice| t.notices.iter().position(|x| x == n).unwrap();
            assert_eq!(t.notices.len(), 3);
            assert!(pos(&Notice::Events("a".into())) < pos(&Notice::Stream("a".into())));
            assert!(t.notices.contains(&Notice::Events("b".into())));
        }
        assert_eq!(f.counts(), (2, 1));
    }

    #[tokio::test]
    async fn a_reader_lapped_by_its_ring_is_told_so() {
        let f = Fanout::new(1);
        let mut inbox = f.attach(0);
        for i in 0..(RING_CAPACITY + 10) {
            f.publish(Event::Room {
                channel_id: format!("r{i}").into(),
                seq: 1,
            });
        }
        let t = inbox.take().await;
        assert!(t.lapped);
        assert_eq!(t.notices.len(), RING_CAPACITY);
        assert_eq!(
            t.notices.last(),
            Some(&Notice::Events(format!("r{}", RING_CAPACITY + 9).into()))
        );
    }
}
