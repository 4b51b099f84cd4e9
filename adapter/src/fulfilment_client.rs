//! The adapter's client of `PaymentEventService`: one shared HTTP/2
//! connection, a deadline per call, and retries while the service is
//! unavailable, within a budget that fits the provider's patience.
//! Optionally over TLS (mutual, with a client certificate) and with a bearer
//! token read from a file ([`ClientSecurity`]).

use std::time::{Duration, Instant};

use fulfil_proto::v1::payment_event_service_client::PaymentEventServiceClient;
use fulfil_proto::v1::{PaymentEvent, RecordPaymentEventRequest, RecordPaymentEventResponse};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tracing::Instrument;

use crate::fulfilment_tls::{ClientTlsError, TlsFiles};
use crate::token_file::TokenFile;

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

/// Why the client cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not usable.
    #[error("FULFIL_FULFILMENT_URL: {0}")]
    Url(#[from] tonic::transport::Error),
    /// The TLS files are not usable.
    #[error(transparent)]
    Tls(#[from] ClientTlsError),
}

/// How the adapter proves itself to the fulfilment service.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    /// CA and client certificate files, for an `https://` URL (which uses
    /// TLS with the public roots even when none is set).
    pub tls: TlsFiles,
    /// The bearer token sent with every call.
    pub token: Option<TokenFile>,
}

/// Records payment events with the fulfilment service.
#[derive(Debug, Clone)]
pub struct FulfilmentClient {
    client: PaymentEventServiceClient<Channel>,
    timeout: Duration,
    retry_budget: Duration,
    token: Option<TokenFile>,
}

impl FulfilmentClient {
    /// A client for `url` that connects lazily and reconnects by itself;
    /// `https://` uses TLS with the public roots, and no token is sent.
    pub fn new(url: &str, timeout: Duration, retry_budget: Duration) -> Result<Self, ClientError> {
        Self::with_security(url, timeout, retry_budget, ClientSecurity::default())
    }

    /// As [`FulfilmentClient::new`], with TLS files and a bearer token.
    pub fn with_security(
        url: &str,
        timeout: Duration,
        retry_budget: Duration,
        security: ClientSecurity,
    ) -> Result<Self, ClientError> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())?;
        if let Some(tls) = security.tls.client_config(url)? {
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(FulfilmentClient {
            client: PaymentEventServiceClient::new(channel),
            timeout,
            retry_budget,
            token: security.token,
        })
    }

    /// A refused token that the token file has since replaced: worth a
    /// retry with the new one.
    fn token_rotated(&self, status: &Status) -> bool {
        status.code() == Code::Unauthenticated
            && self.token.as_ref().is_some_and(TokenFile::refresh)
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
            if let Some(token) = &self.token {
                request
                    .metadata_mut()
                    .insert("authorization", token.value());
            }
            let answer = self
                .client
                .clone()
                .record_payment_event(request)
                .instrument(span)
                .await;
            match answer {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if refused(&status) => {
                    return Err(RecordError::Refused(describe(&status)));
                }
                Err(status) if retryable(&status) || self.token_rotated(&status) => {
                    let spent = started.elapsed();
                    if spent + backoff >= self.retry_budget {
                        return Err(RecordError::Unavailable(describe(&status)));
                    }
                    tracing::warn!(code = ?status.code(), retry_in = ?backoff, "fulfilment call failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(status)
                    if matches!(
                        status.code(),
                        Code::Unauthenticated | Code::PermissionDenied
                    ) =>
                {
                    // The provider retries later; the operator must fix the token.
                    tracing::error!(code = ?status.code(), message = status.message(), "the fulfilment service refused the adapter's credentials (FULFIL_FULFILMENT_TOKEN_FILE)");
                    return Err(RecordError::Unavailable(describe(&status)));
                }
                Err(status) => return Err(RecordError::Unavailable(describe(&status))),
            }
        }
    }
}

/// Failures that say nothing about the event, only about the service or
/// the connection to it. Every one may have happened after the service
/// committed, so retrying relies on RecordPaymentEvent being idempotent on
/// `(source, event_id)`: a repeat answers `duplicate` with the first
/// outcome and changes nothing. `Cancelled` is what a call in flight gets
/// when the server goes away mid-call (a replica killed or restarting), so
/// it is as transient as `Unavailable`.
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Unknown
    )
}

/// Answers about the event itself, which a retry cannot change: it is
/// invalid, a value of it cannot be stored, or it is larger than the
/// service accepts (RESOURCE_EXHAUSTED also means overload, which is
/// retried; only `MESSAGE_TOO_LARGE` says it is this message).
fn refused(status: &Status) -> bool {
    use tonic_types::StatusExt;
    match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition => true,
        Code::ResourceExhausted => status
            .get_details_error_info()
            .is_some_and(|info| info.reason == "MESSAGE_TOO_LARGE"),
        _ => false,
    }
}

fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_about_the_event_are_refusals_and_overload_is_not() {
        use tonic_types::{ErrorDetails, StatusExt};
        let too_large = Status::with_error_details(
            Code::ResourceExhausted,
            "message too large",
            ErrorDetails::with_error_info("MESSAGE_TOO_LARGE", "fulfil.dev", []),
        );
        assert!(refused(&too_large));
        assert!(refused(&Status::new(Code::InvalidArgument, "")));
        assert!(refused(&Status::new(Code::FailedPrecondition, "")));
        let overloaded = Status::new(Code::ResourceExhausted, "queue full");
        assert!(!refused(&overloaded));
        assert!(retryable(&overloaded));
        assert!(!refused(&Status::new(Code::Unavailable, "")));
    }

    #[test]
    fn transient_failures_are_retried_and_refusals_are_not() {
        for code in [
            Code::Unavailable,
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Aborted,
            Code::Unknown,
        ] {
            assert!(retryable(&Status::new(code, "")), "{code:?} is retried");
        }
        for code in [
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::NotFound,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::Unimplemented,
            Code::Internal,
            Code::OutOfRange,
        ] {
            assert!(
                !retryable(&Status::new(code, "")),
                "{code:?} is not retried"
            );
        }
    }
}
