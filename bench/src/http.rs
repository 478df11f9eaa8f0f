//! The HTTP/1.1 load generator: keep-alive connections on one pinned thread, each
//! sending a pre-encoded request and reading the response with a minimal parser.
//!
//! Closed-loop (each connection sends its next request when the last one is answered)
//! measures throughput; open-loop ([`crate::schedule`]) measures latency at a fixed rate.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::hist::Latency;
use crate::pacer::Pacer;
use crate::schedule::Schedule;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Each connection sends as soon as its previous request is answered.
    Closed,
    /// `rate` requests per second in all, latency from each request's intended time.
    Open {
        /// Requests per second, over all connections.
        rate: f64,
    },
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The server.
    pub addr: SocketAddr,
    /// Whole requests, sent as they are: connection `i` sends `requests[i % len]` on
    /// every exchange (one request for all, or one per user).
    pub requests: Vec<Bytes>,
    /// Keep-alive connections.
    pub connections: u32,
    /// How long to send for.
    pub duration: Duration,
    /// Pacing.
    pub pace: Pace,
    /// Stop after this many requests in all (for instruction counts).
    pub max_requests: Option<u64>,
    /// A label for the progress line on stderr; no progress line when None.
    pub progress: Option<String>,
}

/// What a load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Latency of every answered request.
    pub latency: Latency,
    /// Requests answered with a 2xx or 3xx status.
    pub requests: u64,
    /// Requests that failed or got a 4xx or 5xx status.
    pub errors: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Open-loop only: how late the generator sent requests whose connection was free at
    /// their intended time. Large values mean the generator, not the server, was slow.
    pub send_lag: Latency,
}

impl LoadResult {
    /// Answered requests per second.
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// A POST request with a body, a `Host` header and extra headers, ready to send.
pub fn post_request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
) -> Bytes {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    Bytes::from(bytes)
}

