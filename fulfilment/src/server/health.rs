//! grpc.health.v1 statuses, kept true by a readiness loop.
//!
//! - `liveness`: SERVING while the process runs; if it cannot answer, the
//!   process is stuck (Kubernetes liveness probe).
//! - `""` and each `fulfil.v1` service: SERVING while the database answers
//!   and the server is not shutting down (readiness probe). Migrations ran
//!   before the server started, so they are done whenever this answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::storage::Database;

/// The health service name that reports liveness only.
pub const LIVENESS: &str = "liveness";

/// The services whose status follows readiness.
const SERVICES: [&str; 5] = [
    "",
    "fulfil.v1.OrderService",
    "fulfil.v1.PaymentEventService",
    "fulfil.v1.EntitlementService",
    "fulfil.v1.CheckoutService",
];

/// How often the database is checked, and how long a check may take.
const CHECK_EVERY: Duration = Duration::from_secs(5);
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness as the ops endpoints and the health service see it.
#[derive(Debug, Clone)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
}

impl Readiness {
    /// Whether the server can serve now.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// Sets the initial statuses and starts the loop that follows the database
/// and shutdown. Returns the readiness flag.
pub async fn start(
    reporter: HealthReporter,
    db: Database,
    stopping: CancellationToken,
) -> Readiness {
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;
    let readiness = Readiness {
        ready: Arc::new(AtomicBool::new(false)),
    };
    let ready = check(&db).await;
    set(&reporter, &readiness, ready).await;
    let flag = readiness.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECK_EVERY);
        every.reset();
        loop {
            tokio::select! {
                _ = every.tick() => {
                    let ready = check(&db).await;
                    if ready != flag.is_ready() {
                        if ready {
                            tracing::info!("database reachable again: ready");
                        } else {
                            tracing::warn!("database unreachable: not ready");
                        }
                    }
                    set(&reporter, &flag, ready).await;
                }
                () = stopping.cancelled() => {
                    set(&reporter, &flag, false).await;
                    return;
                }
            }
        }
    });
    readiness
}

async fn check(db: &Database) -> bool {
    matches!(
        tokio::time::timeout(CHECK_TIMEOUT, db.ping()).await,
        Ok(Ok(()))
    )
}

async fn set(reporter: &HealthReporter, readiness: &Readiness, ready: bool) {
    readiness.ready.store(ready, Ordering::Relaxed);
    let status = if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}
