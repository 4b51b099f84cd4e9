//! Payment events: what a provider reported, recorded once per (source,
//! event id) in the ledger, and applied to an order.
//!
//! - [`apply`]: the rules: what an event is about, its outcome, and what it
//!   does to its order.
//! - [`summary`]: how an order's events add up, independent of arrival order.
//!
//! Storage (`storage::record`) finds orders, claims events and writes what
//! these decide.

pub mod apply;
pub mod summary;

use crate::order::{Currency, FieldViolation, UnixMicros};

/// What happened, in provider-neutral terms (the proto `PaymentEvent.Kind`).
/// Stored as its proto value name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    sea_orm::EnumIter,
    sea_orm::DeriveActiveEnum,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum EventKind {
    /// Started, not settled.
    #[sea_orm(string_value = "PAYMENT_PROCESSING")]
    PaymentProcessing,
    /// Settled: money captured.
    #[sea_orm(string_value = "PAYMENT_SUCCEEDED")]
    PaymentSucceeded,
    /// An attempt failed.
    #[sea_orm(string_value = "PAYMENT_FAILED")]
    PaymentFailed,
    /// An attempt was cancelled before settling.
    #[sea_orm(string_value = "PAYMENT_CANCELLED")]
    PaymentCancelled,
    /// Money returned.
    #[sea_orm(string_value = "REFUNDED")]
    Refunded,
    /// A dispute was opened.
    #[sea_orm(string_value = "DISPUTE_OPENED")]
    DisputeOpened,
    /// A dispute ended.
    #[sea_orm(string_value = "DISPUTE_CLOSED")]
    DisputeClosed,
    /// In-app purchase.
    #[sea_orm(string_value = "PURCHASE")]
    Purchase,
    /// Subscription renewal.
    #[sea_orm(string_value = "RENEWAL")]
    Renewal,
    /// Auto-renew turned off.
    #[sea_orm(string_value = "CANCELLATION")]
    Cancellation,
    /// Auto-renew turned back on.
    #[sea_orm(string_value = "UNCANCELLATION")]
    Uncancellation,
    /// Access ended.
    #[sea_orm(string_value = "EXPIRATION")]
    Expiration,
    /// A renewal payment failed.
    #[sea_orm(string_value = "BILLING_ISSUE")]
    BillingIssue,
    /// Product switched.
    #[sea_orm(string_value = "PRODUCT_CHANGE")]
    ProductChange,
    /// Purchases moved between users.
    #[sea_orm(string_value = "TRANSFER")]
    Transfer,
    /// Provider test event.
    #[sea_orm(string_value = "TEST")]
    Test,
    /// Anything else.
    #[sea_orm(string_value = "OTHER")]
    Other,
}

/// Every kind, for exhaustive tests and name lookups.
pub const ALL_KINDS: [EventKind; 17] = [
    EventKind::PaymentProcessing,
    EventKind::PaymentSucceeded,
    EventKind::PaymentFailed,
    EventKind::PaymentCancelled,
    EventKind::Refunded,
    EventKind::DisputeOpened,
    EventKind::DisputeClosed,
    EventKind::Purchase,
    EventKind::Renewal,
    EventKind::Cancellation,
    EventKind::Uncancellation,
    EventKind::Expiration,
    EventKind::BillingIssue,
    EventKind::ProductChange,
    EventKind::Transfer,
    EventKind::Test,
    EventKind::Other,
];

impl EventKind {
    /// The stored name (the proto enum value name).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PaymentProcessing => "PAYMENT_PROCESSING",
            EventKind::PaymentSucceeded => "PAYMENT_SUCCEEDED",
            EventKind::PaymentFailed => "PAYMENT_FAILED",
            EventKind::PaymentCancelled => "PAYMENT_CANCELLED",
            EventKind::Refunded => "REFUNDED",
            EventKind::DisputeOpened => "DISPUTE_OPENED",
            EventKind::DisputeClosed => "DISPUTE_CLOSED",
            EventKind::Purchase => "PURCHASE",
            EventKind::Renewal => "RENEWAL",
            EventKind::Cancellation => "CANCELLATION",
            EventKind::Uncancellation => "UNCANCELLATION",
            EventKind::Expiration => "EXPIRATION",
            EventKind::BillingIssue => "BILLING_ISSUE",
            EventKind::ProductChange => "PRODUCT_CHANGE",
            EventKind::Transfer => "TRANSFER",
            EventKind::Test => "TEST",
            EventKind::Other => "OTHER",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        ALL_KINDS.into_iter().find(|k| k.as_str() == name)
    }

    /// Kinds that change an order that exists beforehand.
    pub fn concerns_order(self) -> bool {
        matches!(
            self,
            EventKind::PaymentProcessing
                | EventKind::PaymentSucceeded
                | EventKind::PaymentFailed
                | EventKind::PaymentCancelled
                | EventKind::Refunded
                | EventKind::DisputeOpened
                | EventKind::DisputeClosed
        )
    }

    /// In-app purchase kinds that grant or change entitlements.
    pub fn concerns_entitlements(self) -> bool {
        matches!(
            self,
            EventKind::Purchase
                | EventKind::Renewal
                | EventKind::Uncancellation
                | EventKind::ProductChange
                | EventKind::Expiration
        )
    }
}