/// A GET request with a `Host` header and extra headers, ready to send.
pub fn get_request(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> Bytes {
    let mut r = format!("GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    Bytes::from(r)
}

#[derive(Default)]
struct Counters {
    sent: Cell<u64>,
    answered: Cell<u64>,
    errors: Cell<u64>,
}

/// Runs `spec` on the current thread and returns what it measured.
pub async fn run(spec: LoadSpec) -> anyhow::Result<LoadResult> {
    // Connect everything before the clock starts.
    let mut streams = Vec::with_capacity(spec.connections as usize);
    for _ in 0..spec.connections {
        streams.push(connect(spec.addr).await?);
    }
    let spec = Rc::new(spec);
    let counters = Rc::new(Counters::default());
    let start = Instant::now();
    let deadline = start + spec.duration;
    let schedule = match spec.pace {
        Pace::Closed => None,
        Pace::Open { rate } => Some(Schedule::new(start, rate, spec.connections)),
    };

    let local = tokio::task::LocalSet::new();
    let (latency, send_lag) = local
        .run_until(async {
            let progress = spec.progress.clone().map(|label| {
                tokio::task::spawn_local(progress_line(
                    label,
                    Rc::clone(&counters),
                    start,
                    spec.duration,
                ))
            });
            let pacer = schedule.map(|_| Pacer::new(spec.connections));
            let pacer_task = pacer.clone().map(|p| tokio::task::spawn_local(p.run()));
            let tasks: Vec<_> = streams
                .into_iter()
                .enumerate()
                .map(|(i, stream)| {
                    tokio::task::spawn_local(connection(
                        i as u32,
                        stream,
                        Rc::clone(&spec),
                        Rc::clone(&counters),
                        deadline,
                        schedule.zip(pacer.clone()),
                    ))
                })
                .collect();
            let mut latency = Latency::default();
            let mut send_lag = Latency::default();
            for t in tasks {
                let (l, lag) = t.await.context("a load connection panicked")?;
                latency.merge(&l);
                send_lag.merge(&lag);
            }
            if let Some(p) = progress {
                p.abort();
            }
            if let Some(p) = pacer_task {
                p.abort();
            }
            anyhow::Ok((latency, send_lag))
        })
        .await?;
    Ok(LoadResult {
        latency,
        send_lag,
        requests: counters.answered.get(),
        errors: counters.errors.get(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn connection(
    id: u32,
    mut stream: TcpStream,
    spec: Rc<LoadSpec>,
    counters: Rc<Counters>,
    deadline: Instant,
    schedule: Option<(Schedule, Rc<Pacer>)>,
) -> (Latency, Latency) {
    let mut latency = Latency::default();
    let mut send_lag = Latency::default();
    let mut buf = Vec::with_capacity(16 * 1024);
    let request = spec.requests[id as usize % spec.requests.len()].clone();
    let mut k = 0u64;
    loop {
        let intended = match &schedule {
            Some((s, pacer)) => {
                let t = s.intended(id, k);
                if t >= deadline {
                    break;
                }
                // A connection still busy past its due time sends at once; its latency
                // counts from the due time all the same (coordinated omission).
                if Instant::now() < t {
                    pacer.wait(id, t).await;
                    send_lag.record(Instant::now().saturating_duration_since(t));
                }
                t
            }
            None => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                now
            }
        };
        if spec
            .max_requests
            .is_some_and(|max| counters.sent.get() >= max)
        {
            break;
        }
        counters.sent.set(counters.sent.get() + 1);
        k += 1;
        match exchange(&mut stream, &request, &mut buf).await {
            Ok(resp) => {
                if resp.status < 400 {
                    latency.record(intended.elapsed());
                    counters.answered.set(counters.answered.get() + 1);
                } else {
                    counters.errors.set(counters.errors.get() + 1);
                }
                if resp.close {
                    match connect(spec.addr).await {
                        Ok(s) => stream = s,
                        Err(_) => break,
                    }
                }
            }
            Err(_) => {
                counters.errors.set(counters.errors.get() + 1);
                match connect(spec.addr).await {
                    Ok(s) => stream = s,
                    Err(_) => break,
                }
            }
        }
    }
    (latency, send_lag)
}

async fn progress_line(label: String, counters: Rc<Counters>, start: Instant, total: Duration) {
    let mut last = 0u64;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    loop {
        tick.tick().await;
        let now = counters.answered.get();
        let line = format!(
            "\r{label}: {:>4.0}s/{:.0}s {:>10} req/s, {} errors",
            start.elapsed().as_secs_f64(),
            total.as_secs_f64(),
            now - last,
            counters.errors.get()
        );
        // Progress goes to stderr so stdout stays the result.
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        last = now;
    }
}

/// A response as far as the load generator cares.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Whether the server closes the connection after it.
    pub close: bool,
}

/// Sends `request` and reads one whole response into `buf`.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> anyhow::Result<ResponseHead> {
    stream.write_all(request).await?;
    buf.clear();
    loop {
        if let Some(done) = parse_response(buf)? {
            return Ok(done);
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        let n = stream.read_buf(buf).await?;
        if n == 0 {
            anyhow::bail!("connection closed mid-response");
        }
    }
}

/// Parses a response from the start of `buf`: Some once it is complete.
pub fn parse_response(buf: &[u8]) -> anyhow::Result<Option<ResponseHead>> {
    let Some(head_end) = memmem::find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = &buf[..head_end];
    if head.len() < 12 || !head.starts_with(b"HTTP/1.") {
        anyhow::bail!("not an HTTP/1.x response");
    }
    let status: u16 = std::str::from_utf8(&head[9..12])?.parse()?;
    let mut content_length = None;
    let mut chunked = false;
    let mut close = head.starts_with(b"HTTP/1.0");
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = Some(std::str::from_utf8(value)?.parse::<usize>()?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value.eq_ignore_ascii_case(b"close");
        }
    }
    let body = &buf[head_end + 4..];
    let complete = if chunked {
        chunked_complete(body)?
    } else {
        body.len() >= content_length.unwrap_or(0)
    };
    Ok(complete.then_some(ResponseHead { status, close }))
}

/// Whether a chunked body is complete.
fn chunked_complete(mut body: &[u8]) -> anyhow::Result<bool> {
    loop {
        let Some(eol) = memmem::find(body, b"\r\n") else {
            return Ok(false);
        };
        let size_text = std::str::from_utf8(&body[..eol])?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)?;
        let after = eol + 2;
        if size == 0 {
            // No trailers: the final CRLF follows.
            return Ok(body.len() >= after + 2);
        }
        if body.len() < after + size + 2 {
            return Ok(false);
        }
        body = &body[after + size + 2..];
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_responses_complete_when_the_body_is_in() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel";
        assert_eq!(parse_response(r).unwrap(), None);
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            parse_response(r).unwrap(),
            Some(ResponseHead {
                status: 200,
                close: false
            })
        );
        let r =
            b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            parse_response(r).unwrap(),
            Some(ResponseHead {
                status: 503,
                close: true
            })
        );
    }

    #[test]
    fn chunked_responses_complete_at_the_last_chunk() {
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        let mut r = head.clone();
        r.extend_from_slice(b"5\r\nhello\r\n");
        assert_eq!(parse_response(&r).unwrap(), None);
        r.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(parse_response(&r).unwrap().unwrap().status, 200);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn closed_and_open_loop_runs_count_every_request_against_a_real_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A minimal keep-alive server on another thread.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                loop {
                    let (mut s, _) = listener.accept().await.unwrap();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        let mut pending = Vec::new();
                        loop {
                            let n = match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            pending.extend_from_slice(&buf[..n]);
                            while let Some(i) = memmem::find(&pending, b"\r\n\r\n") {
                                pending.drain(..i + 4);
                                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                                if s.write_all(ok).await.is_err() {
                                    return;
                                }
                            }
                        }
                    });
                }
            });
        });
        let spec = LoadSpec {
            addr,
            requests: vec![get_request(addr, "/", &[])],
            connections: 4,
            duration: Duration::from_secs(60),
            pace: Pace::Closed,
            max_requests: Some(1_000),
            progress: None,
        };
        let r = run(spec.clone()).await.unwrap();
        assert_eq!(r.requests, 1_000);
        assert_eq!(r.errors, 0);
        assert_eq!(r.latency.count(), 1_000);

        let open = LoadSpec {
            pace: Pace::Open { rate: 2_000.0 },
            duration: Duration::from_millis(500),
            max_requests: None,
            ..spec
        };
        let r = run(open).await.unwrap();
        // The schedule holds exactly rate x duration requests.
        assert_eq!(r.requests, 1_000);
        assert_eq!(r.errors, 0);
    }
}
