//! A single-producer, multi-consumer broadcast ring of fixed capacity.
//!
//! Each shard owns the [`Producer`] of one ring and writes the room events it orders
//! into it; every other shard holds a [`Consumer`] of it with its own cursor. The
//! producer never blocks and never looks at the consumers: it overwrites the oldest
//! slot. A consumer that falls more than `capacity` items behind gets a [`Lapped`]
//! report naming exactly the positions it lost, and carries on from the oldest item
//! still in the ring; it never reads a torn or overwritten item.
//!
//! # Design
//! - Positions are `u64`s counting from 0 (they do not wrap in practice). Position `p`
//!   lives in slot `p & (capacity - 1)`.
//! - A slot holds an epoch-managed pointer to an immutable entry `{ pos, value }`
//!   (`crossbeam::epoch`; the `unsafe` is confined to the private `slots` module). The
//!   producer allocates the entry, swaps it in (Release) and retires the entry it
//!   replaced to the epoch collector, then stores `tail = pos + 1` (Release).
//! - A consumer loads `tail` (Acquire) only when its cached copy says it has caught up,
//!   so it touches the producer's cache line once per batch, not once per item.
//!   It detects a lap two ways: its cached `tail` is more than `capacity` ahead of its
//!   cursor, or the entry it loads (Acquire, while pinned) carries a later position
//!   than the one it asked for because the producer overwrote it after `tail` was read.
//!   Either way it reports `Lapped { missed_from: cursor, missed_to: resume }`, where
//!   `resume = newest written + 1 - capacity` is the oldest position that can still be
//!   in the ring, and moves its cursor there. If that one is overwritten too before it
//!   is read, the next read reports the next lap, so the reports are contiguous.
//! - Values are borrowed while the reader is pinned ([`Consumer::drain`]), so a shard
//!   can hand an event to its subscribers without touching a shared reference count;
//!   [`Consumer::try_recv`] clones for convenience.
//! - Each publish allocates one entry; retired entries are freed by whichever thread
//!   next runs the epoch collector (producer or consumer: frees cross threads, and so
//!   do the reference-count decrements of whatever the item holds). A reader pinned
//!   for a long time delays frees, never the producer. [`Producer::push_batch`] pins
//!   once per batch and runs the collector itself, since the collector otherwise only
//!   runs on every 128th pin and would fall behind.
//! - Wake-ups go through a [`Doorbell`] per consuming shard; see [`Producer::wake`].
//!
//! # Recovering a lap
//! Positions are ring positions, not room seqs: the ring carries every room the
//! producing shard owns. After a lap the consuming shard must treat every room it
//! follows from that producer as possibly behind: an event whose seq is not the next
//! one for its room ([`crate::seq::continuity`]) shows a gap to fill from that room's
//! history, and a room with no later event needs its last seq compared with the
//! owner's.

mod slots;

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam::epoch::{self, Guard};
use crossbeam::utils::CachePadded;

use crate::doorbell::Doorbell;
use slots::Slots;

/// The ring capacity was not a power of two of at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring capacity must be a power of two, got {0}")]
pub struct CapacityError(pub usize);

/// A consumer fell more than a lap behind: the items at positions
/// `missed_from..missed_to` were overwritten before it read them.
///
/// The consumer's cursor has already moved to `missed_to`; the next read returns the
/// item there or reports the next lap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring consumer lapped: positions {missed_from}..{missed_to} were overwritten before it read them")]
pub struct Lapped {
    /// The first position lost (the consumer's cursor when it was lapped).
    pub missed_from: u64,
    /// One past the last position lost: where the consumer resumes.
    pub missed_to: u64,
}

impl Lapped {
    /// How many items were lost.
    pub fn missed(&self) -> u64 {
        self.missed_to - self.missed_from
    }
}

/// One step of [`Consumer::drain`]: the next item, or a report of the items lost
/// before it.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv<'a, T> {
    /// The item at the consumer's cursor, borrowed for the duration of the callback.
    Item(&'a T),
    /// The consumer was lapped; the next `Item` (if any) is at `missed_to`.
    Lapped(Lapped),
}

/// What producer and consumers share.
struct Shared<T> {
    /// One past the last position written: positions below it are readable (or lapped).
    tail: CachePadded<AtomicU64>,
    slots: Slots<T>,
    capacity: u64,
}

