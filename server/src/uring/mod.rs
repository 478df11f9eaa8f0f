//! The io_uring backend (`STREAMHUB_IO=uring`, or `auto` where the kernel allows it):
//! a ring per shard driven from the shard's tokio runtime ([`driver`]), connections
//! accepted into the ring's file table as direct descriptors, which are not process
//! descriptors and so do not count against `RLIMIT_NOFILE` ([`accept`]), and read and
//! written through it ([`stream`]), receiving into buffers the kernel picks from a ring
//! shared with it only when data comes ([`bufring`]). What runs on top (hyper, TLS, the WebSocket
//! sessions) is the same as on epoll.
#![allow(unsafe_code)]

pub mod accept;
pub mod bufring;
pub mod driver;
pub mod stream;
#[cfg(test)]
mod tests;

use io_uring::{opcode, IoUring, Probe};

/// Process descriptors kept out of a ring's file table: its table may not exceed
/// `RLIMIT_NOFILE`, and the process still opens its own files and its PostgreSQL and
/// Redis sockets.
const RESERVED_FDS: u64 = 256;
/// A ring's file table at most.
const MAX_TABLE: u64 = 65_536;

/// The file table of each shard's ring: `RLIMIT_NOFILE` less a reserve, at most
/// 65,536.
pub fn table_size() -> u32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    };
    soft.saturating_sub(RESERVED_FDS).clamp(64, MAX_TABLE) as u32
}

/// Whether this kernel (and this process' seccomp policy) runs the backend: `Err` says
/// why not. Sets a ring up, runs a no-op through it, checks the operations used and a
/// sparse file table.
pub fn probe() -> Result<(), String> {
    let mut ring = IoUring::new(8).map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) => format!("io_uring_setup is not permitted ({e}): a seccomp profile (Docker's and containerd's default) or kernel.io_uring_disabled blocks it"),
        Some(libc::ENOSYS) => format!("this kernel has no io_uring ({e})"),
        _ => format!("io_uring_setup failed: {e}"),
    })?;
    let mut p = Probe::new();
    ring.submitter()
        .register_probe(&mut p)
        .map_err(|e| format!("io_uring cannot say which operations it supports: {e}"))?;
    for (code, name) in [
        (opcode::Accept::CODE, "accept"),
        (opcode::Recv::CODE, "recv"),
        (opcode::Send::CODE, "send"),
        (opcode::Close::CODE, "close"),
        (opcode::Shutdown::CODE, "shutdown"),
        (opcode::AsyncCancel::CODE, "cancel"),
    ] {
        if !p.is_supported(code) {
            return Err(format!("this kernel's io_uring lacks {name}"));
        }
    }
    ring.submitter()
        .register_files_sparse(1)
        .map_err(|e| format!("this kernel's io_uring has no sparse file tables: {e}"))?;
    // SAFETY: a no-op points into no memory.
    unsafe {
        ring.submission()
            .push(&opcode::Nop::new().build().user_data(1))
    }
    .map_err(|_| "the probe's queue is full".to_string())?;
    ring.submit_and_wait(1)
        .map_err(|e| format!("io_uring_enter failed: {e}"))?;
    let done = ring.completion().next();
    match done {
        Some(c) if c.user_data() == 1 && c.result() >= 0 => Ok(()),
        _ => Err("the probe's no-op did not complete".into()),
    }
}
