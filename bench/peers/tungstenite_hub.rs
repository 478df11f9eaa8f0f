//! The `tungstenite-hub` peer for `ws-fanout`: what a team would write with axum's
//! WebSocket support (tokio-tungstenite underneath) and one `tokio::sync::broadcast`
//! channel per room, speaking the room protocol's `join`, `send` and `message` (and
//! `auth`, accepted without a check: the bench's publisher sends one). One-worker tokio
//! runtime, as the bench pins it to one core. `GET /rooms/<id>/members` answers the
//! number of joined connections, so the bench knows when everyone has joined.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::broadcast;

#[derive(Clone, Default)]
struct Hub {
    rooms: Arc<Mutex<HashMap<String, Room>>>,
}

#[derive(Clone)]
struct Room {
    tx: broadcast::Sender<Arc<str>>,
    seq: Arc<AtomicU64>,
    members: Arc<AtomicU64>,
}

impl Hub {
    fn room(&self, id: &str) -> Room {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        rooms
            .entry(id.to_owned())
            .or_insert_with(|| Room {
                tx: broadcast::channel(1024).0,
                seq: Arc::default(),
                members: Arc::default(),
            })
            .clone()
    }
}

async fn ws(State(hub): State<Hub>, upgrade: WebSocketUpgrade) -> impl IntoResponse {
    upgrade.on_upgrade(move |socket| session(hub, socket))
}

async fn session(hub: Hub, mut socket: WebSocket) {
    let mut joined: Option<(Room, broadcast::Receiver<Arc<str>>)> = None;
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(Message::Text(text))) = msg else { break };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                match v["type"].as_str() {
                    Some("join") => {
                        let room = hub.room(v["room"].as_str().unwrap_or_default());
                        room.members.fetch_add(1, Ordering::Relaxed);
                        let rx = room.tx.subscribe();
                        let seq = room.seq.load(Ordering::Relaxed);
                        let reply = json!({"type": "joined", "room": v["room"], "seq": seq, "recovered": false});
                        if socket.send(Message::Text(reply.to_string().into())).await.is_err() { break }
                        joined = Some((room, rx));
                    }
                    Some("send") => {
                        let room = hub.room(v["room"].as_str().unwrap_or_default());
                        let seq = room.seq.fetch_add(1, Ordering::Relaxed) + 1;
                        let event = json!({"type": "message", "room": v["room"], "seq": seq,
                            "author": {"id": "u2", "login": "bob", "displayName": "Bob"},
                            "body": v["body"], "sentAt": ""});
                        let _ = room.tx.send(Arc::from(event.to_string()));
                        let ack = json!({"type": "sent", "nonce": v["nonce"], "seq": seq});
                        if socket.send(Message::Text(ack.to_string().into())).await.is_err() { break }
                    }
                    _ => {}
                }
            }
            event = async {
                match &mut joined {
                    Some((_, rx)) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                match event {
                    Ok(text) => {
                        if socket.send(Message::Text((*text).into())).await.is_err() { break }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
    if let Some((room, _)) = joined {
        room.members.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn members(State(hub): State<Hub>, Path(id): Path<String>) -> Json<Value> {
    let n = hub.room(&id).members.load(Ordering::Relaxed);
    Json(json!({ "members": n }))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn main() -> anyhow::Result<()> {
    let listen = std::env::args()
        .skip_while(|a| a != "--listen")
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8092".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = Router::new()
            .route("/ws", get(ws))
            .route("/rooms/{id}/members", get(members))
            .route("/healthz", get(healthz))
            .with_state(Hub::default());
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}
