//! Frames read straight from the socket (RFC 6455, 5.2), with a buffer that exists only
//! while a frame is partly read: it is given back whenever a frame has been taken whole,
//! and a read into an empty buffer goes through the stack, so an idle connection holds
//! no buffer at all. Client frames must be masked;
//! reserved bits, unknown opcodes, fragmented or long control frames are protocol
//! errors; a frame over the limit is refused before its payload is read.
//!
//! Once the server has closed for the peer's error, [`FrameReader::poll_discard`] reads
//! and throws away what the peer still sends (whole frames skipped by their headers,
//! the rest of a frame too big included, or raw bytes once the framing is lost) until
//! the peer's close frame or EOF, within a byte budget: a socket released with unread
//! bytes is answered by the kernel with a reset, which can overtake the close frame
//! and breaks the peer's writes, so the peer would never see why it was closed.

use bytes::{Buf, BytesMut};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// A frame's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Continues a fragmented message.
    Continuation,
    /// Text (a message's first frame).
    Text,
    /// Binary (a message's first frame).
    Binary,
    /// Close.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

/// One frame, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The last frame of its message.
    pub fin: bool,
    /// Its kind.
    pub kind: Kind,
    /// Its payload.
    pub payload: BytesMut,
}

/// Why no frame could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The connection ended or failed.
    #[error("the connection ended")]
    Gone,
    /// The peer broke the framing rules.
    #[error("{0}")]
    Protocol(&'static str),
    /// The frame is larger than the limit.
    #[error("frame too big")]
    TooBig,
}

/// How much one read takes at most into an empty buffer: the bytes are read onto the
/// stack first, so a connection waiting for its next frame holds no buffer at all.
const FIRST_READ: usize = 4096;

/// How much one read takes at most into a partly filled buffer.
const MAX_READ: usize = 64 * 1024;

/// How much one read takes at most while discarding: onto the stack, so discarding
/// allocates nothing.
const DISCARD_READ: usize = 16 * 1024;

/// How many bytes a peer may still send after the server closed for its error before
/// the connection is dropped anyway (see [`FrameReader::poll_discard`]).
pub const DISCARD_LIMIT: u64 = 4 << 20;

/// What is left to throw away of what a peer still sends after the server has closed
/// for its error; given to [`FrameReader::poll_discard`] until it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discard {
    /// Bytes that may still be read from the socket.
    budget: u64,
    /// Bytes of the current frame (header included) still to skip.
    skip: u64,
    /// The frame being skipped is the peer's close: done once it is skipped.
    close: bool,
    /// The framing is lost: everything is thrown away until EOF.
    raw: bool,
    /// How it ended, once it has.
    ended: Option<Discarded>,
}

/// How discarding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discarded {
    /// The peer's close frame has been read (and thrown away).
    Closed,
    /// The peer ended the connection (EOF), or it failed.
    Ended,
    /// The peer sent more than the budget: the connection is dropped as it is.
    OverBudget,
}

impl Discard {
    /// Frames are skipped whole by their headers (the payload of a frame over the limit
    /// included) until the peer's close frame or EOF, reading at most `budget` bytes.
    pub fn frames(budget: u64) -> Discard {
        Discard {
            budget,
            skip: 0,
            close: false,
            raw: false,
            ended: None,
        }
    }

    /// Every byte is thrown away until EOF (after a framing error nothing says where a
    /// frame starts), reading at most `budget` bytes.
    pub fn raw(budget: u64) -> Discard {
        Discard {
            raw: true,
            ..Discard::frames(budget)
        }
    }
}

