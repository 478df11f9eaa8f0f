//! Batched cross-thread wake-ups for a shard that consumes rings.
//!
//! A shard owns one [`Doorbell`] and hands it to every ring it reads
//! ([`Producer::subscribe`](crate::ring::Producer::subscribe)). Producers ring it after
//! publishing; the shard's runtime awaits it. The `pending` flag batches: once it is set,
//! producers skip the notify entirely (one relaxed load of a line nobody writes), so a
//! burst of 1,000 publishes from any number of producers costs the shard one wake-up.
//! The shard clears the flag ([`Doorbell::arm`]) only when it has run out of work, and
//! re-checks its rings after clearing it, which is what makes the scheme lose no
//! wake-up (see [`Doorbell::wait_until`]).
//!
//! The wake itself is a [`tokio::sync::Notify`], which is `Sync` and stores one permit
//! when nobody is waiting, so a ring that lands between the last check and the `await`
//! is not lost either.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

use crossbeam::utils::CachePadded;
use tokio::sync::Notify;

/// A consumer's wake-up signal, shared (`Arc`) by the consumer and every producer that
/// may have work for it.
#[derive(Debug, Default)]
pub struct Doorbell {
    /// Set by the producer that rings; cleared by the consumer when it goes idle.
    pending: CachePadded<AtomicBool>,
    notify: Notify,
    /// Wake-ups actually sent (not the rings skipped because one was pending).
    sent: AtomicU64,
}

impl Doorbell {
    /// A doorbell with no wake-up pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the consumer unless a wake-up is already pending.
    ///
    /// Call it after making work visible (after the Release store that publishes it).
    /// Producers that ring several doorbells after one batch can use a single fence;
    /// see [`Producer::wake`](crate::ring::Producer::wake).
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        self.ring_after_fence();
    }

    /// [`ring`](Self::ring) without the fence: the caller has issued a `SeqCst` fence
    /// after publishing its work and before calling this.
    pub(crate) fn ring_after_fence(&self) {
        // The load keeps a burst cheap: while a wake-up is pending the flag's cache line
        // stays shared and no read-modify-write is issued.
        if !self.pending.load(Ordering::Relaxed) && !self.pending.swap(true, Ordering::AcqRel) {
            self.sent.fetch_add(1, Ordering::Relaxed);
            self.notify.notify_one();
        }
    }

    /// Declares the consumer idle so that the next [`ring`](Self::ring) wakes it.
    ///
    /// Call it when a check for work came back empty, then check for work once more
    /// before awaiting [`notified`](Self::notified): the `SeqCst` fence here pairs with
    /// the one in `ring`, so either that second check sees the producer's work or the
    /// producer sees the flag cleared and sends a wake-up.
    pub fn arm(&self) {
        self.pending.store(false, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Resolves at the next wake-up, or at once if one was sent while nobody waited.
    /// Wake-ups may be spurious; re-check for work after it resolves.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Resolves once `has_work` returns true, sleeping between wake-ups.
    ///
    /// `has_work` must observe whatever the producers publish before they ring (for a
    /// ring: [`Consumer::has_pending`](crate::ring::Consumer::has_pending)); a shard that
    /// reads several rings passes a closure that checks them all.
    pub async fn wait_until(&self, mut has_work: impl FnMut() -> bool) {
        loop {
            if has_work() {
                return;
            }
            self.arm();
            if has_work() {
                return;
            }
            self.notified().await;
        }
    }

    /// How many wake-ups producers have sent (rings skipped because a wake-up was
    /// already pending are not counted): a per-consumer metric.
    pub fn wakeups(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}
