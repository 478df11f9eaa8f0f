//! Test support: starts the real `streamhub` binary on an ephemeral port, collects its
//! JSON log lines, and speaks plain HTTP/1.1 and WebSocket over real sockets (to the
//! binary, or to a node a test runs in its own process).
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub mod pg;
pub mod redis;

/// How long a test waits for something the server should do promptly before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running server process.
pub struct Server {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    logs: Arc<(Mutex<Vec<serde_json::Value>>, Condvar)>,
    /// Its own PostgreSQL database, on the PostgreSQL pass (dropped after the server).
    db: Option<Database>,
}

/// The template database the PostgreSQL pass clones for each server (`.ci/run` seeds it
/// with the demo data): with it set, every server a test starts serves from a database
/// of its own, so tests stay parallel and independent.
pub const PG_TEMPLATE: &str = "STREAMHUB_TEST_PG_TEMPLATE";

/// Set (to `uring`, say), the servers the tests start run on that IO backend
/// (`STREAMHUB_IO`), unless a test sets its own.
pub const TEST_IO: &str = "STREAMHUB_TEST_IO";

/// The IO backend the servers of this pass run, as `/metrics` and the logs name it.
pub fn io_backend() -> &'static str {
    match std::env::var(TEST_IO).as_deref() {
        Ok("uring") => "io_uring",
        _ => "epoll",
    }
}

/// This machine's PostgreSQL, for the databases the tests make.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database made for one server, dropped with it.
pub struct Database {
    /// Its name.
    pub name: String,
}

/// A name no other database of this run has (`streamhub_<what>_<pid>_<n>`).
fn database_name(what: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("streamhub_{what}_{}_{n}", std::process::id())
}

impl Database {
    /// A new, empty database (one an earlier run with the same process id left is
    /// dropped first).
    pub fn empty(what: &str) -> Database {
        let name = database_name(what);
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(&format!("CREATE DATABASE {name}"));
        Database { name }
    }