/// Reads frames from `io`.
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    max_payload: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader refusing payloads over `max_payload` bytes.
    pub fn new(io: R, max_payload: usize) -> FrameReader<R> {
        FrameReader {
            io,
            buf: BytesMut::new(),
            max_payload,
        }
    }

    /// Polls for the next frame: whatever is buffered is parsed first, and the socket
    /// is read only for what is missing. Nothing is kept between polls but the buffer.
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, ReadError>> {
        loop {
            let need = match self.parse()? {
                Parsed::Frame(f) => return Poll::Ready(Ok(f)),
                Parsed::Need(n) => n,
            };
            let got = if self.buf.is_empty() {
                ready!(self.poll_read_into_empty(cx))
            } else {
                ready!(self.poll_read_more(cx, need))
            };
            match got {
                Ok(0) | Err(_) => return Poll::Ready(Err(ReadError::Gone)),
                Ok(_) => {}
            }
        }
    }

    /// One read while nothing is buffered: into a stack array that lives only during the
    /// call, then copied into a buffer sized to what came.
    fn poll_read_into_empty(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let mut chunk = [0u8; FIRST_READ];
        let mut rb = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
        self.buf.extend_from_slice(rb.filled());
        Poll::Ready(Ok(rb.filled().len()))
    }

    /// One read after what is buffered, of what the frame still needs (at least
    /// `FIRST_READ`, at most `MAX_READ`).
    fn poll_read_more(
        &mut self,
        cx: &mut Context<'_>,
        need: usize,
    ) -> Poll<std::io::Result<usize>> {
        let old = self.buf.len();
        // The space is zeroed before each read: a large frame comes in pieces of at
        // most `MAX_READ`, so each byte is zeroed once, not the whole rest every read.
        let want = need.saturating_sub(old).clamp(FIRST_READ, MAX_READ);
        self.buf.resize(old + want, 0);
        let mut rb = ReadBuf::new(&mut self.buf[old..]);
        let res = Pin::new(&mut self.io).poll_read(cx, &mut rb);
        let n = rb.filled().len();
        self.buf.truncate(old + n);
        ready!(res)?;
        Poll::Ready(Ok(n))
    }

    /// A whole frame taken from the buffer, or how many bytes the buffer must hold
    /// before one can be; errors as soon as the header shows them.
    fn parse(&mut self) -> Result<Parsed, ReadError> {
        let h = match self.header()? {
            Head::Need(n) => return Ok(Parsed::Need(n)),
            Head::Whole(h) => h,
        };
        if h.len > self.max_payload as u64 {
            return Err(ReadError::TooBig);
        }
        let len = h.len as usize;
        if self.buf.len() < h.size + len {
            return Ok(Parsed::Need(h.size + len));
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&self.buf[h.size - 4..h.size]);
        self.buf.advance(h.size);
        let mut payload = self.buf.split_to(len);
        unmask(&mut payload, mask);
        if self.buf.is_empty() {
            // Give the buffer back: an idle connection holds none.
            self.buf = BytesMut::new();
        }
        Ok(Parsed::Frame(Frame {
            fin: h.fin,
            kind: h.kind,
            payload,
        }))
    }

    /// The header at the front of the buffer, or how many bytes it needs to hold one;
    /// errors for headers that break the framing rules (the size limit is the caller's).
    fn header(&self) -> Result<Head, ReadError> {
        if self.buf.len() < 2 {
            return Ok(Head::Need(2));
        }
        let (b0, b1) = (self.buf[0], self.buf[1]);
        if b0 & 0x70 != 0 {
            return Err(ReadError::Protocol(
                "reserved bits set without an extension",
            ));
        }
        let kind = match b0 & 0x0f {
            0x0 => Kind::Continuation,
            0x1 => Kind::Text,
            0x2 => Kind::Binary,
            0x8 => Kind::Close,
            0x9 => Kind::Ping,
            0xA => Kind::Pong,
            _ => return Err(ReadError::Protocol("unknown opcode")),
        };
        let fin = b0 & 0x80 != 0;
        if b1 & 0x80 == 0 {
            return Err(ReadError::Protocol("client frames must be masked"));
        }
        let control = matches!(kind, Kind::Close | Kind::Ping | Kind::Pong);
        let (len, header) = match b1 & 0x7f {
            126 if self.buf.len() < 4 => return Ok(Head::Need(4)),
            126 => (u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]])), 4),
            127 if self.buf.len() < 10 => return Ok(Head::Need(10)),
            127 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            n => (u64::from(n), 2),
        };
        if control && (!fin || len > 125) {
            return Err(ReadError::Protocol(
                "control frames are whole and at most 125 bytes",
            ));
        }
        Ok(Head::Whole(Header {
            fin,
            kind,
            len,
            size: header + 4,
        }))
    }

    /// After the server has closed for the peer's error: reads and throws away what the
    /// peer still sends, as `discard` says, until the peer's close frame (read whole),
    /// EOF, or `discard`'s budget is spent. What is buffered is taken first: after a
    /// frame refused as too big, the buffer still starts with its header, so the rest
    /// of its payload is skipped without being held. Reads go through the stack and the
    /// buffer is given back at the end, so nothing is allocated for it. Once done, it
    /// stays done.
    pub fn poll_discard(&mut self, cx: &mut Context<'_>, discard: &mut Discard) -> Poll<Discarded> {
        if let Some(end) = discard.ended {
            return Poll::Ready(end);
        }
        let end = ready!(self.poll_discarding(cx, discard));
        discard.ended = Some(end);
        self.buf = BytesMut::new();
        Poll::Ready(end)
    }

    fn poll_discarding(&mut self, cx: &mut Context<'_>, d: &mut Discard) -> Poll<Discarded> {
        loop {
            // What is buffered: the rest of the frame being skipped, then whole frames
            // as far as their headers are buffered.
            while !d.raw {
                let n = d.skip.min(self.buf.len() as u64);
                self.buf.advance(n as usize);
                d.skip -= n;
                if d.skip > 0 {
                    break;
                }
                if d.close {
                    return Poll::Ready(Discarded::Closed);
                }
                match self.header() {
                    Ok(Head::Need(_)) => break,
                    Ok(Head::Whole(h)) => {
                        d.skip = (h.size as u64).saturating_add(h.len);
                        d.close = h.kind == Kind::Close;
                    }
                    Err(_) => d.raw = true,
                }
            }
            if d.raw {
                self.buf.clear();
            }
            // Then the socket, within the budget.
            if d.budget == 0 {
                return Poll::Ready(Discarded::OverBudget);
            }
            let mut chunk = [0u8; DISCARD_READ];
            let room = d.budget.min(DISCARD_READ as u64) as usize;
            let mut rb = ReadBuf::new(&mut chunk[..room]);
            if ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb)).is_err() {
                return Poll::Ready(Discarded::Ended);
            }
            let got = rb.filled();
            if got.is_empty() {
                return Poll::Ready(Discarded::Ended);
            }
            d.budget -= got.len() as u64;
            if d.raw {
                continue;
            }
            // While a frame is being skipped nothing is buffered, so what it still
            // needs comes first; only what follows it (headers) is kept.
            let thrown = d.skip.min(got.len() as u64);
            d.skip -= thrown;
            self.buf.extend_from_slice(&got[thrown as usize..]);
        }
    }
}

