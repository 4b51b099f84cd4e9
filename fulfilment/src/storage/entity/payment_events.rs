//! Table `payment_events`: the ledger of every verified provider event,
//! unique per (source, event_id).

use sea_orm::entity::prelude::*;

use crate::payment_event::{EventKind, Outcome};

/// One row of `payment_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_events")]
pub struct Model {
    /// Ledger position (keyset for listing).
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Adapter source name.
    pub source: String,
    /// Provider event id.
    pub event_id: String,
    /// Provider kind.
    pub provider: String,
    /// What happened.
    pub kind: EventKind,
    /// Provider type name.
    pub event_type: String,
    /// Order named by the event ("" if none).
    pub order_ref: String,
    /// Provider payment ("" if none).
    pub payment_ref: String,
    /// Provider refund or dispute ("" if none).
    pub refund_ref: String,
    /// Minor units.
    pub amount: i64,
    /// Refund amount is a running total.
    pub amount_is_cumulative: bool,
    /// ISO 4217.
    pub currency: Option<String>,
    /// Provider time, unix microseconds.
    pub occur_time: i64,
    /// App user.
    pub customer_ref: String,
    /// Product.
    pub product_ref: String,
    /// JSON array of grants.
    pub entitlements: String,
    /// The raw verified body.
    pub payload: Vec<u8>,
    /// What recording it did.
    pub outcome: Outcome,
    /// The order it was applied to.
    pub order_id: Option<String>,
    /// Why it was not applied as is.
    pub note: Option<String>,
    /// Unix microseconds.
    pub record_time: i64,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
