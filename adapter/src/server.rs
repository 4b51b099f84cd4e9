//! The adapter's HTTP server: the webhook route, health endpoints, limits
//! on slow clients, and graceful shutdown.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use fulfil_telemetry::listener::{BoundedListener, Timeouts};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::body::BodyLimits;
use crate::fulfilment_client::FulfilmentClient;
use crate::metrics::Metrics;
use crate::source::Sources;
use crate::webhook;

/// How long and how much clients may take. The defaults follow nginx's
/// (`client_header_timeout` and `client_body_timeout` 60 s,
/// `keepalive_timeout` 75 s): generous for a provider on a slow network,
/// and a keep-alive longer than the 60 s idle timeout of common load
/// balancers, so the balancer, not the adapter, closes a pooled connection
/// and never sends a request down one the adapter is closing.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// From the first byte of a request head to its end.
    pub header_timeout: Duration,
    /// Between two reads of a request body.
    pub body_timeout: Duration,
    /// A connection with no request in flight, after its last response.
    pub keep_alive_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Largest accepted body.
    pub body_limit: usize,
    /// Memory all bodies in flight may reserve together; beyond it new
    /// webhooks get 503 with Retry-After.
    pub body_bytes_in_flight: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: 1024,
            body_limit: 1024 * 1024,
            body_bytes_in_flight: 64 * 1024 * 1024,
        }
    }
}

/// What every request handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Configured sources.
    pub sources: Sources,
    /// The fulfilment service.
    pub fulfilment: FulfilmentClient,
    /// The connection and body limits.
    pub limits: HttpLimits,
    /// Reading bodies within the limits.
    pub body: BodyLimits,
    /// Cleared on shutdown so readiness fails before the listener closes.
    pub ready: Arc<AtomicBool>,
    /// Webhook metrics.
    pub metrics: Metrics,
}

impl AppState {
    /// The state of a server with these sources, client and limits.
    pub fn new(
        sources: Sources,
        fulfilment: FulfilmentClient,
        limits: HttpLimits,
        metrics: Metrics,
    ) -> Self {
        AppState {
            sources,
            fulfilment,
            limits,
            body: BodyLimits::new(
                limits.body_limit,
                limits.body_timeout,
                limits.body_bytes_in_flight,
            ),
            ready: Arc::new(AtomicBool::new(false)),
            metrics,
        }
    }
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
    let limits = state.limits;
    let ready = state.ready.clone();
    ready.store(true, Ordering::Relaxed);
    let app = router(state);
    let listener = BoundedListener::new(
        listener,
        limits.max_connections,
        Timeouts::Http {
            header: limits.header_timeout,
            keep_alive: limits.keep_alive_timeout,
        },
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The listener's deadlines replace hyper's header timer, which would
    // also count the idle time between requests against the head.
    builder.http1().header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let connections = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (io, _peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let activity = io.activity();
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let running = activity.request();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                drop(running);
                response
            }
        });
        let (builder, stop) = (builder.clone(), stop.clone());
        connections.spawn(async move {
            let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
            let served = tokio::select! {
                served = conn.as_mut() => served,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = served {
                // Timed-out and vanished clients end here; theirs to fix.
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    ready.store(false, Ordering::Relaxed);
    tracing::info!("shutting down: finishing in-flight webhooks");
    stop.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
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