/// A frame header at the front of the buffer.
struct Header {
    fin: bool,
    kind: Kind,
    /// The payload's length as the header gives it.
    len: u64,
    /// The header's own length, mask included.
    size: usize,
}

/// What the front of the buffer holds.
enum Head {
    /// A whole header.
    Whole(Header),
    /// Not yet a whole header: the buffer must hold this many bytes.
    Need(usize),
}

/// What the buffer holds.
enum Parsed {
    Frame(Frame),
    Need(usize),
}

/// XORs `data` with the 4-byte `mask`, eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<R: AsyncRead + Unpin> FrameReader<R> {
        async fn frame(&mut self) -> Result<Frame, ReadError> {
            std::future::poll_fn(|cx| self.poll_frame(cx)).await
        }
    }

    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut f = vec![b0];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    async fn read(bytes: Vec<u8>, max: usize) -> Vec<Result<Frame, ReadError>> {
        let mut r = FrameReader::new(&bytes[..], max);
        let mut out = Vec::new();
        loop {
            let f = r.frame().await;
            let end = f.is_err();
            out.push(f);
            if end {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn frames_of_every_length_form_come_out_unmasked() {
        let long = vec![7u8; 70_000];
        let mut bytes = masked(0x81, b"hello");
        bytes.extend(masked(0x02, &[9u8; 300]));
        bytes.extend(masked(0x80, &long));
        bytes.extend(masked(0x89, b"p"));
        let got = read(bytes, 100_000).await;
        let f = |i: usize| got[i].as_ref().unwrap();
        assert_eq!(
            (f(0).kind, f(0).fin, &f(0).payload[..]),
            (Kind::Text, true, &b"hello"[..])
        );
        assert_eq!(
            (f(1).kind, f(1).fin, f(1).payload.len()),
            (Kind::Binary, false, 300)
        );
        assert!(f(1).payload.iter().all(|&b| b == 9));
        assert_eq!(
            (f(2).kind, &f(2).payload[..]),
            (Kind::Continuation, &long[..])
        );
        assert_eq!(f(3).kind, Kind::Ping);
        assert_eq!(got[4], Err(ReadError::Gone));
    }

    #[tokio::test]
    async fn broken_frames_are_refused_before_their_payload() {
        assert_eq!(
            read(masked(0xC1, b"x"), 10).await[0],
            Err(ReadError::Protocol(
                "reserved bits set without an extension"
            ))
        );
        assert!(matches!(
            read(masked(0x83, b"x"), 10).await[0],
            Err(ReadError::Protocol(_))
        ));
        assert!(
            matches!(
                read(masked(0x09, b"x"), 10).await[0],
                Err(ReadError::Protocol(_))
            ),
            "fragmented ping"
        );
        assert!(matches!(
            read(masked(0x89, &[0; 126]), 1000).await[0],
            Err(ReadError::Protocol(_))
        ));
        assert_eq!(
            read(masked(0x81, &[b'a'; 11]), 10).await[0],
            Err(ReadError::TooBig)
        );
        // Unmasked client frame.
        assert!(matches!(
            read(vec![0x81, 0x01, b'a'], 10).await[0],
            Err(ReadError::Protocol(_))
        ));
    }

    #[tokio::test]
    async fn frames_arriving_in_pieces_are_whole_and_an_idle_reader_holds_no_buffer() {
        let (mut client, server_side) = tokio::io::duplex(64);
        let mut r = FrameReader::new(server_side, 1 << 20);
        let mut bytes = masked(0x81, &[b'x'; 300]);
        bytes.extend(masked(0x81, b"second"));
        let send = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            // Small pieces: the header, the mask and the payload come in several reads.
            for piece in bytes.chunks(7) {
                client.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        });
        let first = r.frame().await.unwrap();
        assert_eq!(&first.payload[..], &[b'x'; 300][..]);
        let second = r.frame().await.unwrap();
        assert_eq!(&second.payload[..], b"second");
        assert_eq!(r.buf.capacity(), 0, "nothing held between frames");
        drop(send.await.unwrap());
        assert_eq!(r.frame().await, Err(ReadError::Gone));
    }

    impl<R: AsyncRead + Unpin> FrameReader<R> {
        async fn discard(&mut self, d: &mut Discard) -> Discarded {
            std::future::poll_fn(|cx| self.poll_discard(cx, d)).await
        }
    }

    #[tokio::test]
    async fn after_a_frame_too_big_its_rest_and_later_frames_are_skipped_up_to_the_close() {
        // 100 KiB refused at its header (only the first 4 KiB are read by then), a ping,
        // the peer's close, then bytes the peer should not have sent.
        let mut bytes = masked(0x81, &[b'x'; 100 << 10]);
        bytes.extend(masked(0x89, b"p"));
        bytes.extend(masked(0x88, &1000u16.to_be_bytes()));
        bytes.extend(vec![0u8; 64 << 10]);
        let mut r = FrameReader::new(&bytes[..], 1000);
        assert_eq!(r.frame().await, Err(ReadError::TooBig));
        let mut d = Discard::frames(1 << 20);
        assert_eq!(r.discard(&mut d).await, Discarded::Closed);
        assert!(!r.io.is_empty(), "reading stopped at the close");
        assert_eq!(r.buf.capacity(), 0, "the buffer is given back");
        assert_eq!(
            r.discard(&mut d).await,
            Discarded::Closed,
            "done stays done"
        );
    }

    #[tokio::test]
    async fn a_close_split_across_reads_is_found_whole() {
        let (mut client, server_side) = tokio::io::duplex(64);
        let mut r = FrameReader::new(server_side, 10);
        let mut bytes = masked(0x81, &[b'x'; 300]);
        bytes.extend(masked(0x81, b"short"));
        bytes.extend(masked(0x88, &1000u16.to_be_bytes()));
        let send = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in bytes.chunks(3) {
                client.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        });
        assert_eq!(r.frame().await, Err(ReadError::TooBig));
        assert_eq!(
            r.discard(&mut Discard::frames(1 << 20)).await,
            Discarded::Closed
        );
        drop(send.await.unwrap());
    }

    #[tokio::test]
    async fn after_a_framing_error_everything_up_to_eof_is_thrown_away() {
        let mut bytes = masked(0xC1, b"x");
        bytes.extend(vec![0x88u8; 50 << 10]);
        let mut r = FrameReader::new(&bytes[..], 1000);
        assert!(matches!(r.frame().await, Err(ReadError::Protocol(_))));
        let mut d = Discard::raw(1 << 20);
        assert_eq!(r.discard(&mut d).await, Discarded::Ended);
        assert!(r.io.is_empty());
        // Frame by frame, a broken header further on also means reading to the end.
        let mut bytes = masked(0x81, b"fine");
        bytes.extend(masked(0x01, b"then")[..2].iter().map(|b| b & 0x7f));
        bytes.extend(vec![0u8; 50 << 10]);
        let mut r = FrameReader::new(&bytes[..], 1000);
        assert_eq!(
            r.discard(&mut Discard::frames(1 << 20)).await,
            Discarded::Ended
        );
        assert!(r.io.is_empty());
    }

    #[tokio::test]
    async fn no_more_than_the_budget_is_read() {
        let mut bytes = masked(0x81, &vec![b'x'; 1 << 20]);
        bytes.extend(masked(0x88, b""));
        let mut r = FrameReader::new(&bytes[..], 1000);
        assert_eq!(r.frame().await, Err(ReadError::TooBig));
        let left = r.io.len();
        let mut d = Discard::frames(64 << 10);
        assert_eq!(r.discard(&mut d).await, Discarded::OverBudget);
        assert_eq!(left - r.io.len(), 64 << 10);
    }
}
