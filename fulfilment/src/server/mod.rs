//! Assembling and running the servers of one fulfilment process:
//!
//! - the API listener: OrderService, CheckoutService, EntitlementService, grpc.health.v1 and
//!   reflection, plus gRPC-Web behind CORS for browsers;
//! - the ingest listener, if configured: PaymentEventService (the adapter's
//!   entry point) apart from the public API, so a network policy can let
//!   only the adapter reach it; without it, the API listener serves it too;
//! - the ops listener, if configured: plaintext health and `/metrics`.
//!
//! With TLS configured ([`tls`]) the API and ingest listeners speak TLS, the
//! ingest listener mutual TLS with a client CA; every gRPC call on them
//! passes the authentication layer ([`crate::auth`]).

mod cors;
pub mod health;
mod message_limit;
mod ops;
pub mod tls;

use std::future::Future;
use std::time::Duration;

use fulfil_proto::v1::checkout_service_server::CheckoutServiceServer;
use fulfil_proto::v1::entitlement_service_server::EntitlementServiceServer;
use fulfil_proto::v1::order_service_server::OrderServiceServer;
use fulfil_proto::v1::payment_event_service_server::PaymentEventServiceServer;
use fulfil_telemetry::listener::{BoundedListener, Timeouts};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{CheckoutApi, EntitlementApi, OrderApi, PaymentEventApi};
use crate::auth::AuthLayer;
use crate::checkout::Checkouts;
use crate::metrics::{GrpcMetricsLayer, Metrics};
use crate::storage::{self, Database, DatabaseConfig, StorageError, WriterConfig};
use crate::stream::{Hub, StreamConfig};

pub use message_limit::{DEFAULT_MAX_MESSAGE_BYTES, MessageLimit, MessageTooLarge};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    /// Reflection descriptors are broken (a build problem).
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The ops listener failed.
    #[error("ops listener: {0}")]
    Ops(#[from] std::io::Error),
    /// A server task panicked (a bug).
    #[error("server task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The sockets a fulfilment process serves on.
#[derive(Debug)]
pub struct Listeners {
    /// The public gRPC API (and PaymentEventService when `ingest` is unset).
    pub api: TcpListener,
    /// PaymentEventService only.
    pub ingest: Option<TcpListener>,
    /// Plaintext health and metrics.
    pub ops: Option<TcpListener>,
}

impl Listeners {
    /// Only the API listener: everything on one port, no ops port.
    pub fn api_only(api: TcpListener) -> Self {
        Self {
            api,
            ingest: None,
            ops: None,
        }
    }
}

/// How the servers behave.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Order stream tuning.
    pub streams: StreamConfig,
    /// Origins allowed to call over gRPC-Web ("*" for any).
    pub cors_origins: Vec<String>,
    /// Connections older than this are asked to go away (HTTP/2 GOAWAY), so
    /// clients reconnect and long-lived connections spread over replicas
    /// behind a ClusterIP Service. Unset: connections live on.
    pub max_connection_age: Option<Duration>,
    /// TLS for the API and ingest listeners. Unset: plaintext.
    pub tls: Option<tls::TlsConfig>,
    /// Bearer-token authentication of gRPC calls. Default: off.
    pub auth: crate::auth::Authenticator,
    /// Bounds on the API and ingest listeners' connections.
    pub connections: ConnectionLimits,
    /// The largest gRPC message received or sent by Fulfil's services.
    pub max_message: MessageLimit,
    /// Checkout (Stripe, the catalogue). Default: not configured.
    pub checkout: crate::checkout::CheckoutSetup,
}

/// How many connections a gRPC listener keeps, and how long a silent one.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open at once per listener; more wait in the listen backlog. Each
    /// app watching its order holds one, so the bound is high.
    pub max_connections: usize,
    /// Nothing read or written for this long closes a connection: a
    /// client that never sends its request, stalls in its body, or keeps an
    /// HTTP/1.1 (gRPC-Web) connection idle. Live HTTP/2 connections carry
    /// keep-alive pings every 30 s and streams a heartbeat, so must be
    /// longer than both; nginx's `keepalive_timeout` (75 s) is.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(75),
        }
    }
}

/// How long calls on a connection past its maximum age may run on before
/// the connection closes; watch streams then end and clients resume from
/// their cursor on another connection.
const MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(30);

/// Connects, migrates, and starts the writer.
pub async fn open_database(
    config: &DatabaseConfig,
    writer: WriterConfig,
) -> Result<Database, StorageError> {
    let conn = storage::connect(config).await?;
    storage::migrate(&conn).await?;
    Database::start(conn, config, writer).await
}

/// The span of one gRPC call: an OpenTelemetry server span whose parent
/// is the caller's trace, from the W3C `traceparent` metadata.
fn call_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", ""));
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    );
    fulfil_telemetry::propagation::adopt_parent(&span, request.headers());
    span
}

fn builder(options: &ServeOptions) -> tonic::transport::Server {
    let mut builder = tonic::transport::Server::builder()
        .trace_fn(call_span)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)));
    if let Some(age) = options.max_connection_age {
        builder = builder
            .max_connection_age(age)
            .max_connection_age_grace(MAX_CONNECTION_AGE_GRACE);
    }
    builder
}

