//! A real fulfilment server on port 0 with its own fresh database, and a
//! tonic client connected to it.
//!
//! Every test runs once on SQLite (a temporary file) and once on PostgreSQL
//! when `FULFIL_TEST_POSTGRES_URL` names a server (each test gets a new
//! database there, dropped afterwards). When the variable is set, an
//! unreachable PostgreSQL fails the test: CI must not pass by skipping.

#![allow(dead_code)]

pub mod security;

use std::time::Duration;

use fulfil_proto::v1::checkout_service_client::CheckoutServiceClient;
use fulfil_proto::v1::entitlement_service_client::EntitlementServiceClient;
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::v1::payment_event_service_client::PaymentEventServiceClient;
use fulfil_proto::v1::{
    CreateOrderRequest, LineItem, Order, PaymentEvent, RecordPaymentEventRequest,
    RecordPaymentEventResponse,
};
use fulfilment::server;
use fulfilment::storage::{Database, DatabaseConfig, WriterConfig};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Channel, ClientTlsConfig};

pub const POSTGRES_URL_VAR: &str = "FULFIL_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How a test server is protected, and how its test clients connect.
#[derive(Clone, Default)]
pub struct Security {
    /// Token checks (default: off).
    pub auth: fulfilment::auth::Authenticator,
    /// Server TLS (default: plaintext).
    pub tls: Option<fulfilment::server::tls::TlsConfig>,
    /// PaymentEventService on its own ingest listener.
    pub ingest: bool,
    /// TLS of the test clients (their `events` client uses the ingest
    /// listener when there is one).
    pub client_tls: Option<ClientTlsConfig>,
    /// Checkout (default: not configured).
    pub checkout: fulfilment::checkout::CheckoutSetup,
}

pub struct TestApp {
    pub client: OrderServiceClient<Channel>,
    pub checkout: CheckoutServiceClient<Channel>,
    pub events: PaymentEventServiceClient<Channel>,
    pub entitlements: EntitlementServiceClient<Channel>,
    pub addr: std::net::SocketAddr,
    pub ingest_addr: Option<std::net::SocketAddr>,
    pub db: Database,
    url: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
    pg_db: Option<(String, String)>,
}

/// A fresh PostgreSQL database on the server named by the environment, or
/// None (with a note) when the variable is unset.
async fn postgres_database() -> Option<(String, String, String)> {
    let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
        eprintln!("skipped: {POSTGRES_URL_VAR} is not set (`cargo test-pg` sets it)");
        return None;
    };
    let name = format!("fulfil_test_{}", uuid::Uuid::new_v4().simple());
    let mut options = sea_orm::ConnectOptions::new(admin_url.clone());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5));
    let admin = sea_orm::Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {e}"));
    admin
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("CREATE DATABASE {name}"),
        ))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("postgres URL has a database path");
    Some((format!("{base}/{name}"), admin_url, name))
}

/// A new empty database: (URL, its SQLite folder, its PostgreSQL admin URL
/// and name); None when PostgreSQL is not configured.
type FreshDatabase = (String, Option<tempfile::TempDir>, Option<(String, String)>);

async fn fresh_database(backend: Backend) -> Option<FreshDatabase> {
    Some(match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("fulfil.db").display()
            );
            (url, Some(dir), None)
        }
        Backend::Postgres => {
            let (url, admin, name) = postgres_database().await?;
            (url, None, Some((admin, name)))
        }
    })
}

/// An open SQLite database in a new folder (kept while the folder lives),
/// for tests of the listeners rather than of storage.
pub async fn sqlite_database() -> (Database, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = DatabaseConfig {
        url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("fulfil.db").display()
        ),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
    };
    let db = server::open_database(&config, WriterConfig::default())
        .await
        .expect("open database");
    (db, dir)
}