/// The single writer of a ring. Not `Clone`: there is exactly one per ring, and it
/// never waits for consumers.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Next position to write (equal to `shared.tail` between calls).
    pos: u64,
    /// The consumers' doorbells, each once.
    doorbells: Vec<Arc<Doorbell>>,
    /// `pos` at the last `wake`, so that a wake with nothing new rings nobody.
    woken_at: u64,
}

/// One reader of a ring, with its own cursor. `Send`, not `Clone`.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Next position to read.
    next: u64,
    /// The last `tail` this consumer loaded: positions below it are known written.
    tail_seen: u64,
    doorbell: Arc<Doorbell>,
}

impl<T: Send + Sync + 'static> Producer<T> {
    /// A ring of `capacity` slots (a power of two) with no consumers yet.
    ///
    /// # Errors
    /// [`CapacityError`] when `capacity` is not a power of two.
    pub fn new(capacity: usize) -> Result<Self, CapacityError> {
        if !capacity.is_power_of_two() {
            return Err(CapacityError(capacity));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                tail: CachePadded::new(AtomicU64::new(0)),
                slots: Slots::new(capacity),
                capacity: capacity as u64,
            }),
            pos: 0,
            doorbells: Vec::new(),
            woken_at: 0,
        })
    }

    /// The number of slots: how far a consumer may fall behind before it is lapped.
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }

    /// The position the next [`push`](Self::push) writes: the number of items written.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// A new consumer that reads every item pushed from now on and is woken through
    /// `doorbell`. Consumers are meant to be set up when the shards start; a doorbell
    /// shared by several consumers of this ring is rung once.
    pub fn subscribe(&mut self, doorbell: Arc<Doorbell>) -> Consumer<T> {
        if !self.doorbells.iter().any(|d| Arc::ptr_eq(d, &doorbell)) {
            self.doorbells.push(Arc::clone(&doorbell));
        }
        Consumer {
            shared: Arc::clone(&self.shared),
            next: self.pos,
            tail_seen: self.pos,
            doorbell,
        }
    }

    /// Writes `item` at the next position without waking anyone, overwriting the item
    /// `capacity` positions back; returns the position written. Never blocks.
    ///
    /// Call [`wake`](Self::wake) after a batch of pushes (or use
    /// [`publish`](Self::publish)).
    pub fn push(&mut self, item: T) -> u64 {
        let pos = self.pos;
        {
            let guard = epoch::pin();
            self.shared.slots.write(pos, item, &guard);
        }
        self.pos = pos + 1;
        // Release: a consumer that sees the new tail sees the entry linked before it.
        self.shared.tail.store(self.pos, Ordering::Release);
        pos
    }

    /// Writes every item of `items` at the next positions, pinning the epoch once and
    /// publishing the new tail once for the batch, without waking anyone; returns the
    /// positions written. Never blocks.
    pub fn push_batch(&mut self, items: impl IntoIterator<Item = T>) -> std::ops::Range<u64> {
        let first = self.pos;
        {
            let guard = epoch::pin();
            for item in items {
                self.shared.slots.write(self.pos, item, &guard);
                self.pos += 1;
            }
            // One pin retires a batch of entries, but the collector only runs on every
            // 128th pin: run it now so that freeing keeps pace with retiring.
            guard.flush();
        }
        // Release: a consumer that sees the new tail sees every entry linked before it.
        self.shared.tail.store(self.pos, Ordering::Release);
        first..self.pos
    }

    /// Rings the doorbell of every consumer that is not already due a wake-up, if
    /// anything was pushed since the last call. One `SeqCst` fence plus one relaxed load
    /// per doorbell; a doorbell already pending costs no write.
    pub fn wake(&mut self) {
        if self.woken_at == self.pos {
            return;
        }
        self.woken_at = self.pos;
        // Pairs with the fence in `Doorbell::arm`: either the consumer's re-check sees
        // the tail stored by `push`, or this thread sees its cleared flag.
        fence(Ordering::SeqCst);
        for doorbell in &self.doorbells {
            doorbell.ring_after_fence();
        }
    }

    /// [`push`](Self::push) then [`wake`](Self::wake); returns the position written.
    pub fn publish(&mut self, item: T) -> u64 {
        let pos = self.push(item);
        self.wake();
        pos
    }
}

/// One step of reading.
enum Step<'g, T> {
    Empty,
    Item(&'g T),
    Lapped(Lapped),
}

