//! Assembling and running the gRPC server: the order API, grpc.health.v1,
//! and server reflection (v1 and v1alpha, for grpcurl and grpcio clients).

use std::future::Future;
use std::time::Duration;

use fulfil_proto::v1::entitlement_service_server::EntitlementServiceServer;
use fulfil_proto::v1::order_service_server::OrderServiceServer;
use fulfil_proto::v1::payment_event_service_server::PaymentEventServiceServer;
use tokio::net::TcpListener;

use crate::api::{EntitlementApi, OrderApi, PaymentEventApi};
use crate::storage::{self, Database, DatabaseConfig, StorageError, WriterConfig};
use crate::stream::{Hub, StreamConfig};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    /// Reflection descriptors are broken (a build problem).
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// CORS for gRPC-Web callers: only the listed origins ("*" for any); none
/// by default, which leaves non-browser clients unaffected.
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    let header = |name: &'static str| http::HeaderName::from_static(name);
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers([
            header("content-type"),
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header("authorization"),
        ])
        .expose_headers([
            header("grpc-status"),
            header("grpc-message"),
            header("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(3600))
}

/// Connects, migrates, and starts the writer.
pub async fn open_database(
    config: &DatabaseConfig,
    writer: WriterConfig,
) -> Result<Database, StorageError> {
    let conn = storage::connect(config).await?;
    storage::migrate(&conn).await?;
    Database::start(conn, config, writer).await
}

/// Serves gRPC on `listener` until `shutdown` completes, then stops taking new
/// calls, reports NOT_SERVING, and returns when in-flight calls are done.
pub async fn serve(
    listener: TcpListener,
    db: Database,
    streams: StreamConfig,
    cors_origins: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let hub = Hub::start(db.clone(), streams).await?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<OrderServiceServer<OrderApi>>().await;
    health
        .set_serving::<PaymentEventServiceServer<PaymentEventApi>>()
        .await;
    health
        .set_serving::<EntitlementServiceServer<EntitlementApi>>()
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fulfil_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fulfil_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let stopping = hub.clone();
    let shutdown = async move {
        shutdown.await;
        // Streams end first, with UNAVAILABLE, so clients reconnect to
        // another replica and resume from their cursor.
        stopping.shut_down();
        health
            .set_not_serving::<OrderServiceServer<OrderApi>>()
            .await;
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        tracing::info!("shutting down: draining in-flight calls");
    };

    // Accepted connections get TCP_NODELAY: gRPC messages are small writes,
    // and Nagle plus delayed ACKs would hold some back by ~40 ms.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // gRPC-Web (HTTP/1.1) for browsers and Flutter web, behind CORS.
        .accept_http1(true)
        .layer(cors(&cors_origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(OrderServiceServer::new(OrderApi::new(hub)))
        .add_service(PaymentEventServiceServer::new(PaymentEventApi::new(
            db.clone(),
        )))
        .add_service(EntitlementServiceServer::new(EntitlementApi::new(db)))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}
