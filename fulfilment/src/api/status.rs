//! The one place where errors become gRPC statuses.
//!
//! Every status carries a google.rpc.ErrorInfo with a stable `reason` and the
//! domain [`ERROR_DOMAIN`]; validation errors add a google.rpc.BadRequest.
//! Refused calls ([`crate::auth::AuthError`]) become UNAUTHENTICATED or
//! PERMISSION_DENIED here too, messages over the size limit
//! ([`crate::server::MessageTooLarge`]) RESOURCE_EXHAUSTED.
//! Storage failures are logged here in full and reach the client only as a
//! generic message, never with internals: UNAVAILABLE for an outage, the
//! caller's error when the database refused the request's data.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::order::{FieldViolation, OrderError};
use crate::storage::StorageError;

/// The ErrorInfo domain of every Fulfil error.
pub const ERROR_DOMAIN: &str = "fulfil.dev";

fn status(
    code: Code,
    message: String,
    reason: &str,
    metadata: &[(&str, String)],
    mut details: ErrorDetails,
) -> Status {
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// INVALID_ARGUMENT with one BadRequest violation per field.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    let summary: Vec<String> = violations
        .iter()
        .take(3)
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect();
    let more = violations.len().saturating_sub(3);
    let mut message = format!("invalid request: {}", summary.join("; "));
    if more > 0 {
        message.push_str(&format!(" (and {more} more)"));
    }
    status(
        Code::InvalidArgument,
        message,
        "INVALID_ARGUMENT",
        &[],
        details,
    )
}

impl From<OrderError> for Status {
    fn from(err: OrderError) -> Self {
        let message = err.to_string();
        match err {
            OrderError::InvalidArgument(violations) => invalid_argument(&violations),
            OrderError::NotFound(order_id) => status(
                Code::NotFound,
                message,
                "ORDER_NOT_FOUND",
                &[("order_id", order_id)],
                ErrorDetails::new(),
            ),
            OrderError::AlreadyExists(order_id) => status(
                Code::AlreadyExists,
                message,
                "ORDER_ALREADY_EXISTS",
                &[("order_id", order_id)],
                ErrorDetails::new(),
            ),
            OrderError::RequestIdReused(_) => {
                let mut details = ErrorDetails::new();
                details.add_bad_request_violation(
                    "request_id",
                    "already used for a request with different content",
                );
                status(
                    Code::InvalidArgument,
                    message,
                    "REQUEST_ID_REUSED",
                    &[],
                    details,
                )
            }
            OrderError::Refused {
                order_id,
                state,
                refusal,
            } => status(
                Code::FailedPrecondition,
                message,
                refusal.reason(),
                &[("order_id", order_id), ("state", state.as_str().to_owned())],
                ErrorDetails::new(),
            ),
            OrderError::VersionMismatch {
                order_id,
                expected,
                actual,
            } => status(
                Code::Aborted,
                message,
                "VERSION_MISMATCH",
                &[
                    ("order_id", order_id),
                    ("expected_version", expected.to_string()),
                    ("current_version", actual.to_string()),
                ],
                ErrorDetails::new(),
            ),
            OrderError::Storage(err) => storage(&err),
        }
    }
}

impl From<crate::checkout::CheckoutError> for Status {
    fn from(err: crate::checkout::CheckoutError) -> Self {
        use crate::checkout::{CheckoutError, StripeError};
        let message = err.to_string();
        match err {
            CheckoutError::Order(err) => err.into(),
            CheckoutError::Auth(err) => err.into(),
            CheckoutError::NotConfigured(what) => status(
                Code::FailedPrecondition,
                message,
                "CHECKOUT_NOT_CONFIGURED",
                &[("missing", what.to_owned())],
                ErrorDetails::new(),
            ),
            CheckoutError::FlowUnavailable(flow) => status(
                Code::Unimplemented,
                message,
                "CHECKOUT_FLOW_UNAVAILABLE",
                &[("flow", flow.as_str().to_owned())],
                ErrorDetails::new(),
            ),
            CheckoutError::InProgress { order_id, open } => status(
                Code::FailedPrecondition,
                message,
                "CHECKOUT_IN_PROGRESS",
                &[("order_id", order_id), ("flow", open.as_str().to_owned())],
                ErrorDetails::new(),
            ),
            CheckoutError::Provider { provider, source } => {
                let provider = provider.as_str().to_owned();
                match source {
                    StripeError::Refused {
                        status: http_status,
                        kind,
                        code,
                        message: _,
                    } => {
                        tracing::warn!(error = %message, "the payment provider refused a request");
                        let mut metadata = vec![
                            ("provider", provider),
                            ("http_status", http_status.to_string()),
                            ("type", kind),
                        ];
                        if let Some(code) = code {
                            metadata.push(("code", code));
                        }
                        status(
                            Code::FailedPrecondition,
                            message,
                            "PROVIDER_REFUSED",
                            &metadata,
                            ErrorDetails::new(),
                        )
                    }
                    StripeError::Unavailable(_) => {
                        tracing::warn!(error = %message, "payment provider unavailable");
                        let mut details = ErrorDetails::new();
                        details.set_retry_info(Some(Duration::from_secs(1)));
                        status(
                            Code::Unavailable,
                            format!("{provider} is unavailable; retrying the same call is safe"),
                            "PROVIDER_UNAVAILABLE",
                            &[("provider", provider)],
                            details,
                        )
                    }
                    StripeError::Credentials { .. } | StripeError::Malformed(_) => {
                        // Our configuration or a bug: details in the log only.
                        tracing::error!(error = %message, "payment provider call failed");
                        status(
                            Code::Internal,
                            format!("{provider} could not be used; see the server log"),
                            "PROVIDER_MISCONFIGURED",
                            &[("provider", provider)],
                            ErrorDetails::new(),
                        )
                    }
                }
            }
        }
    }
}

