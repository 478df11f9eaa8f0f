//! The `async-graphql` peer for the GraphQL scenarios: axum + async-graphql as the
//! async-graphql book shows (`async_graphql_axum`'s request and response extractors,
//! `DataLoader`s, the Apollo persisted-queries extension), on a one-worker tokio runtime
//! (the bench pins it to one core, as it pins StreamHub's one shard), over the same data
//! layer as the server (`DataLayer::embedded`: the store, the rooms, presence) and demo
//! data. The schema and resolvers are `streamhub_bench::peers::async_graphql`.
//!
//! `--listen ADDR` (default 127.0.0.1:8091), `--demo-data off|small|large|N` (default
//! small, as STREAMHUB_DEMO_DATA). Tokens: `Authorization: Bearer` HS256 JWTs signed with
//! `PEER_JWT_SECRET`; a refused token gets 401 with `UNAUTHENTICATED`, as on the server.
#![allow(missing_docs)]

use std::sync::Arc;

use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use streamhub_bench::peers::async_graphql::{schema, verify_token, viewer_data, PeerSchema};
use streamhub_pubsub::history::HistoryLimits;
use streamhub_server::domain::DataLayer;
use streamhub_server::store::memory::demo::parse_size;
use streamhub_server::store::SystemClock;

#[derive(Clone)]
struct App {
    schema: PeerSchema,
    data: DataLayer,
    key: Option<Arc<jsonwebtoken::DecodingKey>>,
}

fn unauthenticated(message: &str) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]});
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

fn unavailable(message: &str) -> Response {
    let body =
        json!({"errors": [{"message": message, "extensions": {"code": "SERVICE_UNAVAILABLE"}}]});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn graphql(State(app): State<App>, headers: HeaderMap, req: GraphQLRequest) -> Response {
    let mut req = req.into_inner();
    if let Some(h) = headers.get("authorization") {
        let token = h
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let Some(token) = token else {
            return unauthenticated("the Authorization header must be `Bearer <token>`");
        };
        let Some(key) = &app.key else {
            return unauthenticated("no PEER_JWT_SECRET is set: tokens cannot be verified");
        };
        match verify_token(key, token) {
            Ok(viewer) => match viewer_data(&app.data, &viewer).await {
                Ok(v) => req = req.data(v),
                Err(e) => return unavailable(&e.to_string()),
            },
            Err(e) => return unauthenticated(&e),
        }
    }
    GraphQLResponse::from(app.schema.execute(req).await).into_response()
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn main() -> anyhow::Result<()> {
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:8091".to_owned());
    let size = parse_size(&arg("--demo-data").unwrap_or_else(|| "small".to_owned()))
        .map_err(anyhow::Error::msg)?;
    let data = DataLayer::embedded(size, HistoryLimits::default(), Arc::new(SystemClock));
    let key = std::env::var("PEER_JWT_SECRET")
        .ok()
        .map(|s| Arc::new(jsonwebtoken::DecodingKey::from_secret(s.as_bytes())));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = App {
            schema: schema(data.clone()),
            data,
            key,
        };
        let router = Router::new()
            .route("/graphql", get(graphql).post(graphql))
            .route("/healthz", get(healthz))
            .with_state(app);
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        axum::serve(listener, router).await?;
        anyhow::Ok(())
    })
}
