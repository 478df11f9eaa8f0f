//! The ring's slot array: the only `unsafe` code in the crate.
//!
//! Each slot holds an epoch-managed pointer (`crossbeam::epoch`) to an immutable
//! [`Entry`]: the value and the ring position it was written at. The producer swaps a
//! new entry in and hands the one it replaced to the epoch collector, which frees it
//! only once every thread that was pinned when it was unlinked has unpinned. A reader
//! pins, loads the pointer and compares the entry's position with the one it wants: an
//! entry is never mutated after it is published, so a read is never torn, and an
//! overwritten slot is recognised by its position instead of being read silently.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;

use crossbeam::epoch::{self, Atomic, Guard, Owned};

/// One published item: immutable from the moment it is linked into a slot.
pub(super) struct Entry<T> {
    /// The ring position this entry was written at.
    pub(super) pos: u64,
    /// The item.
    pub(super) value: T,
}

/// A power-of-two array of epoch-managed slots.
pub(super) struct Slots<T> {
    slots: Box<[Atomic<Entry<T>>]>,
    mask: u64,
}

impl<T: Send + Sync + 'static> Slots<T> {
    /// An empty array of `capacity` slots; `capacity` is a power of two (checked by the caller).
    pub(super) fn new(capacity: usize) -> Self {
        debug_assert!(capacity.is_power_of_two());
        Self {
            slots: (0..capacity).map(|_| Atomic::null()).collect(),
            mask: capacity as u64 - 1,
        }
    }

    /// Links `value` as the entry for `pos`, retiring the entry the slot held before
    /// (the one at `pos - capacity`).
    pub(super) fn write(&self, pos: u64, value: T, guard: &Guard) {
        let slot = &self.slots[(pos & self.mask) as usize];
        // Release publishes the entry's fields to readers that load the pointer with
        // Acquire; Acquire on the old pointer is not needed for its contents (this thread
        // wrote them or synchronised with their writer), AcqRel just keeps it simple.
        let old = slot.swap(Owned::new(Entry { pos, value }), Ordering::AcqRel, guard);
        if !old.is_null() {
            // SAFETY: `swap` unlinked `old` from the only place that pointed to it, and an
            // atomic swap returns each old pointer to exactly one caller, so nobody else can
            // retire it (this holds even if two threads wrote, which `Producer` prevents
            // anyway). Readers that loaded it before the swap were pinned when they did, so
            // the collector keeps it alive until they unpin; after the swap no new reader can
            // reach it. `T: Send + 'static` lets the destructor run later on any thread.
            unsafe { guard.defer_destroy(old) };
        }
    }

    /// The entry currently linked in the slot of `pos`, whatever position it holds
    /// (`None` only for a slot that was never written). Valid while `guard` is pinned.
    pub(super) fn read<'g>(&self, pos: u64, guard: &'g Guard) -> Option<&'g Entry<T>> {
        let shared = self.slots[(pos & self.mask) as usize].load(Ordering::Acquire, guard);
        // SAFETY: the pointer is null or points to an entry allocated by `write`. Entries
        // are only freed through `defer_destroy` after being unlinked, and we loaded this
        // one while `guard` was pinned, so it stays allocated for `'g`. It is never
        // mutated after publication (readers only get `&`), and the Acquire load
        // synchronises with the Release swap that published it, so its fields are fully
        // initialised and visible.
        unsafe { shared.as_ref() }
    }
}

impl<T> Drop for Slots<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no producer or consumer can reach the slots any more
        // (they share them through the `Arc` that is dropping us), so no other thread
        // touches these pointers and an unprotected guard is sound.
        let guard = unsafe { epoch::unprotected() };
        for slot in self.slots.iter() {
            let shared = slot.load(Ordering::Relaxed, guard);
            if !shared.is_null() {
                // SAFETY: an entry still linked in a slot was never passed to
                // `defer_destroy` (only unlinked ones are), was allocated by `Owned::new`,
                // and nobody else can hold a reference to it (see above), so we are its
                // sole owner and free it exactly once.
                drop(unsafe { shared.into_owned() });
            }
        }
    }
}
