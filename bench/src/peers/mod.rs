//! The peers' own code, where a peer is more than a main: the `async-graphql` schema is
//! shared by its binary (`bench/peers/async_graphql.rs`) and the corpus test; the
//! `redis` peer's clients run in the bench's own worker processes.

pub mod async_graphql;
pub mod redis;
