//! Prometheus metrics of the adapter, served on the ops port.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `fulfil_webhooks_total` | counter | `source`, `outcome`, `status` |
//! | `fulfil_webhook_verification_failures_total` | counter | `source`, `reason` |
//! | `fulfil_webhook_duration_seconds` | histogram | `source` |
//!
//! `source` is a configured source name, or `unknown` for any other path,
//! so callers cannot grow the label set. `outcome` is what fulfilment did
//! (`applied`, `duplicate`, `unmatched`, `ignored`, `mismatch`) or, for a
//! refused delivery, its error code (`signature_mismatch`, …).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    source: String,
    outcome: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    source: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

struct Inner {
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    durations: Family<SourceLabels, Histogram, fn() -> Histogram>,
}

/// The adapter's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "fulfil_webhooks",
            "Webhook deliveries answered, by source, outcome and HTTP status",
            webhooks.clone(),
        );
        let failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "fulfil_webhook_verification_failures",
            "Deliveries whose signature, timestamp or token did not verify, by reason",
            failures.clone(),
        );
        let durations: Family<SourceLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "fulfil_webhook_duration_seconds",
            "Time from request to answer, recording included",
            durations.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            webhooks,
            failures,
            durations,
        }))
    }
}

/// What one delivery came to, for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// A configured source name, or None for an unknown path.
    pub source: Option<&'a str>,
    /// Fulfilment's outcome or the error code.
    pub outcome: &'a str,
    /// The HTTP status answered.
    pub status: u16,
    /// Set when verification failed: why.
    pub verification_failure: Option<&'static str>,
    /// Time to answer.
    pub took: Duration,
}

impl Metrics {
    /// Counts one answered delivery.
    pub fn delivery(&self, delivery: Delivery<'_>) {
        let source = delivery.source.unwrap_or("unknown").to_owned();
        let inner = &self.0;
        inner
            .webhooks
            .get_or_create(&WebhookLabels {
                source: source.clone(),
                outcome: delivery.outcome.to_owned(),
                status: delivery.status,
            })
            .inc();
        if let Some(reason) = delivery.verification_failure {
            inner
                .failures
                .get_or_create(&FailureLabels {
                    source: source.clone(),
                    reason,
                })
                .inc();
        }
        inner
            .durations
            .get_or_create(&SourceLabels { source })
            .observe(delivery.took.as_secs_f64());
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.0.registry) {
            tracing::error!(error = %err, "cannot encode metrics");
        }
        text
    }
}
