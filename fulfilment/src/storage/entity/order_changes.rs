//! Table `order_changes`: the change feed. One row per committed order
//! change, appended in the same transaction as the change, in commit order.

use sea_orm::entity::prelude::*;

use crate::order::OrderState;

/// One row of `order_changes`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_changes")]
pub struct Model {
    /// Feed position; a subscriber's cursor.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// The order that changed.
    pub order_id: String,
    /// Its customer, for filtered subscriptions.
    pub customer_id: String,
    /// Its state after the change.
    pub state: OrderState,
    /// Its version after the change.
    pub version: i64,
    /// The whole order after the change as JSON, in rows written before
    /// `order_pb` existed; empty in newer rows.
    pub snapshot: String,
    /// The whole order after the change, an encoded `fulfil.v1.Order`.
    pub order_pb: Option<Vec<u8>>,
    /// Unix microseconds of the commit.
    pub commit_time: i64,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
