//! Table `orders`: the current state of every order.

use sea_orm::entity::prelude::*;

use crate::order::OrderState;

/// One row of `orders`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    /// Insertion sequence: the keyset for pagination (never reused).
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Public id, unique.
    #[sea_orm(unique)]
    pub order_id: String,
    /// Owning customer.
    pub customer_id: String,
    /// Lifecycle state.
    pub state: OrderState,
    /// ISO 4217, upper case.
    pub currency: String,
    /// Minor units.
    pub amount_total: i64,
    /// Minor units.
    pub amount_paid: i64,
    /// Minor units.
    pub amount_refunded: i64,
    /// JSON array of line items.
    pub line_items: String,
    /// JSON object of metadata.
    pub metadata: String,
    /// Incremented on every change.
    pub version: i64,
    /// CreateOrder idempotency key, unique when present.
    #[sea_orm(unique)]
    pub request_id: Option<String>,
    /// Fingerprint of the creating request.
    pub request_hash: Option<String>,
    /// Unix microseconds.
    pub create_time: i64,
    /// Unix microseconds.
    pub update_time: i64,
    /// Unix microseconds.
    pub fulfil_time: Option<i64>,
    /// Unix microseconds.
    pub cancel_time: Option<i64>,
    /// Given to CancelOrder.
    pub cancel_reason: Option<String>,
    /// A payment is disputed.
    pub disputed: bool,
    /// Why someone should look at the order.
    pub attention_reason: Option<String>,
    /// The merged payment summary (`storage::summary_codec`).
    pub payment_summary: Option<Vec<u8>>,
    /// The `version` the summary was written at; any other value (or none)
    /// means the summary is stale and is rebuilt from the ledger.
    pub summary_version: Option<i64>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
