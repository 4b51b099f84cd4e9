//! The adapter's HTTP server: the webhook route, health endpoints, and
//! graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::fulfilment_client::FulfilmentClient;
use crate::metrics::Metrics;
use crate::source::Sources;
use crate::webhook;

/// What every request handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Configured sources.
    pub sources: Sources,
    /// The fulfilment service.
    pub fulfilment: FulfilmentClient,
    /// Largest accepted body.
    pub body_limit: usize,
    /// Cleared on shutdown so readiness fails before the listener closes.
    pub ready: Arc<AtomicBool>,
    /// Webhook metrics.
    pub metrics: Metrics,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/webhooks/{source}", post(webhook::receive))
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .fallback(not_found)
        .with_state(state)
}

/// Liveness: the process answers.
async fn live() -> &'static str {
    "ok"
}

/// Readiness: not shutting down.
async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    }
}

async fn not_found() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(
            serde_json::json!({"code": "not_found", "message": "no such endpoint; webhooks go to POST /webhooks/{source}"}),
        ),
    )
}

/// Serves until `shutdown` completes, then marks itself not ready, stops
/// accepting connections and waits for in-flight webhooks.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ready = state.ready.clone();
    ready.store(true, Ordering::Relaxed);
    let app = router(state);
    // TCP_NODELAY: a response's head and body are separate small writes.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            ready.store(false, Ordering::Relaxed);
            tracing::info!("shutting down: finishing in-flight webhooks");
        })
        .await
}

/// The ops router: Prometheus `/metrics`.
pub fn ops_router(metrics: Metrics) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(metrics): State<Metrics>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }),
        )
        .with_state(metrics)
}

/// Serves the ops router until `shutdown` completes.
pub async fn serve_ops(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, ops_router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
}