// Accepted connections get TCP_NODELAY (gRPC messages are small writes,
// and Nagle plus delayed ACKs would hold some back by ~40 ms), a place under
// the connection bound, and the idle deadline. hyper's own HTTP/1.1 header
// timer (30 s, on since tonic sets a timer) still covers half-sent heads.
fn incoming(listener: TcpListener, limits: ConnectionLimits) -> tls::Accepted {
    Box::pin(
        BoundedListener::new(
            listener,
            limits.max_connections,
            Timeouts::Inactivity(limits.idle_timeout),
        )
        .into_stream(),
    )
}

/// Serves until `shutdown` completes. Then the streams end with
/// UNAVAILABLE, health turns NOT_SERVING, the listeners stop taking new
/// calls, and this returns once in-flight calls are done.
pub async fn serve(
    listeners: Listeners,
    db: Database,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let hub = Hub::start(db.clone(), options.streams).await?;
    let metrics = Metrics::new(db.clone());
    // Cancelled to stop the API and ingest listeners; the ops listener has
    // its own, cancelled once they are done.
    let stop = CancellationToken::new();
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let readiness = health::start(reporter, db.clone(), stop.clone()).await;

    let reflection = || -> Result<_, ServeError> {
        let v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(fulfil_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(fulfil_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        Ok((v1, v1alpha))
    };
    let limit = options.max_message.0;
    let payment_events =
        PaymentEventServiceServer::new(PaymentEventApi::new(db.clone(), metrics.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(catalogue) = &options.checkout.catalogue {
        catalogue.reload_on_sighup();
    }
    let checkouts = Checkouts::new(db.clone(), options.checkout.clone());

    let (reflection_v1, reflection_v1alpha) = reflection()?;
    let api = builder(&options)
        // gRPC-Web (HTTP/1.1) for browsers and Flutter web, behind CORS.
        .accept_http1(true)
        .layer(cors::layer(&options.cors_origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(GrpcMetricsLayer::new(metrics.clone()))
        .layer(message_limit::layer(options.max_message))
        .layer(AuthLayer::new(options.auth.clone()))
        .add_service(health_service.clone())
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            OrderServiceServer::new(OrderApi::new(hub.clone()).with_checkouts(checkouts.clone()))
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            CheckoutServiceServer::new(CheckoutApi::new(checkouts))
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_service(
            EntitlementServiceServer::new(EntitlementApi::new(db.clone()))
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
        )
        .add_optional_service(listeners.ingest.is_none().then(|| payment_events.clone()));
    let api_tls = options.tls.as_ref().map(tls::TlsConfig::api);
    tasks.spawn({
        let stop = stop.clone().cancelled_owned();
        async move {
            api.serve_with_incoming_shutdown(
                tls::incoming(incoming(listeners.api, options.connections), api_tls),
                stop,
            )
            .await
            .map_err(ServeError::from)
        }
    });

    if let Some(listener) = listeners.ingest {
        let (reflection_v1, reflection_v1alpha) = reflection()?;
        let ingest = builder(&options)
            .layer(GrpcMetricsLayer::new(metrics.clone()))
            .layer(message_limit::layer(options.max_message))
            .layer(AuthLayer::new(options.auth.clone()))
            .add_service(health_service.clone())
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(payment_events);
        let stop = stop.clone().cancelled_owned();
        let ingest_tls = options.tls.as_ref().map(tls::TlsConfig::ingest);
        tasks.spawn(async move {
            ingest
                .serve_with_incoming_shutdown(
                    tls::incoming(incoming(listener, options.connections), ingest_tls),
                    stop,
                )
                .await
                .map_err(ServeError::from)
        });
    }

    // The ops port outlives the others: during the drain, probes see
    // readiness NOT_SERVING and liveness SERVING, not a refused connection.
    let ops_stop = CancellationToken::new();
    let ops = match listeners.ops {
        Some(listener) => {
            let router = ops::router(readiness.clone(), metrics.clone(), health_service);
            let stop = ops_stop.clone().cancelled_owned();
            Some(tokio::spawn(ops::serve(listener, router, stop)))
        }
        None => None,
    };

    let begin_stop = {
        let (hub, stop) = (hub.clone(), stop.clone());
        move || {
            // Streams end first, with UNAVAILABLE, so clients reconnect to
            // another replica and resume from their cursor.
            hub.shut_down();
            stop.cancel();
        }
    };
    tokio::spawn({
        let begin_stop = begin_stop.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight calls");
            begin_stop();
        }
    });

    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        if let Err(err) = done.map_err(ServeError::from).and_then(|served| served) {
            // One listener failed: stop the others rather than limp on.
            tracing::error!(error = %err, "a listener failed; stopping");
            begin_stop();
            result = result.and(Err(err));
        }
    }
    ops_stop.cancel();
    if let Some(ops) = ops {
        ops.await??;
    }
    result
}
