//! streamhub-bench: load generators and the peer servers StreamHub is compared with.
//!
//! Owns: the closed- and open-loop HTTP and WebSocket load generators, HDR histogram
//! output in the JSON of `shared/BENCH.md`, the `compare` driver that runs StreamHub and
//! a peer side by side on pinned cores, and the peers in `bench/peers/`.
//!
//! Must not know: the server's internals; it talks to servers only over sockets.
//!
//! Status: the crate exists so the workspace has its final shape; the generator lands
//! with issue 3. Until then `perf/RESULTS.md` figures come from `wrk`.
