//! The node's event sink: counts notices for `/metrics` and carries every room event
//! (whole: any shard encodes it) and every mutation's changes to every shard's hub.
//! Each shard publishes into its own single-producer broadcast ring
//! (`streamhub-pubsub`), which every shard reads with its own cursor; a burst of notices
//! rings each reader's doorbell once. A reader that falls a lap behind is told so: it
//! fills its rooms' gaps from the rooms' histories (telling subscribers when a history
//! no longer holds them) and clears its cache; the ring never waits for a slow reader.
//!
//! Every publish then bumps the node's write counter ([`Fanout::writes`]): a request
//! that sees the counter ahead of what its shard has read drains the rings first, so
//! what a mutation changed is never read from a cache after it answered.
//!
//! The Redis link's and upkeep's threads (with other nodes) publish into bridge rings
//! of their own that every shard reads the same way; a publish from any other thread
//! that is not a shard (tests and tools) goes through a lock-free fallback queue per
//! shard instead.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam::queue::SegQueue;
use streamhub_pubsub::doorbell::Doorbell;
use streamhub_pubsub::ring::{Consumer, Producer, Recv};

use crate::domain::events::{Counted, EventSink, Notice};

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
    writes: AtomicU64,
}

/// What a shard reads: every shard's ring (its own included) and its fallback queue.
#[derive(Debug)]
pub struct Inbox {
    consumers: RefCell<Vec<Consumer<Notice>>>,
    doorbell: Arc<Doorbell>,
    fallback: Arc<SegQueue<Notice>>,
}

impl Fanout {
    /// A fan-out between `shards` shards, with `bridges` more rings for threads that
    /// are not shards but publish often (the Redis link's: [`Fanout::attach_bridge`]).
    pub fn new(shards: usize, bridges: usize) -> Fanout {
        let doorbells: Vec<Arc<Doorbell>> =
            (0..shards).map(|_| Arc::new(Doorbell::new())).collect();
        let mut producers: Vec<Producer<Notice>> = (0..shards + bridges)
            .map(|_| Producer::new(RING_CAPACITY).expect("the ring capacity is a power of two"))
            .collect();
        let ends = (0..shards + bridges)
            .map(|reader| {
                let consumers = match doorbells.get(reader) {
                    Some(doorbell) => producers
                        .iter_mut()
                        .map(|p| p.subscribe(Arc::clone(doorbell)))
                        .collect(),
                    None => Vec::new(),
                };
                (reader, consumers)
            })
            .collect::<Vec<_>>();
        let ends = ends
            .into_iter()
            .zip(producers)
            .map(|((reader, consumers), producer)| {
                // A bridge only publishes: nobody reads for it.
                let consumers = if reader < shards {
                    consumers
                } else {
                    Vec::new()
                };
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
            writes: AtomicU64::new(0),
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
            consumers: RefCell::new(ends.consumers),
            doorbell: Arc::clone(&self.doorbells[id]),
            fallback: Arc::clone(&self.fallback[id]),
        }
    }

    /// Called once on a bridge's thread (one that is not a shard's) when it starts:
    /// this thread publishes into bridge ring `id` from now on, which every shard reads
    /// like a shard's ring (a shard that falls a lap behind is told), instead of the
    /// fallback queues.
    pub fn attach_bridge(&self, id: usize) {
        let index = self.doorbells.len() + id;
        let ends = self.ends[index]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("each bridge attaches once");
        PRODUCER.with(|p| *p.borrow_mut() = ends.producer);
    }

    /// (room events, stream changes) published so far.
    pub fn counts(&self) -> (u64, u64) {
        self.counted.counts()
    }

    /// Notices published so far: once a shard has read every ring up to a value read
    /// here, it has seen every notice published before that value was.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }
}

impl EventSink for Fanout {
    fn publish(&self, notice: Notice) {
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
        // After the notice is in the rings: a reader that sees this count sees it.
        self.writes.fetch_add(1, Ordering::Release);
        self.counted.publish(notice);
    }
}

impl Inbox {
    /// Waits until some notice is there to take.
    pub async fn ready(&self) {
        let (consumers, fallback) = (&self.consumers, &self.fallback);
        self.doorbell
            .wait_until(|| {
                consumers.borrow().iter().any(Consumer::has_pending) || !fallback.is_empty()
            })
            .await;
    }

