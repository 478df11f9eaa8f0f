//! Limits at the edge: request rates per client ([`rate`]). Size and depth limits sit
//! with what they bound (body and header sizes in `config` and `http`; GraphQL depth,
//! aliases and complexity with the engine; WebSocket frames with the sessions).

pub mod rate;
