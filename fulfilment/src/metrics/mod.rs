//! Prometheus metrics of the fulfilment service, served on the ops port.
//!
//! Each server owns its registry (no process-global state), so several
//! servers in one process, as in tests, count separately.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `fulfil_grpc_requests_total` | counter | `service`, `method`, `code` |
//! | `fulfil_grpc_request_duration_seconds` | histogram | `service`, `method` (unary calls) |
//! | `fulfil_grpc_calls_in_flight` | gauge | `service`, `method` (for `Watch*`: open streams) |
//! | `fulfil_payment_events_recorded_total` | counter | `provider`, `outcome` |
//! | `fulfil_unmatched_payment_events` | gauge | events waiting for their order |
//! | `fulfil_db_connections` | gauge | `state` = `open` or `idle` (the read pool) |

mod grpc;

use std::sync::Arc;

use fulfil_proto::Provider;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use grpc::GrpcMetricsLayer;

use crate::storage::Database;

/// A gRPC method.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// Fully qualified service, e.g. `fulfil.v1.OrderService`.
    pub service: String,
    /// Method name, e.g. `CreateOrder`.
    pub method: String,
}

/// A finished gRPC call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// Fully qualified service.
    pub service: String,
    /// Method name.
    pub method: String,
    /// gRPC status code name, e.g. `OK`, `NOT_FOUND`.
    pub code: &'static str,
}

/// A recorded payment event.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// Provider kind, e.g. `stripe` (`other` for names Fulfil does not know,
    /// so a caller cannot grow the label set).
    pub provider: &'static str,
    /// `APPLIED`, `DUPLICATE`, `UNMATCHED`, `IGNORED` or `MISMATCH`.
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

struct Inner {
    registry: Registry,
    /// Paths of the methods served, for bounded labels.
    methods: std::collections::HashSet<String>,
    db: Database,
    calls: Family<CallLabels, Counter>,
    durations: HistogramFamily<MethodLabels>,
    in_flight: Family<MethodLabels, Gauge>,
    events: Family<EventLabels, Counter>,
    unmatched: Gauge,
    pool: Family<PoolLabels, Gauge>,
}

/// The service's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry; database gauges are read from `db` at each scrape.
    pub fn new(db: Database) -> Self {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "fulfil_grpc_requests",
            "gRPC calls handled, by method and status code",
            calls.clone(),
        );
        let durations: HistogramFamily<MethodLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "fulfil_grpc_request_duration_seconds",
            "Time to answer a unary gRPC call",
            durations.clone(),
        );
        let in_flight = Family::<MethodLabels, Gauge>::default();
        registry.register(
            "fulfil_grpc_calls_in_flight",
            "gRPC calls in progress; for Watch* methods, open streams",
            in_flight.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "fulfil_payment_events_recorded",
            "Payment events recorded, by provider and outcome",
            events.clone(),
        );
        let unmatched = Gauge::default();
        registry.register(
            "fulfil_unmatched_payment_events",
            "Recorded payment events waiting for their order to exist",
            unmatched.clone(),
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "fulfil_db_connections",
            "Connections of the database read pool (open, idle)",
            pool.clone(),
        );
        let mut methods = grpc::method_paths(&[
            fulfil_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ]);
        for reflection in ["v1", "v1alpha"] {
            methods.insert(format!(
                "/grpc.reflection.{reflection}.ServerReflection/ServerReflectionInfo"
            ));
        }
        Metrics(Arc::new(Inner {
            registry,
            methods,
            db,
            calls,
            durations,
            in_flight,
            events,
            unmatched,
            pool,
        }))
    }

    /// Counts one recorded payment event.
    pub fn payment_event_recorded(&self, provider: &str, outcome: &'static str) {
        self.0
            .events
            .get_or_create(&EventLabels {
                provider: Provider::parse(provider).map_or("other", Provider::as_str),
                outcome,
            })
            .inc();
    }

    /// The OpenMetrics text of every metric, with database gauges read now.
    pub async fn render(&self) -> String {
        let inner = &self.0;
        match tokio::time::timeout(
            std::time::Duration::from_secs(2),
            inner.db.unmatched_waiting(),
        )
        .await
        {
            Ok(Ok(waiting)) => {
                inner
                    .unmatched
                    .set(i64::try_from(waiting).unwrap_or(i64::MAX));
            }
            // Keep the last value; the scrape must not fail with the database.
            Ok(Err(err)) => tracing::warn!(error = %err, "cannot count unmatched events"),
            Err(_) => tracing::warn!("counting unmatched events timed out"),
        }
        let (open, idle) = inner.db.pool_connections();
        inner
            .pool
            .get_or_create(&PoolLabels { state: "open" })
            .set(i64::from(open));
        inner
            .pool
            .get_or_create(&PoolLabels { state: "idle" })
            .set(i64::from(idle));
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &inner.registry) {
            tracing::error!(error = %err, "cannot encode metrics");
        }
        text
    }
}
