//! Conversions between the fulfil.v1 messages and the order domain.

use fulfil_proto::v1 as pb;
use pb::order::State as PbState;

use crate::order::{
    Currency, FieldViolation, LineItem, LineItemDraft, Order, OrderDraft, OrderId, OrderState,
    UnixMicros,
};
use crate::payment_event::{EventKind, Grant, PaymentEvent};

/// Domain state to proto enum.
pub fn state_to_proto(state: OrderState) -> PbState {
    match state {
        OrderState::PendingPayment => PbState::PendingPayment,
        OrderState::PaymentProcessing => PbState::PaymentProcessing,
        OrderState::PaymentFailed => PbState::PaymentFailed,
        OrderState::Paid => PbState::Paid,
        OrderState::Fulfilled => PbState::Fulfilled,
        OrderState::Cancelled => PbState::Cancelled,
        OrderState::PartiallyRefunded => PbState::PartiallyRefunded,
        OrderState::Refunded => PbState::Refunded,
    }
}

/// Proto enum value to domain state; `None` for UNSPECIFIED and unknown values.
pub fn state_from_proto(value: i32) -> Option<OrderState> {
    match PbState::try_from(value).ok()? {
        PbState::Unspecified => None,
        PbState::PendingPayment => Some(OrderState::PendingPayment),
        PbState::PaymentProcessing => Some(OrderState::PaymentProcessing),
        PbState::PaymentFailed => Some(OrderState::PaymentFailed),
        PbState::Paid => Some(OrderState::Paid),
        PbState::Fulfilled => Some(OrderState::Fulfilled),
        PbState::Cancelled => Some(OrderState::Cancelled),
        PbState::PartiallyRefunded => Some(OrderState::PartiallyRefunded),
        PbState::Refunded => Some(OrderState::Refunded),
    }
}

/// Microseconds to a protobuf Timestamp.
pub fn timestamp(t: UnixMicros) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.0.div_euclid(1_000_000),
        nanos: i32::try_from(t.0.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

/// A domain order as the proto message.
pub fn order_to_proto(order: Order) -> pb::Order {
    pb::Order {
        order_id: order.order_id.as_str().to_owned(),
        customer_id: order.customer_id,
        state: state_to_proto(order.state).into(),
        line_items: order
            .line_items
            .into_iter()
            .map(|item| pb::LineItem {
                sku: item.sku,
                quantity: item.quantity,
                unit_amount: item.unit_amount,
            })
            .collect(),
        currency: order.currency.as_str().to_owned(),
        amount_total: order.amount_total,
        amount_paid: order.amount_paid,
        amount_refunded: order.amount_refunded,
        version: order.version,
        create_time: Some(timestamp(order.create_time)),
        update_time: Some(timestamp(order.update_time)),
        metadata: order.metadata.into_iter().collect(),
        fulfil_time: order.fulfil_time.map(timestamp),
        cancel_time: order.cancel_time.map(timestamp),
        cancel_reason: order.cancel_reason.unwrap_or_default(),
        disputed: order.disputed,
        attention_reason: order.attention_reason.unwrap_or_default(),
    }
}

/// An order this service encoded (a feed snapshot) back into the domain;
/// `Err` names the field that does not decode.
pub fn order_from_proto(order: pb::Order) -> Result<Order, &'static str> {
    Ok(Order {
        order_id: OrderId::from_trusted(order.order_id),
        customer_id: order.customer_id,
        state: state_from_proto(order.state).ok_or("state")?,
        line_items: order
            .line_items
            .into_iter()
            .map(|item| LineItem {
                sku: item.sku,
                quantity: item.quantity,
                unit_amount: item.unit_amount,
            })
            .collect(),
        currency: Currency::parse(&order.currency).ok_or("currency")?,
        amount_total: order.amount_total,
        amount_paid: order.amount_paid,
        amount_refunded: order.amount_refunded,
        version: order.version,
        create_time: order
            .create_time
            .as_ref()
            .map(micros)
            .ok_or("create_time")?,
        update_time: order
            .update_time
            .as_ref()
            .map(micros)
            .ok_or("update_time")?,
        metadata: order.metadata.into_iter().collect(),
        fulfil_time: order.fulfil_time.as_ref().map(micros),
        cancel_time: order.cancel_time.as_ref().map(micros),
        cancel_reason: Some(order.cancel_reason).filter(|r| !r.is_empty()),
        disputed: order.disputed,
        attention_reason: Some(order.attention_reason).filter(|r| !r.is_empty()),
    })
}

