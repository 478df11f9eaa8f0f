//! The `async-graphql` peer for the GraphQL scenarios: axum + async-graphql as the
//! async-graphql book shows (`async_graphql_axum`'s request and response extractors,
//! `DataLoader`s, the Apollo persisted-queries extension), on a one-worker tokio runtime
//! (the bench pins it to one core, as it pins StreamHub's one shard), over the same store
//! and demo data. Tokens: HS256 with `PEER_JWT_SECRET`.
#![allow(missing_docs)]

use std::sync::Arc;

use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use streamhub_bench::peers::async_graphql::{schema, viewer_data, PeerSchema, PeerViewer};
use streamhub_server::store::demo::{generate, parse_size};
use streamhub_server::store::Store;

#[derive(Clone)]
struct App {
    schema: PeerSchema,
    store: Arc<Store>,
    key: Option<Arc<jsonwebtoken::DecodingKey>>,
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    login: String,
    #[serde(default)]
    roles: Vec<String>,
}

async fn graphql(
    State(app): State<App>,
    headers: HeaderMap,
    req: GraphQLRequest,
) -> GraphQLResponse {
    let mut req = req.into_inner();
    let token = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if let (Some(t), Some(key)) = (token, &app.key) {
        let v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        match jsonwebtoken::decode::<Claims>(t, key, &v) {
            Ok(data) => {
                let c = data.claims;
                let viewer = PeerViewer {
                    id: c.sub,
                    login: c.login,
                    admin: c.roles.iter().any(|r| r == "admin"),
                };
                req = req.data(viewer_data(&app.store, &viewer));
            }
            Err(e) => {
                let resp =
                    async_graphql::Response::from_errors(vec![async_graphql::ServerError::new(
                        format!("bad token: {e}"),
                        None,
                    )]);
                return resp.into();
            }
        }
    }
    app.schema.execute(req).await.into()
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
    let store = Arc::new(Store::new(generate(size)));
    let key = std::env::var("PEER_JWT_SECRET")
        .ok()
        .map(|s| Arc::new(jsonwebtoken::DecodingKey::from_secret(s.as_bytes())));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = App {
            schema: schema(Arc::clone(&store)),
            store,
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
