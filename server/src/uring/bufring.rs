//! The ring's provided buffers: receives name the group, not a buffer, and the kernel
//! picks one of these only when data comes, so a connection waiting for its peer holds
//! none. A completion names the buffer it filled; the connection copies the bytes out
//! at once and gives the buffer back.
//!
//! The buffers' ring is shared with the kernel: a page-aligned array of entries whose
//! tail the application publishes (a release store) after filling the entries it adds.

#![allow(unsafe_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The buffer group every receive names.
pub const GROUP: u16 = 0;

/// A ring of `count` buffers of `size` bytes, registered with one io_uring.
#[derive(Debug)]
pub struct BufRing {
    entries: *mut BufRingEntry,
    layout: Layout,
    bufs: Box<[u8]>,
    size: usize,
    count: u16,
    tail: Cell<u16>,
}

impl BufRing {
    /// `count` (a power of two, at most 32,768) buffers of `size` bytes, registered
    /// with `ring` as group [`GROUP`]. The ring must be dropped (or the group
    /// unregistered) before this.
    pub fn new(ring: &IoUring, count: u16, size: usize) -> io::Result<BufRing> {
        assert!(count.is_power_of_two() && count <= 32_768, "count {count}");
        let layout = Layout::from_size_align(
            usize::from(count) * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size (count >= 1).
        let entries = unsafe { alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let ring_buf = BufRing {
            entries,
            layout,
            bufs: vec![0u8; usize::from(count) * size].into_boxed_slice(),
            size,
            count,
            tail: Cell::new(0),
        };
        for bid in 0..count {
            ring_buf.push(bid);
        }
        ring_buf.publish();
        // SAFETY: `entries` is a page-aligned array of `count` entries that lives as
        // long as `ring_buf`, which the caller drops only after the ring.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, count, GROUP, 0)
        }?;
        Ok(ring_buf)
    }

    /// The bytes the kernel put into buffer `bid`.
    pub fn filled(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.size;
        &self.bufs[start..start + len.min(self.size)]
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn give_back(&self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    /// Writes buffer `bid` into the entry at the tail (not yet visible to the kernel).
    fn push(&self, bid: u16) {
        let tail = self.tail.get();
        let i = usize::from(tail & (self.count - 1));
        let addr = self.bufs[usize::from(bid) * self.size..].as_ptr() as u64;
        // SAFETY: `i` is below `count`, the array's length; the kernel reads only the
        // entries between its head and the published tail, and this one is past it.
        let entry = unsafe { &mut *self.entries.add(i) };
        entry.set_addr(addr);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail.set(tail.wrapping_add(1));
    }

    /// Makes the entries pushed so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field overlays the first entry's reserved field, which the
        // kernel reads as the ring's tail; the array is alive and initialised, and
        // u16 stores to it are atomic on every platform io_uring runs on.
        unsafe {
            let tail = BufRingEntry::tail(self.entries).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail.get(), Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring that read it is gone.
        unsafe { dealloc(self.entries.cast(), self.layout) };
    }
}
