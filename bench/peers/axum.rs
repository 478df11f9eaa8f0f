//! The `axum` peer for `http-static`: what a team would write with axum for a health
//! endpoint, run as its documentation shows, on a one-worker tokio runtime (the bench
//! pins it to one core, as it pins StreamHub's one shard).
#![allow(missing_docs)]

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn main() -> anyhow::Result<()> {
    let listen = std::env::args()
        .skip_while(|a| a != "--listen")
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = Router::new().route("/healthz", get(healthz));
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}
