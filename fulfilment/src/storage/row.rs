//! Conversions between table rows and domain orders.

use std::collections::BTreeMap;

use sea_orm::ActiveValue::{NotSet, Set};

use super::StorageError;
use super::entity::{order_changes, orders};
use crate::order::{Currency, LineItem, Order, OrderId, OrderState, UnixMicros};

/// Decodes a row into an order.
pub(crate) fn to_order(row: &orders::Model) -> Result<Order, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("order {}: {what}", row.order_id));
    Ok(Order {
        order_id: OrderId::from_trusted(row.order_id.clone()),
        customer_id: row.customer_id.clone(),
        state: OrderState::parse(&row.state).ok_or_else(|| corrupt("state"))?,
        line_items: serde_json::from_str::<Vec<LineItem>>(&row.line_items)
            .map_err(|_| corrupt("line_items"))?,
        currency: Currency::parse(&row.currency).ok_or_else(|| corrupt("currency"))?,
        amount_total: row.amount_total,
        amount_paid: row.amount_paid,
        amount_refunded: row.amount_refunded,
        version: row.version,
        create_time: UnixMicros(row.create_time),
        update_time: UnixMicros(row.update_time),
        metadata: serde_json::from_str::<BTreeMap<String, String>>(&row.metadata)
            .map_err(|_| corrupt("metadata"))?,
        fulfil_time: row.fulfil_time.map(UnixMicros),
        cancel_time: row.cancel_time.map(UnixMicros),
        cancel_reason: row.cancel_reason.clone(),
        disputed: row.disputed,
        attention_reason: row.attention_reason.clone(),
    })
}

/// Decodes a feed snapshot back into an order.
pub(crate) fn snapshot_to_order(snapshot: &str) -> Result<Order, StorageError> {
    let row: orders::Model = serde_json::from_str(snapshot)
        .map_err(|e| StorageError::Corrupt(format!("feed snapshot: {e}")))?;
    to_order(&row)
}

/// The feed row recording `row` as committed at `now`. The snapshot leaves
/// out the creating request's idempotency data, which is nobody's business.
pub(crate) fn feed_row(
    row: &orders::Model,
    now: UnixMicros,
) -> Result<order_changes::ActiveModel, StorageError> {
    let public = orders::Model {
        request_id: None,
        request_hash: None,
        ..row.clone()
    };
    let snapshot = serde_json::to_string(&public)
        .map_err(|e| StorageError::Corrupt(format!("feed snapshot: {e}")))?;
    Ok(order_changes::ActiveModel {
        seq: NotSet,
        order_id: Set(row.order_id.clone()),
        customer_id: Set(row.customer_id.clone()),
        state: Set(row.state.clone()),
        version: Set(row.version),
        snapshot: Set(snapshot),
        commit_time: Set(now.0),
    })
}
