//! The order domain: what an order is, how a new one is validated, and which
//! commands its state allows.

mod currency;
mod draft;
mod error;
mod state;

use std::collections::BTreeMap;

pub use currency::Currency;
pub use draft::{FieldViolation, LineItemDraft, MAX_LINE_ITEMS, NewOrder, OrderDraft};
pub use error::OrderError;
pub use state::{ALL_STATES, OrderState, Refusal, Transition, derive_state};

/// Microseconds since the Unix epoch, UTC. Stored as an integer so SQLite and
/// PostgreSQL round-trip it exactly, and so protobuf Timestamps do too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMicros(pub i64);

impl UnixMicros {
    /// The current time.
    pub fn now() -> Self {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UnixMicros(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }
}

/// An order id: 1-64 characters of `[A-Za-z0-9_-]`, safe in URLs and logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(String);

impl OrderId {
    /// Longest accepted id.
    pub const MAX_LEN: usize = 64;

    /// Validates a client-supplied id.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("must not be empty");
        }
        if raw.len() > Self::MAX_LEN {
            return Err("must be at most 64 characters");
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err("may contain only letters, digits, '_' and '-'");
        }
        Ok(OrderId(raw.to_owned()))
    }

    /// A new id: `ord_` and a time-ordered UUIDv7 in hex.
    pub fn generate() -> Self {
        OrderId(format!("ord_{}", uuid::Uuid::now_v7().simple()))
    }

    /// Wraps an id read back from storage, where it was validated on the way in.
    pub(crate) fn from_trusted(raw: String) -> Self {
        OrderId(raw)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One line of an order, validated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineItem {
    /// Product identifier.
    pub sku: String,
    /// Units ordered, at least 1.
    pub quantity: i64,
    /// Price of one unit in minor units.
    pub unit_amount: i64,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Unique id.
    pub order_id: OrderId,
    /// The customer it belongs to.
    pub customer_id: String,
    /// Lifecycle state.
    pub state: OrderState,
    /// What was ordered.
    pub line_items: Vec<LineItem>,
    /// Currency of every amount.
    pub currency: Currency,
    /// Sum of the line items, minor units.
    pub amount_total: i64,
    /// Captured so far, minor units.
    pub amount_paid: i64,
    /// Refunded so far, minor units.
    pub amount_refunded: i64,
    /// Incremented by one on every change; 1 when created.
    pub version: i64,
    /// Creation time.
    pub create_time: UnixMicros,
    /// Time of the last change.
    pub update_time: UnixMicros,
    /// Client key/value pairs.
    pub metadata: BTreeMap<String, String>,
    /// When it was fulfilled.
    pub fulfil_time: Option<UnixMicros>,
    /// When it was cancelled.
    pub cancel_time: Option<UnixMicros>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// A payment is disputed.
    pub disputed: bool,
    /// Why someone should look at it (a payment that did not fit).
    pub attention_reason: Option<String>,
}

impl Order {
    /// A new order as `new` describes it, created at `now`, before any
    /// payment.
    pub fn new(new: &NewOrder, order_id: OrderId, now: UnixMicros) -> Self {
        Order {
            order_id,
            customer_id: new.customer_id.clone(),
            state: OrderState::PendingPayment,
            line_items: new.line_items.clone(),
            currency: new.currency,
            amount_total: new.amount_total,
            amount_paid: 0,
            amount_refunded: 0,
            version: 1,
            create_time: now,
            update_time: now,
            metadata: new.metadata.clone(),
            fulfil_time: None,
            cancel_time: None,
            cancel_reason: None,
            disputed: false,
            attention_reason: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids() {
        assert!(OrderId::parse("order-42_A").is_ok());
        assert!(OrderId::parse(&"a".repeat(64)).is_ok());
        assert!(OrderId::parse(&"a".repeat(65)).is_err());
        for bad in ["", "a b", "a/b", "ö", "a.b", "%2F"] {
            assert!(OrderId::parse(bad).is_err(), "{bad:?}");
        }
        let generated = OrderId::generate();
        assert!(OrderId::parse(generated.as_str()).is_ok());
        assert_ne!(generated, OrderId::generate());
    }
}