    /// A new database cloned from `template`.
    pub fn from_template(template: &str) -> Database {
        let name = database_name("t");
        // Cloning waits for sessions on the template to end (another clone's, say).
        let sql = format!("CREATE DATABASE {name} TEMPLATE {template}");
        let started = Instant::now();
        while let Err(e) = try_psql(&sql) {
            assert!(
                e.contains("is being accessed by other users") && started.elapsed() < PATIENCE,
                "psql {sql}: {e}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Database { name }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

impl Database {
    /// Runs one statement in it (`psql`), panicking with its error.
    pub fn psql(&self, sql: &str) {
        if let Err(e) = psql_at(&self.url(), sql) {
            panic!("psql {sql}: {e}");
        }
    }
}

/// Runs one statement on the tests' PostgreSQL (`psql`), panicking with its error.
pub fn psql(sql: &str) {
    if let Err(e) = try_psql(sql) {
        panic!("psql {sql}: {e}");
    }
}

/// Runs one statement on the tests' PostgreSQL (`psql`): its error, if any.
pub fn try_psql(sql: &str) -> Result<(), String> {
    psql_at(PG_ADMIN_URL, sql)
}

/// Runs one statement in the database at `url` (`psql`): its error, if any.
fn psql_at(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("running psql");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Server {
    /// Starts the binary with only the given environment (plus an ephemeral port and JSON logs).
    /// On the PostgreSQL pass ([`PG_TEMPLATE`]) it serves from a database of its own,
    /// unless the test names one (`DATABASE_URL`).
    pub fn start(env: &[(&str, &str)]) -> Server {
        let own_db = env.iter().all(|(k, _)| *k != "DATABASE_URL");
        let db = std::env::var(PG_TEMPLATE)
            .ok()
            .filter(|_| own_db)
            .map(|template| Database::from_template(&template));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamhub"));
        cmd.env_clear()
            .env("STREAMHUB_LISTEN", "127.0.0.1:0")
            .env("STREAMHUB_SHARDS", "2")
            .env("STREAMHUB_LOG_FORMAT", "json")
            .env("STREAMHUB_LOG", "info");
        if let Some(db) = &db {
            cmd.env("DATABASE_URL", db.url());
        }
        let io = std::env::var(TEST_IO).ok();
        if let Some(io) = &io {
            cmd.env("STREAMHUB_IO", io);
        }
        cmd.envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("starting streamhub");
        let stdout = child.stdout.take().unwrap();
        let logs: Arc<(Mutex<Vec<serde_json::Value>>, Condvar)> = Arc::default();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
                sink.0.lock().unwrap().push(v);
                sink.1.notify_all();
            }
        });
        let mut server = Server {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            logs,
            db,
        };
        let listening = server.wait_for_log(|l| l["message"] == "listening");
        if server.db.is_some() {
            // The PostgreSQL pass is what it says.
            server.wait_for_log(|l| l["message"] == "store: PostgreSQL");
        }
        let io_set_here = env.iter().any(|(k, _)| *k == "STREAMHUB_IO");
        if io.as_deref() == Some("uring") && !io_set_here {
            // So is the io_uring pass.
            server.wait_for_log(|l| {
                l["message"] == "io backend selected" && l["backend"] == "io_uring"
            });
        }
        server.addr = listening["addr"].as_str().unwrap().parse().unwrap();
        server
    }

    /// The shard that answered the request with this `X-Request-Id` (from the access log).
    pub fn shard_of(&self, request_id: &str) -> u64 {
        let line = self.wait_for_log(|l| l["request_id"] == request_id);
        line["shard"]
            .as_u64()
            .expect("the access line names its shard")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a log line matching `pred` and returns it.
    pub fn wait_for_log(&self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let (lock, cv) = &*self.logs;
        let deadline = Instant::now() + PATIENCE;
        let mut logs = lock.lock().unwrap();
        loop {
            if let Some(v) = logs.iter().find(|l| pred(l)) {
                return v.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no matching log line; got {logs:#?}");
            logs = cv.wait_timeout(logs, left).unwrap().0;
        }
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.logs.0.lock().unwrap().clone()
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends SIGHUP (reload the manifest).
    pub fn sighup(&self) {
        self.signal("HUP");
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, patience: Duration) -> ExitStatus {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit; its logs: {:#?}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new connection to the server.
    pub fn connect(&self) -> TcpStream {
        connect_to(self.addr)
    }

    /// One request on a new connection.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut s = self.connect();
        request(&mut s, "GET", path, headers).expect("request failed")
    }

    /// One POST with a body on a new connection.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut s = self.connect();
        request_with_body(&mut s, "POST", path, headers, body).expect("request failed")
    }

    /// POST /graphql with a JSON body, as a token's holder (or anonymously).
    pub fn graphql(&self, token: Option<&str>, body: &serde_json::Value) -> Response {
        graphql_at(self.addr, token, body)
    }
}

/// A new connection to a server at `addr` (this process's own or another).
pub fn connect_to(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connecting");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// POST /graphql with a JSON body to a server at `addr`, as a token's holder (or
/// anonymously), on a new connection.
pub fn graphql_at(addr: SocketAddr, token: Option<&str>, body: &serde_json::Value) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let mut s = connect_to(addr);
    request_with_body(
        &mut s,
        "POST",
        "/graphql",
        &headers,
        body.to_string().as_bytes(),
    )
    .expect("request failed")
}

/// Runs `node <script> <args…>` in [`js_dir`]; the one JSON line it prints (panics with
/// its stderr when it fails).
pub fn run_node(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(js_dir())
        .output()
        .expect("running node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The folder of the JavaScript clients the tests run (graphql-http, graphql-ws), with
/// its packages installed (`npm ci` the first time).
pub fn js_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if !dir.join("node_modules/graphql-http").exists() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .expect("running npm ci (Node.js and npm are needed for the client tests)");
            assert!(status.success(), "npm ci failed in {}", dir.display());
        }
    });
    dir
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test's server logs, when asked for (`STREAMHUB_TEST_LOGS=1`).
        if std::thread::panicking() && std::env::var_os("STREAMHUB_TEST_LOGS").is_some() {
            for line in self.logs() {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("[{}] {line}", self.addr);
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }

    /// Whether the server will close the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Writes one request and reads its response.
pub fn request(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    read_response(s)
}

/// Writes one request with a body and reads its response.
pub fn request_with_body(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes)?;
    read_response(s)
}

/// Reads one response; an error if the connection ends before a whole one arrives.
pub fn read_response(s: &mut TcpStream) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = read_some(s, &mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("connection closed after {} bytes of a response", buf.len()),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).expect("response head is UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = read_some(s, &mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed inside a response body",
            ));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// One `read`, again while a signal interrupts it. The kernel never restarts a read on
/// a socket with a timeout (signal(7)), and a test process gets signals: a SIGCHLD from
/// a child process (`kill`, `psql`, `pg_ctl`, ...) that one test's thread spawned can
/// interrupt any other thread's read.
pub fn read_some(s: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads until the peer closes; true if it closed (EOF or reset) rather than timing out.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut chunk = [0u8; 1024];
    loop {
        match read_some(s, &mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// The HS256 secret servers under test are started with when a test signs tokens.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

/// A token for `sub`/`login` signed with [`SECRET`], valid for an hour.
pub fn token(sub: &str, login: &str, admin: bool) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let roles: Vec<&str> = if admin { vec!["admin"] } else { vec![] };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": sub, "login": login, "roles": roles, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A minimal WebSocket client over a real socket: the handshake, masked client frames,
/// and whole server frames read one at a time.
pub struct WsClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum WsFrame {
    /// A text message, parsed as JSON.
    Text(serde_json::Value),
    /// A close with its code.
    Close(Option<u16>),
    /// A ping.
    Ping,
    /// Anything else (opcode).
    Other(u8),
}

impl WsClient {
    /// Opens `path` with extra handshake headers; panics unless the answer is 101.
    pub fn connect(server: &Server, path: &str, headers: &[(&str, &str)]) -> WsClient {
        WsClient::connect_to(server.addr, path, headers)
    }

    /// Like [`WsClient::connect`], to a server at `addr`.
    pub fn connect_to(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> WsClient {
        WsClient::handshake(connect_to(addr), path, headers)
    }

    fn handshake(mut stream: TcpStream, path: &str, headers: &[(&str, &str)]) -> WsClient {
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = read_some(&mut stream, &mut chunk).unwrap();
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        WsClient {
            stream,
            buf: buf[end..].to_vec(),
        }
    }

    /// Like [`WsClient::connect`], with a small receive buffer: a client that stops
    /// reading backs the server up quickly.
    pub fn connect_small(server: &Server, path: &str) -> WsClient {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&server.addr.into()).unwrap();
        let stream: TcpStream = sock.into();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        WsClient::handshake(stream, path, &[])
    }

    /// Sends a JSON text message.
    pub fn send_json(&mut self, v: &serde_json::Value) {
        self.send_frame(0x1, v.to_string().as_bytes());
    }

    /// Sends one frame (FIN set, masked).
    pub fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.stream
            .write_all(&masked_frame(0x80 | opcode, payload))
            .unwrap();
    }

    /// Answers the server's close with a close 1000 (and, with `fin`, shuts the write
    /// side down after it), then reads to the end of the connection: Ok once the server
    /// has closed it cleanly (EOF), the error when it was reset (on the write or the
    /// reads). Whatever arrives after the server's close frame is an error too.
    pub fn answer_close(&mut self, fin: bool) -> std::io::Result<()> {
        self.stream
            .write_all(&masked_frame(0x88, &1000u16.to_be_bytes()))?;
        if fin {
            self.stream.shutdown(std::net::Shutdown::Write)?;
        }
        let mut chunk = [0u8; 4096];
        let mut after = self.buf.len();
        loop {
            match read_some(&mut self.stream, &mut chunk)? {
                0 if after == 0 => return Ok(()),
                0 => {
                    return Err(std::io::Error::other(format!(
                        "{after} bytes after the close frame"
                    )))
                }
                n => after += n,
            }
        }
    }

    /// The next frame; None when the connection ended.
    pub fn next(&mut self) -> Option<WsFrame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 65536];
            match read_some(&mut self.stream, &mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Joins `room` on the room protocol (after `since`, if given): the `joined`
    /// message.
    pub fn join(&mut self, room: &str, since: Option<u64>) -> serde_json::Value {
        let mut m = serde_json::json!({"type": "join", "room": room});
        if let Some(s) = since {
            m["since"] = serde_json::json!(s);
        }
        self.send_json(&m);
        let j = self.next_json();
        assert_eq!(j["type"], "joined", "{j}");
        j
    }

    /// The next text message (pings skipped); panics on anything else.
    pub fn next_json(&mut self) -> serde_json::Value {
        loop {
            match self.next() {
                Some(WsFrame::Text(v)) => return v,
                Some(WsFrame::Ping) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// Reads until a close frame and returns its code (pings and messages skipped).
    pub fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next()? {
                WsFrame::Close(code) => return code,
                _ => continue,
            }
        }
    }

    /// The socket, to stop reading from it.
    pub fn socket(&self) -> &TcpStream {
        &self.stream
    }
}

/// A masked client frame: `b0` is the first byte as sent (FIN, reserved bits, opcode).
pub fn masked_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
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

fn parse_frame(b: &[u8]) -> Option<(WsFrame, usize)> {
    if b.len() < 2 {
        return None;
    }
    let opcode = b[0] & 0x0f;
    let (len, mut at) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
        127 if b.len() >= 10 => (
            u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (usize::from(n), 2),
    };
    assert_eq!(b[1] & 0x80, 0, "server frames are not masked");
    if b.len() < at + len {
        return None;
    }
    let payload = &b[at..at + len];
    at += len;
    let frame = match opcode {
        0x1 => WsFrame::Text(serde_json::from_slice(payload).expect("text messages are JSON")),
        0x8 => WsFrame::Close(
            (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
        ),
        0x9 => WsFrame::Ping,
        other => WsFrame::Other(other),
    };
    Some((frame, at))
}

/// How many connections [`close_seen_by_a_client_still_writing`] tries.
pub const CLOSE_RUNS: usize = 30;

/// 2 MiB of valid text frames of 32 KiB, for a client to keep writing past its error.
pub fn filler() -> Vec<u8> {
    (0..64)
        .flat_map(|_| masked_frame(0x81, &vec![b'x'; 32 << 10]))
        .collect()
}

/// What a client that keeps writing past its error sees, over [`CLOSE_RUNS`]
/// connections to `path` (`what` names the case): each writes all of `bytes` from a
/// thread of its own, reads
/// until the server's close frame, answers it (and shuts its write side when `fin`:
/// after a framing error the server cannot find frames any more) and reads to the end.
/// Ok when in every run the server took every byte (no reset), sent `want` and then
/// ended cleanly (EOF); otherwise how many runs did, and what some others got.
pub fn close_seen_by_a_client_still_writing(
    server: &Server,
    path: &str,
    what: &str,
    bytes: &[u8],
    fin: bool,
    want: u16,
) -> Result<(), String> {
    let bytes = Arc::new(bytes.to_vec());
    let mut good = 0;
    let mut bad = Vec::new();
    for _ in 0..CLOSE_RUNS {
        let mut c = WsClient::connect(server, path, &[]);
        let mut w = c.socket().try_clone().unwrap();
        let flood = Arc::clone(&bytes);
        let writer = std::thread::spawn(move || w.write_all(&flood));
        let code = c.close_code();
        let wrote = writer.join().unwrap();
        let end = c.answer_close(fin);
        match (code, &wrote, &end) {
            (Some(c), Ok(()), Ok(())) if c == want => good += 1,
            _ => bad.push(format!("close {code:?}, write {wrote:?}, end {end:?}")),
        }
    }
    if good == CLOSE_RUNS {
        return Ok(());
    }
    bad.truncate(3);
    Err(format!(
        "{path}, {what}: {want} in {good}/{CLOSE_RUNS} runs; e.g. {bad:?}"
    ))
}

/// A streamed response (SSE or multipart) read as it comes: the head, then the chunked
/// body, decoded.
pub struct Streamed {
    s: TcpStream,
    /// The response status.
    pub status: u16,
    /// The response headers.
    pub headers: Vec<(String, String)>,
    raw: Vec<u8>,
    body: Vec<u8>,
    ended: bool,
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// Its `id:`, when it has one.
    pub id: Option<u64>,
    /// Its `event:`.
    pub event: String,
    /// Its `data:`.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

impl Streamed {
    /// POSTs `body` to /graphql with this `Accept` (and any other headers) and reads the
    /// response head.
    pub fn open(
        addr: SocketAddr,
        accept: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Streamed {
        let mut s = connect_to(addr);
        let body = body.to_string();
        let mut req = format!(
            "POST /graphql HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nAccept: {accept}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = find(&raw, b"\r\n\r\n") {
                break i + 4;
            }
            let n = read_some(&mut s, &mut chunk).expect("reading a response head");
            assert!(n > 0, "connection closed before a response head");
            raw.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&raw[..head_end]).unwrap().to_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        raw.drain(..head_end);
        Streamed {
            s,
            status,
            headers,
            raw,
            body: Vec::new(),
            ended: false,
        }
    }

    /// A response header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Decodes whole chunks from what was read; reads more when none is whole. False at
    /// the end of the body (its last chunk) or of the connection.
    fn fill(&mut self) -> bool {
        loop {
            if self.ended {
                return false;
            }
            if let Some(line_end) = find(&self.raw, b"\r\n") {
                let size_text = std::str::from_utf8(&self.raw[..line_end]).unwrap();
                let size = usize::from_str_radix(size_text.trim(), 16).expect("a chunk size");
                let whole = line_end + 2 + size + 2;
                if self.raw.len() >= whole {
                    if size == 0 {
                        self.ended = true;
                        return false;
                    }
                    self.body
                        .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
                    self.raw.drain(..whole);
                    return true;
                }
            }
            let mut chunk = [0u8; 4096];
            match read_some(&mut self.s, &mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.raw.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Whether the body ended with its last chunk (not cut off).
    pub fn ended_cleanly(&mut self) -> bool {
        while self.fill() {}
        self.ended
    }

    /// Reads until the body holds `needle`, and takes the body up to its end; None if
    /// the body ends first.
    pub fn read_through(&mut self, needle: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.body, needle) {
                return Some(self.body.drain(..i + needle.len()).collect());
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// The next SSE event (comments skipped); None when the body ends.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let block = self.read_through(b"\n\n")?;
            let text = String::from_utf8(block).unwrap();
            let mut ev = SseEvent {
                id: None,
                event: String::new(),
                data: String::new(),
            };
            for line in text.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => ev.id = Some(value.parse().unwrap()),
                    "event" => ev.event = value.to_owned(),
                    "data" => ev.data.push_str(value),
                    _ => {}
                }
            }
            if !ev.event.is_empty() {
                return Some(ev);
            }
        }
    }
}
