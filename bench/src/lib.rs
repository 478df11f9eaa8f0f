//! streamhub-bench: load generators and the peer servers StreamHub is compared with.
//!
//! Owns: the HTTP/1.1 load generator, closed-loop for throughput and open-loop with
//! coordinated-omission correction for latency ([`http`], [`schedule`]); HDR latency
//! histograms ([`hist`]); the WebSocket client machinery that spreads connections over
//! processes and source addresses and times deliveries ([`ws`]); CPU and memory probes
//! ([`procfs`]); starting servers pinned to a core ([`server`]); the scenarios and
//! peers ([`scenario`], `bench/peers/`); `compare` ([`compare`]); the JSON of BENCH.md
//! and the stdout table ([`report`]); latency charts ([`plot`]); the WebSocket fan-out
//! scenario ([`fanout`]) and the same across two nodes through Redis ([`cluster`]).
//!
//! Must not know: the server's internals; it talks to servers only over sockets.

pub mod cluster;
pub mod compare;
pub mod fanout;
pub mod hist;
pub mod http;
pub mod pacer;
pub mod peers;
pub mod plot;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod server;
pub mod ws;