/// What recording an event did. Stored as its proto value name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sea_orm::EnumIter, sea_orm::DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Outcome {
    /// Applied to its order.
    #[sea_orm(string_value = "APPLIED")]
    Applied,
    /// No order yet; kept until one matches.
    #[sea_orm(string_value = "UNMATCHED")]
    Unmatched,
    /// Recorded; changes no order.
    #[sea_orm(string_value = "IGNORED")]
    Ignored,
    /// Amount or currency did not fit the order; recorded, not counted.
    #[sea_orm(string_value = "MISMATCH")]
    Mismatch,
}

impl Outcome {
    /// The stored name (the proto enum value name).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "APPLIED",
            Outcome::Unmatched => "UNMATCHED",
            Outcome::Ignored => "IGNORED",
            Outcome::Mismatch => "MISMATCH",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Outcome::Applied,
            Outcome::Unmatched,
            Outcome::Ignored,
            Outcome::Mismatch,
        ]
        .into_iter()
        .find(|o| o.as_str() == name)
    }
}

/// An entitlement granted by an in-app purchase.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    /// The entitlement.
    pub entitlement_id: String,
    /// When it ends; `None` for lifetime access.
    pub expire_time: Option<i64>,
}

/// A verified, normalised provider event. Its ids and references are
/// identifiers (`fulfil_proto::Identifier`), or empty where optional; the
/// only constructor from outside is `api::convert::event_from_proto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    /// Adapter source name.
    pub source: String,
    /// Provider kind.
    pub provider: String,
    /// Provider event id, unique per source.
    pub event_id: String,
    /// What happened.
    pub kind: EventKind,
    /// The provider's own type name.
    pub event_type: String,
    /// The order it names, if it names one.
    pub order_ref: String,
    /// The provider payment object.
    pub payment_ref: String,
    /// The refund or dispute object.
    pub refund_ref: String,
    /// Minor units.
    pub amount: i64,
    /// Refund amount is a running total.
    pub amount_is_cumulative: bool,
    /// Currency of `amount`, if the event carries money.
    pub currency: Option<Currency>,
    /// Provider time.
    pub occur_time: UnixMicros,
    /// App user (in-app purchases).
    pub customer_ref: String,
    /// Product (in-app purchases).
    pub product_ref: String,
    /// Entitlements granted (in-app purchases).
    pub entitlements: Vec<Grant>,
    /// The raw verified body.
    pub payload: Vec<u8>,
}

impl PaymentEvent {
    /// Checks the rules between fields. Every identifier was parsed already,
    /// where the event came in (`api::convert::event_from_proto`).
    pub fn validate(&self) -> Result<(), Vec<FieldViolation>> {
        let mut violations = Vec::new();
        if self.amount < 0 {
            violations.push(FieldViolation::new("event.amount", "must not be negative"));
        }
        let carries_money = matches!(
            self.kind,
            EventKind::PaymentSucceeded
                | EventKind::Refunded
                | EventKind::Purchase
                | EventKind::Renewal
        );
        if carries_money && self.amount > 0 && self.currency.is_none() {
            violations.push(FieldViolation::new(
                "event.currency",
                "is required with an amount",
            ));
        }
        if self.kind.concerns_entitlements()
            && self.kind != EventKind::Expiration
            && self.customer_ref.is_empty()
        {
            violations.push(FieldViolation::new(
                "event.customer_ref",
                "is required for in-app purchases",
            ));
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }

    /// The reduced form used to sum up an order's payments.
    pub fn fact(&self) -> summary::Fact {
        summary::Fact {
            event_id: self.event_id.clone(),
            kind: self.kind,
            payment_ref: self.payment_ref.clone(),
            refund_ref: self.refund_ref.clone(),
            amount: self.amount,
            amount_is_cumulative: self.amount_is_cumulative,
            occur_time: self.occur_time.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in ALL_KINDS {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        for outcome in [
            Outcome::Applied,
            Outcome::Unmatched,
            Outcome::Ignored,
            Outcome::Mismatch,
        ] {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
    }
}