impl From<crate::stream::watch::StreamError> for Status {
    fn from(err: crate::stream::watch::StreamError) -> Self {
        use crate::stream::watch::StreamError;
        let message = err.to_string();
        match err {
            StreamError::CursorExpired => status(
                Code::OutOfRange,
                message,
                "CURSOR_EXPIRED",
                &[],
                ErrorDetails::new(),
            ),
            StreamError::ShuttingDown => status(
                Code::Unavailable,
                message,
                "SHUTTING_DOWN",
                &[],
                ErrorDetails::new(),
            ),
            StreamError::ReadFailed => status(
                Code::Unavailable,
                message,
                "FEED_READ_FAILED",
                &[],
                ErrorDetails::new(),
            ),
            StreamError::Storage(err) => storage(&err),
        }
    }
}

impl From<crate::server::MessageTooLarge> for Status {
    fn from(err: crate::server::MessageTooLarge) -> Self {
        use crate::server::MessageTooLarge;
        let (message, limit) = match err {
            MessageTooLarge::Request { limit } => ("request", limit),
            MessageTooLarge::Response { limit } => ("response", limit),
        };
        status(
            Code::ResourceExhausted,
            err.to_string(),
            "MESSAGE_TOO_LARGE",
            &[
                ("message", message.to_owned()),
                ("limit_bytes", limit.to_string()),
            ],
            ErrorDetails::new(),
        )
    }
}

impl From<crate::auth::AuthError> for Status {
    fn from(err: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError;
        let message = err.to_string();
        match err {
            AuthError::TokenMissing => status(
                Code::Unauthenticated,
                message,
                "TOKEN_MISSING",
                &[],
                ErrorDetails::new(),
            ),
            AuthError::TokenInvalid(problem) => status(
                Code::Unauthenticated,
                message,
                "TOKEN_INVALID",
                &[("problem", problem.as_str().to_owned())],
                ErrorDetails::new(),
            ),
            AuthError::TokenExpired => status(
                Code::Unauthenticated,
                message,
                "TOKEN_EXPIRED",
                &[],
                ErrorDetails::new(),
            ),
            AuthError::ScopeRequired(scope) => status(
                Code::PermissionDenied,
                message,
                "SCOPE_INSUFFICIENT",
                &[("required_scope", scope.as_str().to_owned())],
                ErrorDetails::new(),
            ),
            AuthError::CustomerMismatch => status(
                Code::PermissionDenied,
                message,
                "CUSTOMER_MISMATCH",
                &[],
                ErrorDetails::new(),
            ),
        }
    }
}

