//! HTTP for operators: `GET /health` (the process is up), `GET /ready` (it answers
//! queries) and `GET /metrics` (Prometheus text format).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::engine::Engine;

pub fn router(engine: Engine) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(engine)
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Ready when the engine plans and runs a query within two seconds.
async fn ready(State(engine): State<Engine>) -> (StatusCode, Json<Value>) {
    let probe = engine.as_system(async { engine.ctx().sql("SELECT 1").await?.collect().await });
    match tokio::time::timeout(std::time::Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "error": e.to_string() })),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "error": "a trivial query took over 2 s" })),
        ),
    }
}

async fn metrics(State(engine): State<Engine>) -> impl IntoResponse {
    let text = engine
        .monitor()
        .metrics()
        .render(engine.ctx().runtime_env().as_ref());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
