//! The driver against real loopback sockets: operations complete beside tokio's timers,
//! buffers stay with the driver until their completions (a dropped future, a peer
//! reset), and the file table is never filled past its headroom.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::accept::{Acceptor, HEADROOM};
use super::driver::{install, Driver};

/// Runs `f` on a current-thread runtime whose thread has a driver with a file table of
/// `table` slots (what the shard's runtime has).
fn on_ring<F, Fut>(table: u32, f: F)
where
    F: FnOnce(Rc<Driver>) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(super::driver::flush_this_thread)
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let driver = install(Driver::new(table).unwrap());
        f(driver).await;
    });
}

/// Waits until the driver holds no operation, no descriptor and no provided buffer:
/// everything it was handed came back.
async fn settled(driver: &Driver) {
    for _ in 0..500 {
        if driver.in_flight() == 0 && driver.open() == 0 && driver.buffers_taken() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the driver did not settle: {driver:?}");
}

/// The next connection on `l`, accepted by an acceptor that then goes.
async fn accept_one(l: &TcpListener) -> super::stream::UringStream {
    let mut acceptor = Acceptor::new(l);
    let (s, _) = acceptor.accept().await.unwrap();
    s
}

fn listener() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    l
}

#[test]
fn a_connection_echoes_and_gives_everything_back_when_dropped() {
    on_ring(256, |driver| async move {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"hello ring").unwrap();
            let mut back = [0u8; 10];
            c.read_exact(&mut back).unwrap();
            (c.local_addr().unwrap(), back)
        });
        let mut acceptor = Acceptor::new(&l);
        let (mut s, peer) = acceptor.accept().await.unwrap();
        // A timer on the same runtime still fires while the ring works.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut got = [0u8; 10];
        s.read_exact(&mut got).await.unwrap();
        s.write_all(&got).await.unwrap();
        s.flush().await.unwrap();
        let (client_addr, back) = tokio::task::spawn_blocking(move || client.join().unwrap())
            .await
            .unwrap();
        assert_eq!(&back, b"hello ring");
        assert_eq!(peer, client_addr, "the accept's address is the peer's");
        assert_eq!(driver.open(), 1);
        drop(s);
        drop(acceptor);
        settled(&driver).await;
    });
}

#[test]
fn every_connection_is_accepted_whichever_armed_accept_the_kernel_gives_it_to() {
    on_ring(256, |driver| async move {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let mut acceptor = Acceptor::new(&l);
        // One connection at a time, each meeting every accept armed: the kernel gives
        // it to any of them, not necessarily the first armed, and it must be taken
        // all the same (a burst would hide a missed one behind the next).
        for n in 0..200 {
            let clients: Vec<TcpStream> = (0..1 + n % 3)
                .map(|_| TcpStream::connect(addr).unwrap())
                .collect();
            let mut peers = Vec::new();
            for _ in &clients {
                let next = tokio::time::timeout(Duration::from_secs(20), acceptor.accept()).await;
                let (stream, peer) = next.expect("a connection was never accepted").unwrap();
                peers.push(peer);
                drop(stream);
            }
            for c in &clients {
                assert!(peers.contains(&c.local_addr().unwrap()));
            }
        }
        drop(acceptor);
        settled(&driver).await;
    });
}

#[test]
fn a_large_message_comes_whole_through_the_provided_buffers_and_they_all_go_back() {
    on_ring(256, |driver| async move {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let client = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(&sent).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut back = [0u8; 1];
            let _ = c.read(&mut back);
        });
        let mut s = accept_one(&l).await;
        // Small reads: most of each buffer is kept aside for the next one.
        let mut got = Vec::new();
        let mut small = [0u8; 1000];
        loop {
            let n = s.read(&mut small).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the bytes came in order, none lost");
        assert_eq!(
            driver.buffers_taken(),
            0,
            "every buffer went back once copied out"
        );
        drop(s);
        tokio::task::spawn_blocking(move || client.join().unwrap())
            .await
            .unwrap();
        settled(&driver).await;
    });
}

