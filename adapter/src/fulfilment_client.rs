//! The adapter's client of `PaymentEventService`: one shared HTTP/2
//! connection, a deadline per call, and retries while the service is
//! unavailable, within a budget that fits the provider's patience.

use std::time::{Duration, Instant};

use fulfil_proto::v1::payment_event_service_client::PaymentEventServiceClient;
use fulfil_proto::v1::{PaymentEvent, RecordPaymentEventRequest, RecordPaymentEventResponse};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tracing::Instrument;

/// Why an event could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The service or its database is down or too slow; the provider should
    /// retry later.
    #[error("fulfilment service unavailable: {0}")]
    Unavailable(String),
    /// The service refused the event as invalid; retrying will not help.
    #[error("fulfilment service refused the event: {0}")]
    Refused(String),
}

/// Records payment events with the fulfilment service.
#[derive(Debug, Clone)]
pub struct FulfilmentClient {
    client: PaymentEventServiceClient<Channel>,
    timeout: Duration,
    retry_budget: Duration,
}

impl FulfilmentClient {
    /// A client for `url` that connects lazily and reconnects by itself.
    pub fn new(
        url: &str,
        timeout: Duration,
        retry_budget: Duration,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(FulfilmentClient {
            client: PaymentEventServiceClient::new(channel),
            timeout,
            retry_budget,
        })
    }

    /// Records `event`, retrying transient failures with exponential backoff
    /// until the budget is spent.
    pub async fn record(
        &self,
        event: PaymentEvent,
    ) -> Result<RecordPaymentEventResponse, RecordError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut request = tonic::Request::new(RecordPaymentEventRequest {
                event: Some(event.clone()),
            });
            request.set_timeout(self.timeout);
            // One client span per attempt; its context travels in the
            // metadata so the server's span joins the same trace.
            let span = tracing::info_span!(
                "grpc.client",
                otel.name = "fulfil.v1.PaymentEventService/RecordPaymentEvent",
                otel.kind = "client",
                rpc.system = "grpc",
                rpc.service = "fulfil.v1.PaymentEventService",
                rpc.method = "RecordPaymentEvent",
            );
            fulfil_telemetry::propagation::inject(&span, request.metadata_mut());
            let answer = self
                .client
                .clone()
                .record_payment_event(request)
                .instrument(span)
                .await;
            match answer {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if retryable(&status) => {
                    let spent = started.elapsed();
                    if spent + backoff >= self.retry_budget {
                        return Err(RecordError::Unavailable(describe(&status)));
                    }
                    tracing::warn!(code = ?status.code(), retry_in = ?backoff, "fulfilment call failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(status) if status.code() == Code::InvalidArgument => {
                    return Err(RecordError::Refused(describe(&status)));
                }
                Err(status) => return Err(RecordError::Unavailable(describe(&status))),
            }
        }
    }
}

fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Unknown
    )
}

fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}
