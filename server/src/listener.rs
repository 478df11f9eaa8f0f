//! The shards' listening sockets: one per shard on the same address (`SO_REUSEPORT`, so
//! the kernel spreads new connections across shards), and closing them without
//! resetting connections the kernel has already accepted.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Backlog of each listener; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// Binds `count` listeners to `addr`. With port 0 the first picks a free port and the
/// others join it, so every shard listens on the same port.
pub fn bind_all(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let mut listeners: Vec<TcpListener> = Vec::with_capacity(count);
    for _ in 0..count {
        let target = match listeners.first() {
            Some(first) => first.local_addr()?,
            None => addr,
        };
        listeners.push(bind_one(target)?);
    }
    Ok(listeners)
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    // Accepted connections inherit it (those of the io_uring backend cannot be set
    // one by one: their descriptors are the ring's, not the process').
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Stops the kernel from completing new handshakes on `listener` and returns the
/// connections it had already completed, so closing the listener resets none of them.
///
/// A socket filter that drops every packet makes incoming SYNs vanish (the client
/// retries, and once the listener is closed it is refused); connections already in the
/// accept queue are then taken out one by one until it is empty. Closing a listener
/// with a non-empty queue would reset those connections although their clients
/// believe they are connected.
pub fn stop_and_drain(listener: &TcpListener) -> io::Result<Vec<(TcpStream, SocketAddr)>> {
    stop(listener)?;
    listener.set_nonblocking(true)?;
    let mut accepted = Vec::new();
    loop {
        match listener.accept() {
            Ok(conn) => accepted.push(conn),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(accepted),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Stops the kernel from completing new handshakes on `listener` (see
/// [`stop_and_drain`]).
pub fn stop(listener: &TcpListener) -> io::Result<()> {
    // BPF_RET | BPF_K with k = 0: accept 0 bytes of the packet, i.e. drop it.
    let drop_all = [libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    SockRef::from(listener).attach_filter(&drop_all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    #[test]
    fn every_listener_shares_the_port_picked_by_the_first() {
        let ls = bind_all("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let port = ls[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        for l in &ls {
            assert_eq!(l.local_addr().unwrap().port(), port);
        }
    }

    #[test]
    fn queued_connections_survive_stop_and_new_ones_are_not_accepted() {
        let l = bind_all("127.0.0.1:0".parse().unwrap(), 1)
            .unwrap()
            .remove(0);
        let addr = l.local_addr().unwrap();
        // Two clients complete their handshakes before the stop; the kernel queues them.
        let mut queued: Vec<_> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let drained = stop_and_drain(&l).unwrap();
        assert_eq!(drained.len(), 2);
        // After the stop, a new connection attempt gets no handshake from the listener.
        let late = TcpStream::connect_timeout(&addr, Duration::from_millis(300));
        assert!(late.is_err(), "a connection completed after the stop");
        drop(l);
        // The drained connections still work end to end.
        for ((server, _), client) in drained.into_iter().zip(queued.iter_mut()) {
            let mut server = server;
            server.set_nonblocking(false).unwrap();
            client.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            server.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"ping");
        }
    }
}