#[test]
fn a_read_dropped_while_the_receive_is_in_flight_leaks_nothing() {
    on_ring(256, |driver| async move {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let mut s = accept_one(&l).await;
        // The client sends nothing: the read's receive stays in flight until the
        // timeout drops the read, and then the stream.
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await;
        assert!(read.is_err(), "nothing was sent, so nothing was read");
        assert!(driver.in_flight() >= 1, "the receive is in flight");
        drop(s);
        settled(&driver).await;
        drop(client);
    });
}

#[test]
fn a_peer_reset_mid_send_fails_the_write_and_leaks_nothing() {
    on_ring(256, |driver| async move {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let mut s = accept_one(&l).await;
        // The client reads nothing, then resets (linger 0) while the server sends more
        // than the socket buffers hold.
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let writer = async {
            loop {
                if let Err(e) = s.write_all(&chunk).await {
                    return e;
                }
                if let Err(e) = s.flush().await {
                    return e;
                }
            }
        };
        let reset = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(client);
            std::future::pending::<()>().await;
        };
        let err = tokio::select! {
            e = writer => e,
            () = reset => unreachable!(),
        };
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{err}"
        );
        drop(s);
        settled(&driver).await;
    });
}

#[test]
fn accepts_stop_short_of_a_full_table_and_lose_no_connection() {
    // Room for two accepts beyond the headroom.
    on_ring(HEADROOM + 2, |driver| async move {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let clients: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut acceptor = Acceptor::new(&l);
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(acceptor.accept().await.unwrap());
        }
        // The table has no room beyond its headroom: the other two wait in the
        // listener's queue, not in a failed accept.
        let third = tokio::time::timeout(Duration::from_millis(100), acceptor.accept()).await;
        assert!(third.is_err(), "a third accept needs a slot freed first");
        assert_eq!(driver.open(), 2);
        // Closing one frees its slot; the waiting connections are accepted in turn.
        held.remove(0);
        held.push(acceptor.accept().await.unwrap());
        held.remove(0);
        held.push(acceptor.accept().await.unwrap());
        let peers: Vec<_> = held.iter().map(|(_, p)| *p).collect();
        for c in &clients[2..] {
            assert!(peers.contains(&c.local_addr().unwrap()), "{peers:?}");
        }
        drop(held);
        drop(acceptor);
        settled(&driver).await;
        drop(clients);
    });
}

#[test]
fn closing_the_acceptor_hands_back_what_it_had_taken() {
    on_ring(256, |driver| async move {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let mut acceptor = Acceptor::new(&l);
        // Arm the accepts, then let a connection arrive for one of them.
        let first = tokio::time::timeout(Duration::from_millis(20), acceptor.accept()).await;
        assert!(first.is_err());
        let client = TcpStream::connect(addr).unwrap();
        for _ in 0..4000 {
            if driver.open() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(driver.open(), 1, "an armed accept took the connection");
        let taken = acceptor.close().await;
        assert_eq!(
            taken.len(),
            1,
            "the armed accept that took the connection hands it back"
        );
        assert_eq!(taken[0].1, client.local_addr().unwrap());
        drop(taken);
        settled(&driver).await;
    });
}

#[test]
fn one_reap_takes_the_completions_that_overflowed_the_queue() {
    on_ring(16, |driver| async move {
        let n = super::driver::CQ_ENTRIES as usize * 2;
        let ids: Vec<_> = (0..n)
            .map(|_| {
                // SAFETY: a no-op points into no memory.
                unsafe {
                    driver.submit(
                        io_uring::opcode::Nop::new().build(),
                        super::driver::Keep::Nothing,
                        super::driver::Kind::Plain,
                    )
                }
            })
            .collect();
        // Every no-op completes on submission, twice what the queue holds.
        driver.flush();
        driver.reap();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let done = ids
            .iter()
            .filter(|&&id| driver.poll(id, &mut cx).is_ready())
            .count();
        assert_eq!(done, n, "completions left behind in the kernel's overflow");
        settled(&driver).await;
    });
}
