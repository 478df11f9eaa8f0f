//! The scenarios of BENCH.md and the servers they run against. A scenario says what
//! one request is; a server spec says how to start a server the same way for each.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::bail;
use bytes::Bytes;

use crate::http::get_request;
use crate::server::ServerSpec;

/// A benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// `GET /healthz`: the HTTP floor of the same server.
    HttpStatic,
}

impl Scenario {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::HttpStatic => "http-static",
        }
    }

    /// The request every exchange sends, with `headers` added (e.g. a bearer token).
    pub fn request(self, addr: SocketAddr, headers: &[(&str, &str)]) -> Bytes {
        match self {
            Scenario::HttpStatic => get_request(addr, "/healthz", headers),
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
        ],
    }
}

/// The peers, by name.
pub const PEERS: &[&str] = &["axum"];

/// A peer as its users run it.
pub fn peer(name: &str, bin_dir: &Path) -> anyhow::Result<ServerSpec> {
    match name {
        "axum" => Ok(ServerSpec {
            name: "axum".into(),
            program: bin_dir.join("peer-axum"),
            args: vec!["--listen".into(), "{addr}".into()],
            env: vec![],
        }),
        other => bail!("unknown peer `{other}`; peers: {}", PEERS.join(", ")),
    }
}