impl TestApp {
    /// The SQLite database file, when the app runs on SQLite.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|dir| dir.path().join("fulfil.db"))
    }

    /// Starts a server on `backend`; None when PostgreSQL is not configured.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, WriterConfig::default()).await
    }

    pub async fn spawn_with(backend: Backend, writer: WriterConfig) -> Option<TestApp> {
        // Short heartbeats so stream tests see Progress without waiting.
        let streams = fulfilment::stream::StreamConfig {
            heartbeat: Duration::from_millis(200),
            ..Default::default()
        };
        Self::spawn_full(backend, writer, streams).await
    }

    /// A server with its own fresh database and these stream settings.
    pub async fn spawn_full(
        backend: Backend,
        writer: WriterConfig,
        streams: fulfilment::stream::StreamConfig,
    ) -> Option<TestApp> {
        Self::spawn_secured_full(backend, writer, streams, Security::default()).await
    }

    /// A server with TLS and/or authorization.
    pub async fn spawn_secured(backend: Backend, security: Security) -> Option<TestApp> {
        let streams = fulfilment::stream::StreamConfig {
            heartbeat: Duration::from_millis(200),
            ..Default::default()
        };
        Self::spawn_secured_full(backend, WriterConfig::default(), streams, security).await
    }

    async fn spawn_secured_full(
        backend: Backend,
        writer: WriterConfig,
        streams: fulfilment::stream::StreamConfig,
        security: Security,
    ) -> Option<TestApp> {
        let (url, dir, pg_db) = fresh_database(backend).await?;
        let mut app = Self::serve(&url, writer, streams, security).await;
        app._dir = dir;
        app.pg_db = pg_db;
        Some(app)
    }

    /// A server on a fresh database that `prepare` fills first, as an
    /// earlier release would have left it; the server then migrates it.
    pub async fn spawn_upgraded<F, Fut>(backend: Backend, prepare: F) -> Option<TestApp>
    where
        F: FnOnce(sea_orm::DatabaseConnection) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let (url, dir, pg_db) = fresh_database(backend).await?;
        let conn = sea_orm::Database::connect(url.as_str())
            .await
            .expect("connect to prepare");
        prepare(conn.clone()).await;
        conn.close().await.ok();
        let streams = fulfilment::stream::StreamConfig {
            heartbeat: Duration::from_millis(200),
            ..Default::default()
        };
        let mut app =
            Self::serve(&url, WriterConfig::default(), streams, Security::default()).await;
        app._dir = dir;
        app.pg_db = pg_db;
        Some(app)
    }

    /// Another server (a replica) on this app's database.
    pub async fn replica(&self, streams: fulfilment::stream::StreamConfig) -> TestApp {
        Self::serve(
            &self.url,
            WriterConfig::default(),
            streams,
            Security::default(),
        )
        .await
    }

    async fn serve(
        url: &str,
        writer: WriterConfig,
        streams: fulfilment::stream::StreamConfig,
        security: Security,
    ) -> TestApp {
        let config = DatabaseConfig {
            url: url.to_owned(),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
        };
        let db = server::open_database(&config, writer)
            .await
            .expect("open database");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let ingest = match security.ingest {
            true => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind")),
            false => None,
        };
        let ingest_addr = ingest.as_ref().map(|l| l.local_addr().expect("local addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = db.clone();
        let server = tokio::spawn(async move {
            server::serve(
                server::Listeners {
                    api: listener,
                    ingest,
                    ops: None,
                },
                serving,
                server::ServeOptions {
                    streams,
                    cors_origins: vec!["http://app.example".to_owned()],
                    tls: security.tls,
                    auth: security.auth,
                    checkout: security.checkout,
                    ..Default::default()
                },
                async move {
                    let _ = stopped.await;
                },
            )
            .await
            .expect("server failed");
        });
        let channel = connect(addr, security.client_tls.clone())
            .await
            .expect("connect");
        let events = match ingest_addr {
            Some(at) => connect(at, security.client_tls)
                .await
                .expect("connect to ingest"),
            None => channel.clone(),
        };
        TestApp {
            client: OrderServiceClient::new(channel.clone()),
            checkout: CheckoutServiceClient::new(channel.clone()),
            events: PaymentEventServiceClient::new(events),
            entitlements: EntitlementServiceClient::new(channel),
            addr,
            ingest_addr,
            db,
            url: url.to_owned(),
            stop: Some(stop),
            server: Some(server),
            _dir: None,
            pg_db: None,
        }
    }

    /// Pays an order in full through RecordPaymentEvent, as the adapter
    /// would after a provider's "payment succeeded".
    pub async fn mark_paid(&self, order_id: &str) {
        let order = self
            .client
            .clone()
            .get_order(fulfil_proto::v1::GetOrderRequest {
                order_id: order_id.to_owned(),
            })
            .await
            .expect("get order")
            .into_inner();
        let event = PaymentEvent {
            amount: order.amount_total,
            currency: order.currency,
            ..payment_event(
                &format!("evt_paid_{order_id}"),
                Kind::PaymentSucceeded,
                order_id,
                &format!("pi_{order_id}"),
                1,
            )
        };
        let response = self.record(event).await;
        assert_eq!(
            response.order.map(|o| o.state()),
            Some(fulfil_proto::v1::order::State::Paid)
        );
    }

    /// Records one event through the gRPC API.
    pub async fn record(&self, event: PaymentEvent) -> RecordPaymentEventResponse {
        self.events
            .clone()
            .record_payment_event(RecordPaymentEventRequest { event: Some(event) })
            .await
            .expect("record payment event")
            .into_inner()
    }

    /// Starts the server's graceful shutdown.
    pub fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Versions recorded in the change feed for one order, in feed order.
    pub async fn feed_versions(&self, order_id: &str) -> Vec<i64> {
        use fulfilment::storage::entity::order_changes;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        order_changes::Entity::find()
            .filter(order_changes::Column::OrderId.eq(order_id))
            .order_by_asc(order_changes::Column::Seq)
            .all(self.db.conn())
            .await
            .expect("read feed")
            .into_iter()
            .map(|row| row.version)
            .collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some((admin_url, name)) = self.pg_db.take() {
            // Drop runs outside async context; a helper thread with its own
            // runtime removes the database.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let admin = sea_orm::Database::connect(admin_url.as_str()).await.ok()?;
                    admin
                        .execute_raw(Statement::from_string(
                            DbBackend::Postgres,
                            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                        ))
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

/// A channel to `addr`: plaintext, or TLS with `tls` (server name
/// "localhost").
pub async fn connect(
    addr: std::net::SocketAddr,
    tls: Option<ClientTlsConfig>,
) -> Result<Channel, tonic::transport::Error> {
    match tls {
        None => {
            Channel::from_shared(format!("http://{addr}"))
                .expect("url")
                .connect()
                .await
        }
        Some(tls) => {
            Channel::from_shared(format!("https://{addr}"))
                .expect("url")
                .tls_config(tls.domain_name("localhost"))?
                .connect()
                .await
        }
    }
}

/// A valid order for `customer_id`: 2 x 1500 + 1 x 900 EUR = 3900.
pub fn new_order(customer_id: &str) -> CreateOrderRequest {
    CreateOrderRequest {
        order_id: String::new(),
        customer_id: customer_id.to_owned(),
        line_items: vec![
            LineItem {
                sku: "tee-black-m".into(),
                quantity: 2,
                unit_amount: 1500,
            },
            LineItem {
                sku: "mug".into(),
                quantity: 1,
                unit_amount: 900,
            },
        ],
        currency: "eur".into(),
        metadata: [("channel".to_owned(), "ios".to_owned())].into(),
        request_id: String::new(),
    }
}

/// A Stripe-like event for `order_ref` (may be empty) at provider time `t`
/// (seconds); amount 0, currency EUR.
pub fn payment_event(
    event_id: &str,
    kind: Kind,
    order_ref: &str,
    payment_ref: &str,
    t: i64,
) -> PaymentEvent {
    PaymentEvent {
        source: "stripe".into(),
        provider: "stripe".into(),
        event_id: event_id.into(),
        kind: kind.into(),
        event_type: format!("test.{}", kind.as_str_name().to_lowercase()),
        order_ref: order_ref.into(),
        payment_ref: payment_ref.into(),
        currency: "EUR".into(),
        occur_time: Some(prost_types::Timestamp {
            seconds: 1_700_000_000 + t,
            nanos: 0,
        }),
        payload: format!("{{\"id\":\"{event_id}\"}}").into_bytes(),
        ..Default::default()
    }
}

/// The order as GetOrder returns it now.
pub async fn get(app: &TestApp, order_id: &str) -> Order {
    app.client
        .clone()
        .get_order(fulfil_proto::v1::GetOrderRequest {
            order_id: order_id.into(),
        })
        .await
        .expect("get")
        .into_inner()
}

pub async fn create(app: &TestApp, request: CreateOrderRequest) -> Order {
    app.client
        .clone()
        .create_order(request)
        .await
        .expect("create order")
        .into_inner()
}

/// The ErrorInfo reason of a status.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let info = status
        .get_details_error_info()
        .expect("status carries ErrorInfo");
    assert_eq!(info.domain, "fulfil.dev");
    info.reason
}

/// The fields a status's google.rpc.BadRequest names, in order.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// Declares each listed `async fn(TestApp)` as two tests, `sqlite::NAME` and
/// `postgres::NAME`. With `spawn = PATH;` first, the app comes from
/// `PATH(Backend) -> Option<TestApp>` (e.g. a server with authorization).
#[macro_export]
macro_rules! storage_tests {
    (spawn = $spawn:path; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $spawn($crate::common::Backend::Sqlite).await.expect("sqlite app");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $spawn($crate::common::Backend::Postgres).await else { return };
                    super::$name(app).await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::common::TestApp::spawn($crate::common::Backend::Sqlite).await.expect("sqlite app");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::common::TestApp::spawn($crate::common::Backend::Postgres).await else { return };
                    super::$name(app).await;
                }
            )*
        }
    };
}
