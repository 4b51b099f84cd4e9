//! The operations port: plaintext HTTP for Kubernetes and Prometheus, apart
//! from the API so probes work even when the API uses TLS.
//!
//! - grpc.health.v1 over HTTP/2 (Kubernetes' native gRPC probes);
//! - `GET /livez`, `GET /readyz` for HTTP probes and humans;
//! - `GET /metrics` in the Prometheus text format.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tonic_health::pb::health_server::{Health, HealthServer};

use super::health::Readiness;
use crate::metrics::Metrics;

#[derive(Clone)]
struct OpsState {
    readiness: Readiness,
    metrics: Metrics,
}

/// The ops router, with `health` (the grpc.health.v1 service) mounted.
pub fn router<H: Health>(
    readiness: Readiness,
    metrics: Metrics,
    health: HealthServer<H>,
) -> Router {
    let http = Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState { readiness, metrics });
    tonic::service::Routes::new(health)
        .into_axum_router()
        .merge(http)
}

async fn ready(State(state): State<OpsState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn render_metrics(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render().await,
    )
}

/// Serves the ops router until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