impl<T: Send + Sync + 'static> Consumer<T> {
    /// The position of the next item this consumer reads.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// How many items were written that this consumer has not read yet (more than
    /// the capacity means the next read reports a lap). Loads the producer's tail.
    pub fn lag(&self) -> u64 {
        self.shared
            .tail
            .load(Ordering::Acquire)
            .saturating_sub(self.next)
    }

    /// True when a read would return an item or a lap report. Loads the producer's tail.
    pub fn has_pending(&self) -> bool {
        self.next < self.tail_seen || self.next < self.shared.tail.load(Ordering::Acquire)
    }

    /// The doorbell this consumer is woken through.
    pub fn doorbell(&self) -> &Arc<Doorbell> {
        &self.doorbell
    }

    /// Resolves when a read would return something, sleeping on the doorbell between
    /// wake-ups. A shard reading several rings through one doorbell should use
    /// [`Doorbell::wait_until`] with a check of all of them instead.
    pub async fn ready(&self) {
        self.doorbell.wait_until(|| self.has_pending()).await;
    }

    /// Reads the next item, cloning it.
    ///
    /// # Errors
    /// [`Lapped`] when the next items were overwritten; the cursor has moved past them
    /// and the following call returns the oldest item still in the ring.
    pub fn try_recv(&mut self) -> Result<Option<T>, Lapped>
    where
        T: Clone,
    {
        if !self.refresh() {
            return Ok(None);
        }
        let guard = epoch::pin();
        match self.step(&guard) {
            Step::Empty => Ok(None),
            Step::Item(value) => Ok(Some(value.clone())),
            Step::Lapped(lapped) => Err(lapped),
        }
    }

    /// Hands up to `max` items and lap reports to `f`, in ring order, borrowing each
    /// item for the duration of its call; returns how many calls were made (0 when the
    /// ring had nothing new). Reading continues after a lap report.
    ///
    /// The thread stays pinned to the epoch for the whole batch, which delays the freeing
    /// of retired items (never the producer): keep `max` moderate (hundreds).
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(Recv<'_, T>)) -> usize {
        if max == 0 || !self.refresh() {
            return 0;
        }
        let guard = epoch::pin();
        let mut calls = 0;
        while calls < max {
            match self.step(&guard) {
                Step::Empty => break,
                Step::Item(value) => f(Recv::Item(value)),
                Step::Lapped(lapped) => f(Recv::Lapped(lapped)),
            }
            calls += 1;
        }
        calls
    }

    /// Makes sure `tail_seen` is ahead of the cursor if anything was written; false when
    /// there is nothing to read. Loads the tail only when the cached one is used up.
    fn refresh(&mut self) -> bool {
        if self.next < self.tail_seen {
            return true;
        }
        self.tail_seen = self.shared.tail.load(Ordering::Acquire);
        self.next < self.tail_seen
    }

    fn step<'g>(&mut self, guard: &'g Guard) -> Step<'g, T> {
        if !self.refresh() {
            return Step::Empty;
        }
        let next = self.next;
        let capacity = self.shared.capacity;
        // Every position below `tail_seen - capacity` has been overwritten already.
        if self.tail_seen - next > capacity {
            return self.lap(self.tail_seen - capacity);
        }
        match self.shared.slots.read(next, guard) {
            Some(entry) if entry.pos == next => {
                self.next = next + 1;
                Step::Item(&entry.value)
            }
            Some(entry) => {
                // The producer reused the slot after we loaded `tail`: the entry is from a
                // later lap (same slot, so at least `next + capacity`). Everything up to
                // and including `entry.pos` is written (the producer writes in order, and
                // our Acquire load of the entry synchronised with its Release swap).
                debug_assert!(entry.pos >= next + capacity);
                let newest = self.shared.tail.load(Ordering::Acquire).max(entry.pos + 1);
                self.tail_seen = newest;
                self.lap(newest - capacity)
            }
            None => {
                // Unreachable: every position below the tail was written, and a slot is
                // never emptied while the ring lives.
                debug_assert!(false, "slot of a written position is empty");
                Step::Empty
            }
        }
    }

    fn lap(&mut self, resume: u64) -> Step<'static, T> {
        let lapped = Lapped {
            missed_from: self.next,
            missed_to: resume,
        };
        self.next = resume;
        Step::Lapped(lapped)
    }
}

impl<T> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.shared.capacity)
            .field("position", &self.pos)
            .field("doorbells", &self.doorbells.len())
            .finish()
    }
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.shared.capacity)
            .field("position", &self.next)
            .finish()
    }
}

#[cfg(test)]
mod tests;
