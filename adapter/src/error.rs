//! Every way a webhook delivery can fail, mapped once to an HTTP status and
//! a small JSON body: `{"code": "...", "message": "..."}`. The `code` is
//! stable and machine-readable; neither field ever carries a secret or an
//! internal error.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::fulfilment_client::RecordError;
use crate::normalize::NormalizeError;
use crate::verify::VerifyError;

/// Seconds a provider should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

/// A failed delivery.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No source has this name.
    #[error("no webhook source is configured under this name")]
    UnknownSource,
    /// The body is larger than the limit.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body could not be read.
    #[error("the body could not be read")]
    BadBody,
    /// The client stopped sending its body.
    #[error("the body did not arrive in time")]
    BodyTimeout,
    /// Too many bodies are in flight; the provider should come back.
    #[error("too many webhooks in flight; retry later")]
    Overloaded,
    /// Content-Type is not JSON.
    #[error("the content type must be application/json")]
    NotJson,
    /// Signature, timestamp or token check failed.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The verified payload is not what the provider sends.
    #[error(transparent)]
    Payload(#[from] NormalizeError),
    /// The fulfilment service refused the event.
    #[error("the event was refused as invalid")]
    Refused,
    /// The fulfilment service could not record it now.
    #[error("the event could not be recorded now; retry later")]
    Unavailable,
}

impl From<RecordError> for WebhookError {
    fn from(err: RecordError) -> Self {
        // The details go to the log, not to the provider.
        tracing::error!(error = %err, "recording failed");
        match err {
            RecordError::Unavailable(_) => WebhookError::Unavailable,
            RecordError::Refused(_) => WebhookError::Refused,
        }
    }
}

impl WebhookError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::UnknownSource => "unknown_source",
            WebhookError::TooLarge(_) => "payload_too_large",
            WebhookError::BadBody => "unreadable_body",
            WebhookError::BodyTimeout => "body_timeout",
            WebhookError::Overloaded => "overloaded",
            WebhookError::NotJson => "unsupported_media_type",
            WebhookError::Verify(e) => e.code(),
            WebhookError::Payload(e) => e.code(),
            WebhookError::Refused => "event_refused",
            WebhookError::Unavailable => "temporarily_unavailable",
        }
    }

    /// Refused before the whole body was read.
    fn leaves_body_unread(&self) -> bool {
        matches!(
            self,
            WebhookError::TooLarge(_)
                | WebhookError::BadBody
                | WebhookError::BodyTimeout
                | WebhookError::Overloaded
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            WebhookError::UnknownSource => StatusCode::NOT_FOUND,
            WebhookError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::BadBody | WebhookError::Payload(_) => StatusCode::BAD_REQUEST,
            WebhookError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            WebhookError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebhookError::Verify(e) => {
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            WebhookError::Refused => StatusCode::BAD_REQUEST,
            WebhookError::Unavailable | WebhookError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(serde_json::json!({ "code": self.code(), "message": self.to_string() }));
        let mut response = (status, body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if self.leaves_body_unread() {
            // The rest of the body may still come, so the connection cannot
            // carry another request. Saying so keeps a client from reusing
            // it from its pool and losing its next request to our close.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