    /// Takes what has come into `notices`, each ring's in order, without waiting;
    /// whether some notices were overwritten before this shard read them (lapped: every
    /// room is to be read again). `notices` is the caller's buffer, kept between calls
    /// so that taking allocates nothing.
    pub fn take_now(&self, notices: &mut Vec<Notice>) -> bool {
        let mut lapped = false;
        for c in self.consumers.borrow_mut().iter_mut() {
            while c.drain(DRAIN_BATCH, |r| match r {
                Recv::Item(n) => notices.push(n.clone()),
                Recv::Lapped(_) => lapped = true,
            }) == DRAIN_BATCH
            {}
        }
        while let Some(n) = self.fallback.pop() {
            notices.push(n);
        }
        lapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Change;

    fn changed(id: &str) -> Notice {
        Notice::Changed(vec![Change::Channel(id.into()), Change::Stream(id.into())].into())
    }

    fn channel_of(n: &Notice) -> String {
        match n {
            Notice::Changed(c) => format!("{:?}", c[0]),
            Notice::Room(e) => e.room.to_string(),
            Notice::Cleared => "cleared".into(),
        }
    }

    #[test]
    fn a_bridge_publishes_through_a_ring_every_shard_reads_and_a_flood_laps_rather_than_grows() {
        let f = Arc::new(Fanout::new(2, 1));
        let inboxes = [f.attach(0), f.attach(1)];
        let (done, published) = std::sync::mpsc::channel();
        let (go, flood) = std::sync::mpsc::channel::<()>();
        let bridge = Arc::clone(&f);
        let thread = std::thread::spawn(move || {
            bridge.attach_bridge(0);
            for id in ["a", "b", "c"] {
                bridge.publish(changed(id));
            }
            done.send(()).unwrap();
            flood.recv().unwrap();
            for _ in 0..=RING_CAPACITY {
                bridge.publish(changed("flood"));
            }
            done.send(()).unwrap();
        });
        published.recv().unwrap();
        let want: Vec<String> = ["a", "b", "c"].map(|id| channel_of(&changed(id))).into();
        for inbox in &inboxes {
            let mut got = Vec::new();
            assert!(!inbox.take_now(&mut got), "nothing lost");
            assert_eq!(got.iter().map(channel_of).collect::<Vec<_>>(), want);
        }
        assert_eq!(f.writes(), 3);
        // More than a ring holds, unread: the shards are told they lost some (a fallback
        // queue would have kept them all, growing).
        go.send(()).unwrap();
        published.recv().unwrap();
        thread.join().unwrap();
        for inbox in &inboxes {
            let mut got = Vec::new();
            assert!(inbox.take_now(&mut got), "lapped");
            assert!(got.len() <= RING_CAPACITY);
        }
    }

    #[tokio::test]
    async fn every_shard_hears_of_every_notice_each_ring_in_order() {
        let f = Arc::new(Fanout::new(2, 0));
        let mut inboxes: Vec<Inbox> = Vec::new();
        // Shard 1's thread publishes through its ring; this thread has none and uses the
        // fallback.
        let (tx, rx) = std::sync::mpsc::channel();
        let f1 = Arc::clone(&f);
        std::thread::spawn(move || {
            let inbox = f1.attach(1);
            f1.publish(changed("a"));
            f1.publish(changed("b"));
            tx.send(inbox).unwrap();
        })
        .join()
        .unwrap();
        inboxes.push(f.attach(0));
        inboxes.push(rx.recv().unwrap());
        f.publish(changed("c"));
        assert_eq!(f.writes(), 3, "every publish counts");
        for inbox in &inboxes {
            inbox.ready().await;
            let mut notices = Vec::new();
            assert!(!inbox.take_now(&mut notices));
            let seen: Vec<String> = notices.iter().map(channel_of).collect();
            assert_eq!(seen.len(), 3);
            // Each ring keeps its order; rings are read one after another.
            let pos = |id: &str| seen.iter().position(|x| x.contains(id)).unwrap();
            assert!(pos("\"a\"") < pos("\"b\""));
            assert!(seen.iter().any(|x| x.contains("\"c\"")));
            notices.clear();
            inbox.take_now(&mut notices);
            assert!(notices.is_empty(), "taken once");
        }
        assert_eq!(f.counts(), (0, 3));
    }

    #[tokio::test]
    async fn a_reader_lapped_by_its_ring_is_told_so() {
        let f = Fanout::new(1, 0);
        let inbox = f.attach(0);
        for i in 0..(RING_CAPACITY + 10) {
            f.publish(changed(&format!("r{i}")));
        }
        inbox.ready().await;
        let mut notices = Vec::new();
        assert!(inbox.take_now(&mut notices));
        assert_eq!(notices.len(), RING_CAPACITY);
        assert!(channel_of(notices.last().unwrap()).contains(&format!("r{}", RING_CAPACITY + 9)));
    }
}