/// A CreateOrder request as an unvalidated draft.
pub fn draft_from_proto(request: pb::CreateOrderRequest) -> OrderDraft {
    OrderDraft {
        order_id: request.order_id,
        customer_id: request.customer_id,
        line_items: request
            .line_items
            .into_iter()
            .map(|item| LineItemDraft {
                sku: item.sku,
                quantity: item.quantity,
                unit_amount: item.unit_amount,
            })
            .collect(),
        currency: request.currency,
        metadata: request.metadata.into_iter().collect(),
        request_id: request.request_id,
    }
}

fn micros(t: &prost_types::Timestamp) -> UnixMicros {
    UnixMicros(
        t.seconds
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(t.nanos / 1_000)),
    )
}

/// A proto payment event as a domain event; identifiers that do not parse,
/// unknown kinds and currencies are field violations.
pub fn event_from_proto(event: pb::PaymentEvent) -> Result<PaymentEvent, Vec<FieldViolation>> {
    let mut violations: Vec<FieldViolation> = event
        .invalid_identifiers()
        .into_iter()
        .map(|bad| FieldViolation::new(format!("event.{}", bad.field), bad.problem.to_string()))
        .collect();
    let kind = pb::payment_event::Kind::try_from(event.kind)
        .ok()
        .filter(|k| *k != pb::payment_event::Kind::Unspecified)
        .and_then(|k| EventKind::parse(k.as_str_name()));
    if kind.is_none() {
        violations.push(FieldViolation::new("event.kind", "must be a known kind"));
    }
    let currency = if event.currency.is_empty() {
        None
    } else {
        let parsed = Currency::parse(&event.currency);
        if parsed.is_none() {
            violations.push(FieldViolation::new(
                "event.currency",
                "is not an ISO 4217 currency code",
            ));
        }
        parsed
    };
    let (Some(kind), true) = (kind, violations.is_empty()) else {
        return Err(violations);
    };
    Ok(PaymentEvent {
        source: event.source,
        provider: event.provider,
        event_id: event.event_id,
        kind,
        event_type: event.event_type,
        order_ref: event.order_ref,
        payment_ref: event.payment_ref,
        refund_ref: event.refund_ref,
        amount: event.amount,
        amount_is_cumulative: event.amount_is_cumulative,
        currency,
        // Providers without an event time get the time of recording.
        occur_time: event
            .occur_time
            .as_ref()
            .map_or_else(UnixMicros::now, micros),
        customer_ref: event.customer_ref,
        product_ref: event.product_ref,
        entitlements: event
            .entitlements
            .into_iter()
            .map(|e| Grant {
                entitlement_id: e.entitlement_id,
                expire_time: e.expire_time.as_ref().map(|t| micros(t).0),
            })
            .collect(),
        payload: event.payload,
    })
}

/// A domain payment event as the proto message.
pub fn event_to_proto(event: PaymentEvent) -> pb::PaymentEvent {
    pb::PaymentEvent {
        source: event.source,
        provider: event.provider,
        event_id: event.event_id,
        kind: pb::payment_event::Kind::from_str_name(event.kind.as_str())
            .unwrap_or(pb::payment_event::Kind::Other)
            .into(),
        event_type: event.event_type,
        order_ref: event.order_ref,
        payment_ref: event.payment_ref,
        refund_ref: event.refund_ref,
        amount: event.amount,
        currency: event
            .currency
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        occur_time: Some(timestamp(event.occur_time)),
        customer_ref: event.customer_ref,
        product_ref: event.product_ref,
        entitlements: event
            .entitlements
            .into_iter()
            .map(|g| pb::Entitlement {
                entitlement_id: g.entitlement_id,
                expire_time: g.expire_time.map(|t| timestamp(UnixMicros(t))),
            })
            .collect(),
        payload: event.payload,
        amount_is_cumulative: event.amount_is_cumulative,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::ALL_STATES;

    #[test]
    fn every_state_round_trips() {
        for state in ALL_STATES {
            assert_eq!(state_from_proto(state_to_proto(state).into()), Some(state));
        }
        assert_eq!(state_from_proto(0), None);
        assert_eq!(state_from_proto(999), None);
    }

    #[test]
    fn every_event_kind_has_a_proto_value() {
        for kind in crate::payment_event::ALL_KINDS {
            let value = pb::payment_event::Kind::from_str_name(kind.as_str());
            assert!(value.is_some(), "{kind:?}");
        }
    }

    #[test]
    fn timestamps_keep_microseconds() {
        let t = timestamp(UnixMicros(1_700_000_000_123_456));
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_456_000));
        let before_epoch = timestamp(UnixMicros(-1));
        assert_eq!(
            (before_epoch.seconds, before_epoch.nanos),
            (-1, 999_999_000)
        );
    }
}
