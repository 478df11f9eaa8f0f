//! Accepting into the ring's file table: several single accepts armed at once on the
//! shard's listener, each with its own address buffer (a multishot accept writes every
//! peer's address into one buffer, so the per-address limits could not tell whose it
//! was), each completion a direct descriptor.
//!
//! A full table makes an armed accept fail with `ENFILE` after the kernel has taken
//! the connection off the queue, losing it; so accepts are armed only while the table
//! keeps [`HEADROOM`] slots free beyond them, and the shard waits for closes otherwise.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::task::Poll;
use std::time::Duration;

use io_uring::{opcode, types};

use super::driver::{this_thread, Done, Driver, Keep, Kind, OpId};
use super::stream::UringStream;

/// Accepts armed at once.
const ARMED: usize = 16;
/// Table slots kept free beyond the armed accepts.
pub const HEADROOM: u32 = 64;

/// The shard's accepts in flight on its listener.
#[derive(Debug)]
pub struct Acceptor {
    listener: RawFd,
    armed: VecDeque<OpId>,
}

impl Acceptor {
    /// Accepts from `listener`, which must outlive the acceptor.
    pub fn new(listener: &TcpListener) -> Acceptor {
        Acceptor {
            listener: listener.as_raw_fd(),
            armed: VecDeque::new(),
        }
    }

    fn arm(&mut self, driver: &Driver) {
        while self.armed.len() < ARMED && driver.free_slots() > HEADROOM + self.armed.len() as u32 {
            // SAFETY: zeroed bytes are a valid `sockaddr_storage`.
            let mut addr: Box<(libc::sockaddr_storage, libc::socklen_t)> =
                Box::new((unsafe { std::mem::zeroed() }, 0));
            addr.1 = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let entry = opcode::Accept::new(
                types::Fd(self.listener),
                std::ptr::addr_of_mut!(addr.0).cast(),
                std::ptr::addr_of_mut!(addr.1),
            )
            .file_index(Some(types::DestinationSlot::auto_target()))
            .build();
            // SAFETY: the entry points into the boxed address, which the operation
            // keeps until its completion (moving the box does not move its contents).
            let id = unsafe { driver.submit(entry, Keep::Addr(addr), Kind::Accept) };
            self.armed.push_back(id);
        }
    }

    /// The next connection, with its peer's address.
    pub async fn accept(&mut self) -> io::Result<(UringStream, SocketAddr)> {
        let driver = this_thread()?;
        loop {
            self.arm(&driver);
            if self.armed.is_empty() {
                // The table is nearly full: wait for connections to close.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            // Whichever armed accept the kernel gave a connection to: not necessarily
            // the first armed.
            let Done { res, keep, .. } = poll_fn(|cx| {
                for (i, &id) in self.armed.iter().enumerate() {
                    if let Poll::Ready(done) = driver.poll(id, cx) {
                        self.armed.remove(i);
                        return Poll::Ready(done);
                    }
                }
                Poll::Pending
            })
            .await;
            return match res {
                Ok(slot) => Ok((UringStream::new(slot), peer_of(keep)?)),
                Err(e) => Err(e),
            };
        }
    }

    /// Stops accepting: the armed accepts are cancelled, and the connections some of
    /// them had taken already are handed back (to be served, not reset).
    pub async fn close(mut self) -> Vec<(UringStream, SocketAddr)> {
        let Ok(driver) = this_thread() else {
            return Vec::new();
        };
        for &id in &self.armed {
            driver.cancel(id);
        }
        let mut taken = Vec::new();
        while let Some(id) = self.armed.pop_front() {
            let Done { res, keep, .. } = poll_fn(|cx| driver.poll(id, cx)).await;
            if let Ok(slot) = res {
                let stream = UringStream::new(slot);
                match peer_of(keep) {
                    Ok(peer) => taken.push((stream, peer)),
                    Err(e) => tracing::warn!(error = %e, "an accepted connection has no address"),
                }
            }
        }
        taken
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        if let Ok(driver) = this_thread() {
            for id in self.armed.drain(..) {
                driver.abandon(id);
            }
        }
    }
}

/// The peer address an accept wrote.
fn peer_of(keep: Keep) -> io::Result<SocketAddr> {
    let Keep::Addr(addr) = keep else {
        unreachable!("an accept keeps its address")
    };
    let (storage, len) = *addr;
    // SAFETY: the kernel wrote a socket address of `len` bytes into `storage`.
    let addr = unsafe { socket2::SockAddr::new(storage, len) };
    addr.as_socket()
        .ok_or_else(|| io::Error::other("an accepted connection's address is not IP"))
}
