//! Where formatted log lines go: a per-thread buffer in front of stdout.
//!
//! A shard thread batches its lines and writes them with one `write` every flush tick
//! (see [`crate::shard`]) or once the buffer passes [`FLUSH_AT`], instead of one `write`
//! per line; every other thread writes each line at once. A thread's buffer is flushed
//! when the thread ends, including by a panic.

use std::cell::RefCell;
use std::io::Write;

/// A batching thread writes once its buffer holds this many bytes.
pub const FLUSH_AT: usize = 32 * 1024;

struct Buffer {
    bytes: Vec<u8>,
    batched: bool,
}

impl Buffer {
    fn flush(&mut self) {
        if self.bytes.is_empty() {
            return;
        }
        // A closed stdout loses the logs, never the request.
        let _ = std::io::stdout().lock().write_all(&self.bytes);
        self.bytes.clear();
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.flush();
    }
}

thread_local! {
    static BUFFER: RefCell<Buffer> = const {
        RefCell::new(Buffer { bytes: Vec::new(), batched: false })
    };
}

/// Makes the current thread batch its log lines until it ends.
pub fn batch_this_thread() {
    BUFFER.with(|b| b.borrow_mut().batched = true);
}

/// Writes out what the current thread has batched.
pub fn flush_this_thread() {
    BUFFER.with(|b| b.borrow_mut().flush());
}

/// Appends one line produced by `format` to the current thread's buffer, writing it
/// out now unless the thread batches.
pub fn emit(format: impl FnOnce(&mut Vec<u8>)) {
    BUFFER.with(|b| {
        // A line logged while formatting another (from a Debug impl) is dropped rather
        // than interleaved.
        let Ok(mut b) = b.try_borrow_mut() else {
            return;
        };
        format(&mut b.bytes);
        if !b.batched || b.bytes.len() >= FLUSH_AT {
            b.flush();
        }
    });
}

/// Takes what the current thread has batched, without writing it (for tests).
#[cfg(test)]
pub fn take_batched() -> Vec<u8> {
    BUFFER.with(|b| std::mem::take(&mut b.borrow_mut().bytes))
}
