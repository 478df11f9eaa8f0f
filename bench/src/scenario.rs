//! The scenarios of BENCH.md and the servers they run against. A scenario says what
//! one request is; a server spec says how to start a server the same way for each.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use serde_json::json;

use crate::http::{get_request, parse_response, post_request};
use crate::server::ServerSpec;

/// A benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// `GET /healthz`: the HTTP floor of the same server.
    HttpStatic,
    /// The channel-page query as a persisted GET (APQ hash, registered once first).
    GqlPersisted,
    /// The channel-page query sent as text by POST.
    GqlText,
    /// `sendChatMessage` by many users (one user per connection).
    GqlMutation,
}

/// The channel-page query of BENCH.md: what a viewer's page load sends.
pub const CHANNEL_PAGE: &str = include_str!("../queries/channel-page.graphql");

const SEND: &str = "mutation Send($c: ID!, $b: String!) { sendChatMessage(channelId: $c, body: $b) { id seq sentAt } }";

/// The HS256 secret the servers under test verify the scenario's tokens with.
pub const BENCH_SECRET: &str = "streamhub-bench-secret-0123456789abcdef";

/// The demo users the mutation scenario sends as (`u1`... of the small dataset).
const MUTATION_USERS: u32 = 150;

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn apq_extensions() -> String {
    json!({"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(CHANNEL_PAGE)}}).to_string()
}

/// A bearer token for demo user `u<n>`, signed with [`BENCH_SECRET`].
pub fn token(n: u32) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 24 * 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": format!("u{n}"), "login": format!("user{n}"), "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(BENCH_SECRET.as_bytes()),
    )
    .expect("signing a token")
}

impl Scenario {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::HttpStatic => "http-static",
            Scenario::GqlPersisted => "gql-persisted",
            Scenario::GqlText => "gql-text",
            Scenario::GqlMutation => "gql-mutation",
        }
    }

    /// The requests the connections send, with `headers` added (e.g. a bearer token):
    /// one for all, or one per user.
    pub fn requests(self, addr: SocketAddr, headers: &[(&str, &str)]) -> Vec<Bytes> {
        let json = "application/json";
        match self {
            Scenario::HttpStatic => vec![get_request(addr, "/healthz", headers)],
            Scenario::GqlPersisted => {
                let qs: String = form_urlencode(&[
                    ("operationName", "ChannelPage"),
                    ("variables", "{\"login\":\"alice\"}"),
                    ("extensions", &apq_extensions()),
                ]);
                vec![get_request(addr, &format!("/graphql?{qs}"), headers)]
            }
            Scenario::GqlText => {
                let body = json!({"query": CHANNEL_PAGE, "operationName": "ChannelPage", "variables": {"login": "alice"}});
                vec![post_request(
                    addr,
                    "/graphql",
                    headers,
                    json,
                    body.to_string().as_bytes(),
                )]
            }
            Scenario::GqlMutation => (1..=MUTATION_USERS)
                .map(|n| {
                    let auth = format!("Bearer {}", token(n));
                    let mut h = headers.to_vec();
                    h.push(("Authorization", &auth));
                    let body = json!({"query": SEND, "operationName": "Send",
                        "variables": {"c": "ch_u1", "b": format!("hello from u{n}")}});
                    post_request(addr, "/graphql", &h, json, body.to_string().as_bytes())
                })
                .collect(),
        }
    }

    /// Run once against a started server before the load: registers the persisted
    /// query (APQ: hash and text), and checks that the scenario's request is answered
    /// with data, so a run never measures error responses.
    pub fn setup(self, addr: SocketAddr) -> anyhow::Result<()> {
        if self == Scenario::GqlPersisted {
            let body = json!({"query": CHANNEL_PAGE, "operationName": "ChannelPage",
                "variables": {"login": "alice"}, "extensions": serde_json::from_str::<serde_json::Value>(&apq_extensions())?});
            let req = post_request(
                addr,
                "/graphql",
                &[],
                "application/json",
                body.to_string().as_bytes(),
            );
            exchange_once(addr, &req).context("registering the persisted query")?;
        }
        if self != Scenario::HttpStatic {
            let req = &self.requests(addr, &[])[0];
            let body = String::from_utf8_lossy(&exchange_once(addr, req)?).into_owned();
            if body.contains("\"errors\"") || !body.contains("\"data\"") {
                bail!("{} answered with errors: {body}", self.name());
            }
        }
        Ok(())
    }
}

fn form_urlencode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends one request on a new connection and returns the body of a 2xx answer (raw:
/// still chunked if the server chunked it).
fn exchange_once(addr: SocketAddr, request: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(head) = parse_response(&buf)? {
            if !(200..300).contains(&head.status) {
                bail!("status {}: {}", head.status, String::from_utf8_lossy(&buf));
            }
            let start = memchr::memmem::find(&buf, b"\r\n\r\n").map_or(0, |i| i + 4);
            return Ok(buf[start..].to_vec());
        }
    }
}

/// StreamHub as the scenario runs it: one shard (one core), access log off, as the
/// peers log nothing per request.
pub fn streamhub(bin_dir: &Path) -> ServerSpec {
    ServerSpec {
        name: "streamhub".into(),
        program: bin_dir.join("streamhub"),
        args: vec![],
        env: vec![
            ("STREAMHUB_LISTEN".into(), "{addr}".into()),
            ("STREAMHUB_SHARDS".into(), "1".into()),
            ("STREAMHUB_LOG".into(), "warn".into()),
            ("STREAMHUB_JWT_SECRET".into(), BENCH_SECRET.into()),
            // The load comes from one address and a few users: limits would measure
            // 429s. The peers have none.
            ("STREAMHUB_RATE_QUERY".into(), "off".into()),
            ("STREAMHUB_RATE_MUTATION".into(), "off".into()),
            ("STREAMHUB_RATE_CHAT".into(), "off".into()),
            ("STREAMHUB_MAX_CONNECTIONS_PER_IP".into(), "0".into()),
        ],
    }
}

/// The peers, by name.
pub const PEERS: &[&str] = &["axum", "async-graphql", "tungstenite-hub"];

/// A peer as its users run it.
pub fn peer(name: &str, bin_dir: &Path) -> anyhow::Result<ServerSpec> {
    match name {
        "axum" => Ok(ServerSpec {
            name: "axum".into(),
            program: bin_dir.join("peer-axum"),
            args: vec!["--listen".into(), "{addr}".into()],
            env: vec![],
        }),
        "async-graphql" => Ok(ServerSpec {
            name: "async-graphql".into(),
            program: bin_dir.join("peer-async-graphql"),
            args: vec!["--listen".into(), "{addr}".into()],
            env: vec![("PEER_JWT_SECRET".into(), BENCH_SECRET.into())],
        }),
        "tungstenite-hub" => Ok(ServerSpec {
            name: "tungstenite-hub".into(),
            program: bin_dir.join("peer-tungstenite-hub"),
            args: vec!["--listen".into(), "{addr}".into()],
            env: vec![],
        }),
        other => bail!("unknown peer `{other}`; peers: {}", PEERS.join(", ")),
    }
}
