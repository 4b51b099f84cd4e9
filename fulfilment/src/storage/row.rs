//! Conversions between table rows and domain orders, and the feed's
//! snapshot format.

use std::collections::BTreeMap;

use prost::Message;

use super::StorageError;
use super::entity::orders;
use crate::api::convert::{order_from_proto, order_to_proto};
use crate::order::{Currency, LineItem, Order, OrderId, OrderState, UnixMicros};

/// Decodes a row into an order.
pub(crate) fn to_order(row: &orders::Model) -> Result<Order, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("order {}: {what}", row.order_id));
    Ok(Order {
        order_id: OrderId::from_trusted(row.order_id.clone()),
        customer_id: row.customer_id.clone(),
        state: row.state,
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

/// The `line_items` column.
pub(crate) fn line_items_json(items: &[LineItem]) -> Result<String, StorageError> {
    serde_json::to_string(items).map_err(|e| StorageError::Statement(format!("line_items: {e}")))
}

/// The `metadata` column.
pub(crate) fn metadata_json(metadata: &BTreeMap<String, String>) -> Result<String, StorageError> {
    serde_json::to_string(metadata).map_err(|e| StorageError::Statement(format!("metadata: {e}")))
}

/// The feed snapshot of an order: an encoded `fulfil.v1.Order`, the public
/// contract, which evolves compatibly by design (a retained feed row stays
/// readable by later releases).
pub(crate) fn feed_snapshot(order: &Order) -> Vec<u8> {
    order_to_proto(order.clone()).encode_to_vec()
}

/// Decodes a feed row's snapshot: protobuf, or the JSON of an `orders` row
/// in feed rows written before protobuf snapshots.
pub(crate) fn snapshot_to_order(
    order_pb: Option<&[u8]>,
    legacy_json: &str,
) -> Result<Order, StorageError> {
    match order_pb {
        Some(bytes) => {
            let pb = fulfil_proto::v1::Order::decode(bytes)
                .map_err(|e| StorageError::Corrupt(format!("feed snapshot: {e}")))?;
            order_from_proto(pb)
                .map_err(|field| StorageError::Corrupt(format!("feed snapshot: {field}")))
        }
        None => legacy::decode(legacy_json),
    }
}

/// Feed snapshots of the first releases: the JSON of an `orders` row.
mod legacy {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Snapshot {
        order_id: String,
        customer_id: String,
        state: String,
        currency: String,
        amount_total: i64,
        amount_paid: i64,
        amount_refunded: i64,
        line_items: String,
        metadata: String,
        version: i64,
        create_time: i64,
        update_time: i64,
        fulfil_time: Option<i64>,
        cancel_time: Option<i64>,
        cancel_reason: Option<String>,
        #[serde(default)]
        disputed: bool,
        #[serde(default)]
        attention_reason: Option<String>,
    }

    pub(super) fn decode(json: &str) -> Result<Order, StorageError> {
        let s: Snapshot = serde_json::from_str(json)
            .map_err(|e| StorageError::Corrupt(format!("feed snapshot: {e}")))?;
        let corrupt = |what: &str| StorageError::Corrupt(format!("feed snapshot: {what}"));
        Ok(Order {
            order_id: OrderId::from_trusted(s.order_id),
            customer_id: s.customer_id,
            state: OrderState::parse(&s.state).ok_or_else(|| corrupt("state"))?,
            line_items: serde_json::from_str(&s.line_items).map_err(|_| corrupt("line_items"))?,
            currency: Currency::parse(&s.currency).ok_or_else(|| corrupt("currency"))?,
            amount_total: s.amount_total,
            amount_paid: s.amount_paid,
            amount_refunded: s.amount_refunded,
            version: s.version,
            create_time: UnixMicros(s.create_time),
            update_time: UnixMicros(s.update_time),
            metadata: serde_json::from_str(&s.metadata).map_err(|_| corrupt("metadata"))?,
            fulfil_time: s.fulfil_time.map(UnixMicros),
            cancel_time: s.cancel_time.map(UnixMicros),
            cancel_reason: s.cancel_reason,
            disputed: s.disputed,
            attention_reason: s.attention_reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_json_snapshot_still_decodes() {
        let json = r#"{"id":7,"order_id":"checkout-1","customer_id":"user_42","state":"PAID",
            "currency":"EUR","amount_total":3900,"amount_paid":3900,"amount_refunded":0,
            "line_items":"[{\"sku\":\"tee\",\"quantity\":2,\"unit_amount\":1950}]",
            "metadata":"{\"k\":\"v\"}","version":2,"request_id":null,"request_hash":null,
            "create_time":1,"update_time":2,"fulfil_time":null,"cancel_time":null,
            "cancel_reason":null,"disputed":false,"attention_reason":null}"#;
        let order = snapshot_to_order(None, json).expect("decodes");
        assert_eq!(order.state, OrderState::Paid);
        assert_eq!(order.line_items[0].quantity, 2);
        // And a protobuf snapshot of it round-trips.
        let again = snapshot_to_order(Some(&feed_snapshot(&order)), "").expect("decodes");
        assert_eq!(again, order);
    }
}
