//! What can go wrong with an order operation, independent of transport.

use super::{FieldViolation, OrderState, Refusal};
use crate::storage::StorageError;

/// The failure of an order operation. The gRPC layer maps each variant to a
/// status code and an ErrorInfo reason in one place (`api::status`).
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The request is malformed; nothing was changed.
    #[error("the request has {} invalid field(s)", .0.len())]
    InvalidArgument(Vec<FieldViolation>),
    /// No order has this id.
    #[error("order {0:?} does not exist")]
    NotFound(String),
    /// A client-chosen id is taken.
    #[error("order {0:?} already exists")]
    AlreadyExists(String),
    /// The `request_id` was used before for a request with other content.
    #[error("request_id {0:?} was already used for a different request")]
    RequestIdReused(String),
    /// The command is not legal in the order's state.
    #[error("order {order_id:?} is {state}: {refusal}")]
    Refused {
        /// The order.
        order_id: String,
        /// Its current state.
        state: OrderState,
        /// Why the command is refused.
        refusal: Refusal,
    },
    /// `expected_version` did not match.
    #[error("order {order_id:?} is at version {actual}, not the expected {expected}")]
    VersionMismatch {
        /// The order.
        order_id: String,
        /// What the client expected.
        expected: i64,
        /// What the order is at.
        actual: i64,
    },
    /// The database failed or could not be reached; the caller may retry.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
