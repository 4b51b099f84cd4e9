//! Conversions between the fulfil.v1 messages and the order domain.

use fulfil_proto::v1 as pb;
use pb::order::State as PbState;

use crate::order::{LineItemDraft, Order, OrderDraft, OrderState, UnixMicros};

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
    }
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