/// UNAVAILABLE (retry) for database trouble only; INVALID_ARGUMENT or
/// FAILED_PRECONDITION when the database refused the request's own data
/// (retrying the same request cannot help); INTERNAL for data that cannot
/// be decoded or statements that cannot be built. Details stay in the log.
pub fn storage(err: &StorageError) -> Status {
    match err {
        StorageError::ValueRefused(_) => {
            tracing::warn!(error = %err, "the database refused a value of the request");
            status(
                Code::InvalidArgument,
                "the request holds a value that cannot be stored".into(),
                "VALUE_NOT_STORABLE",
                &[],
                ErrorDetails::new(),
            )
        }
        StorageError::ConstraintViolated(_) => {
            tracing::warn!(error = %err, "the database refused the change");
            status(
                Code::FailedPrecondition,
                "the request conflicts with stored data".into(),
                "CONSTRAINT_VIOLATED",
                &[],
                ErrorDetails::new(),
            )
        }
        StorageError::Db(_) | StorageError::Conflict(_) | StorageError::WriterStopped => {
            tracing::error!(error = %err, "storage unavailable");
            let mut details = ErrorDetails::new();
            details.set_retry_info(Some(Duration::from_millis(500)));
            status(
                Code::Unavailable,
                "the order database is unavailable; retry with backoff".into(),
                "STORAGE_UNAVAILABLE",
                &[],
                details,
            )
        }
        StorageError::Corrupt(_) | StorageError::Statement(_) => {
            tracing::error!(error = %err, "internal storage error");
            status(
                Code::Internal,
                "internal error".into(),
                "INTERNAL",
                &[],
                ErrorDetails::new(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{OrderState, Refusal};

    #[test]
    fn refusals_carry_their_reason() {
        let status = Status::from(OrderError::Refused {
            order_id: "o1".into(),
            state: OrderState::PendingPayment,
            refusal: Refusal::NotPaid,
        });
        assert_eq!(status.code(), Code::FailedPrecondition);
        let info = status.get_details_error_info();
        assert_eq!(
            info.as_ref().map(|i| i.reason.as_str()),
            Some("ORDER_NOT_PAID")
        );
        assert_eq!(info.as_ref().map(|i| i.domain.as_str()), Some(ERROR_DOMAIN));
        assert_eq!(
            info.and_then(|i| i.metadata.get("order_id").cloned())
                .as_deref(),
            Some("o1")
        );
    }

    #[test]
    fn storage_errors_do_not_leak_internals() {
        let err = StorageError::from(sea_orm::DbErr::Custom("password=hunter2 at db:5432".into()));
        let status = Status::from(OrderError::Storage(err));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("hunter2"));
        assert!(!format!("{:?}", status.details()).contains("hunter2"));
    }

    #[test]
    fn only_outages_are_unavailable() {
        let db = || std::sync::Arc::new(sea_orm::DbErr::Custom("secret internals".into()));
        for (err, code, reason) in [
            (
                StorageError::Db(db()),
                Code::Unavailable,
                "STORAGE_UNAVAILABLE",
            ),
            (
                StorageError::ValueRefused(db()),
                Code::InvalidArgument,
                "VALUE_NOT_STORABLE",
            ),
            (
                StorageError::ConstraintViolated(db()),
                Code::FailedPrecondition,
                "CONSTRAINT_VIOLATED",
            ),
        ] {
            let status = storage(&err);
            assert_eq!(status.code(), code);
            let info = status.get_details_error_info();
            assert_eq!(info.map(|i| i.reason), Some(reason.to_owned()));
            assert!(!status.message().contains("secret"));
        }
    }

    #[test]
    fn auth_errors_map_to_their_codes_and_reasons() {
        use crate::auth::{AuthError, InvalidToken, Scope};
        let cases = [
            (
                AuthError::TokenMissing,
                Code::Unauthenticated,
                "TOKEN_MISSING",
            ),
            (
                AuthError::TokenInvalid(InvalidToken::Signature),
                Code::Unauthenticated,
                "TOKEN_INVALID",
            ),
            (
                AuthError::TokenExpired,
                Code::Unauthenticated,
                "TOKEN_EXPIRED",
            ),
            (
                AuthError::ScopeRequired(Scope::OrdersWrite),
                Code::PermissionDenied,
                "SCOPE_INSUFFICIENT",
            ),
            (
                AuthError::CustomerMismatch,
                Code::PermissionDenied,
                "CUSTOMER_MISMATCH",
            ),
        ];
        for (err, code, reason) in cases {
            let status = Status::from(err);
            assert_eq!(status.code(), code);
            let info = status.get_details_error_info();
            assert_eq!(info.as_ref().map(|i| i.reason.as_str()), Some(reason));
            assert_eq!(info.map(|i| i.domain), Some(ERROR_DOMAIN.to_owned()));
        }
    }

    #[test]
    fn checkout_errors_map_to_their_codes_and_reasons() {
        use crate::checkout::{CheckoutError, Flow, StripeError};
        let refused = Status::from(CheckoutError::from(StripeError::Refused {
            status: 402,
            kind: "card_error".into(),
            code: Some("card_declined".into()),
            message: "Your card was declined.".into(),
        }));
        assert_eq!(refused.code(), Code::FailedPrecondition);
        let info = refused.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "PROVIDER_REFUSED");
        assert_eq!(
            info.metadata.get("code").map(String::as_str),
            Some("card_declined")
        );
        assert_eq!(
            info.metadata.get("provider").map(String::as_str),
            Some("stripe")
        );
        for (err, code, reason) in [
            (
                CheckoutError::from(StripeError::Unavailable("timed out".into())),
                Code::Unavailable,
                "PROVIDER_UNAVAILABLE",
            ),
            (
                CheckoutError::from(StripeError::Credentials { status: 401 }),
                Code::Internal,
                "PROVIDER_MISCONFIGURED",
            ),
            (
                CheckoutError::NotConfigured("Stripe key"),
                Code::FailedPrecondition,
                "CHECKOUT_NOT_CONFIGURED",
            ),
            (
                CheckoutError::FlowUnavailable(Flow::PaypalOrder),
                Code::Unimplemented,
                "CHECKOUT_FLOW_UNAVAILABLE",
            ),
        ] {
            let status = Status::from(err);
            assert_eq!(status.code(), code);
            assert_eq!(
                status.get_details_error_info().map(|i| i.reason),
                Some(reason.to_owned())
            );
        }
    }

    #[test]
    fn validation_lists_every_field() {
        let status =
            invalid_argument(&[FieldViolation::new("a", "x"), FieldViolation::new("b", "y")]);
        let fields: Vec<String> = status
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["a", "b"]);
    }
}
