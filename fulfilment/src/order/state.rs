//! The order state machine: which user commands are legal in which state.
//!
//! Payments (issue: webhook adapter) change the facts an order carries
//! (amounts paid and refunded); commands here are the app backend's own moves.

use std::fmt;

use crate::payment_event::summary::{Attempt, PaymentTotals};

/// Where an order is in its lifecycle. Stored as its proto value name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sea_orm::EnumIter, sea_orm::DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum OrderState {
    /// Created; no payment attempt reported yet.
    #[sea_orm(string_value = "PENDING_PAYMENT")]
    PendingPayment,
    /// A payment was started and has not settled.
    #[sea_orm(string_value = "PAYMENT_PROCESSING")]
    PaymentProcessing,
    /// The last payment attempt failed; the customer may try again.
    #[sea_orm(string_value = "PAYMENT_FAILED")]
    PaymentFailed,
    /// Paid in full; ready to fulfil.
    #[sea_orm(string_value = "PAID")]
    Paid,
    /// Fulfilled by the app's backend.
    #[sea_orm(string_value = "FULFILLED")]
    Fulfilled,
    /// Cancelled before fulfilment.
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    /// Part of the payment was refunded.
    #[sea_orm(string_value = "PARTIALLY_REFUNDED")]
    PartiallyRefunded,
    /// The whole payment was refunded.
    #[sea_orm(string_value = "REFUNDED")]
    Refunded,
}

/// Every state, for exhaustive tests and listings.
pub const ALL_STATES: [OrderState; 8] = [
    OrderState::PendingPayment,
    OrderState::PaymentProcessing,
    OrderState::PaymentFailed,
    OrderState::Paid,
    OrderState::Fulfilled,
    OrderState::Cancelled,
    OrderState::PartiallyRefunded,
    OrderState::Refunded,
];

/// The result of a legal command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The order moves to this state.
    To(OrderState),
    /// The command already took effect; nothing changes (a retry is not an error).
    AlreadyDone,
}

/// Why a command is refused in the current state. Each has a stable reason
/// code that clients can switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Fulfilling needs a paid order.
    #[error("the order is not paid")]
    NotPaid,
    /// Money is in flight; wait for the payment to settle or fail.
    #[error("a payment for the order is still processing")]
    PaymentProcessing,
    /// A fulfilled order cannot be cancelled; refund it with the provider instead.
    #[error("the order is already fulfilled")]
    AlreadyFulfilled,
    /// A cancelled order cannot be fulfilled.
    #[error("the order is cancelled")]
    Cancelled,
    /// A fully refunded order is closed.
    #[error("the order is refunded")]
    Refunded,
    /// Only an unpaid order can be checked out.
    #[error("the order cannot take a payment")]
    NotPayable,
}

impl Refusal {
    /// The ErrorInfo `reason` for this refusal.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotPaid => "ORDER_NOT_PAID",
            Refusal::PaymentProcessing => "ORDER_PAYMENT_PROCESSING",
            Refusal::AlreadyFulfilled => "ORDER_ALREADY_FULFILLED",
            Refusal::Cancelled => "ORDER_CANCELLED",
            Refusal::Refunded => "ORDER_REFUNDED",
            Refusal::NotPayable => "ORDER_NOT_PAYABLE",
        }
    }
}

impl OrderState {
    /// Cancel: legal before fulfilment unless money is in flight. Cancelling a
    /// paid order keeps its `amount_paid`; the refund happens at the provider
    /// and arrives as a payment event.
    pub fn cancel(self) -> Result<Transition, Refusal> {
        use OrderState::*;
        match self {
            PendingPayment | PaymentFailed | Paid | PartiallyRefunded => {
                Ok(Transition::To(Cancelled))
            }
            Cancelled => Ok(Transition::AlreadyDone),
            PaymentProcessing => Err(Refusal::PaymentProcessing),
            Fulfilled => Err(Refusal::AlreadyFulfilled),
            Refunded => Err(Refusal::Refunded),
        }
    }

    /// Fulfil: legal once paid. A partly refunded order can still be fulfilled
    /// (the rest of it ships).
    pub fn fulfil(self) -> Result<Transition, Refusal> {
        use OrderState::*;
        match self {
            Paid | PartiallyRefunded => Ok(Transition::To(Fulfilled)),
            Fulfilled => Ok(Transition::AlreadyDone),
            PendingPayment | PaymentProcessing | PaymentFailed => Err(Refusal::NotPaid),
            Cancelled => Err(Refusal::Cancelled),
            Refunded => Err(Refusal::Refunded),
        }
    }

    /// Checkout: a payment may start while nothing is paid and nothing is
    /// in flight (after a failed payment the customer may try again).
    pub fn checkout(self) -> Result<(), Refusal> {
        use OrderState::*;
        match self {
            PendingPayment | PaymentFailed => Ok(()),
            PaymentProcessing => Err(Refusal::PaymentProcessing),
            Cancelled => Err(Refusal::Cancelled),
            Refunded => Err(Refusal::Refunded),
            Paid | PartiallyRefunded | Fulfilled => Err(Refusal::NotPayable),
        }
    }

    /// The stable name stored in the database and used in logs
    /// (the proto enum value name).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::PendingPayment => "PENDING_PAYMENT",
            OrderState::PaymentProcessing => "PAYMENT_PROCESSING",
            OrderState::PaymentFailed => "PAYMENT_FAILED",
            OrderState::Paid => "PAID",
            OrderState::Fulfilled => "FULFILLED",
            OrderState::Cancelled => "CANCELLED",
            OrderState::PartiallyRefunded => "PARTIALLY_REFUNDED",
            OrderState::Refunded => "REFUNDED",
        }
    }

    /// Parses a name produced by [`OrderState::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        ALL_STATES.into_iter().find(|s| s.as_str() == name)
    }
}

/// Derives the state from an order's facts. The first rule that holds wins,
/// which is what makes payment events commute (see `order.proto`):
/// refunds in full, then the backend's cancel and fulfil, then partial
/// refunds, payment in full, and finally the latest unsettled attempt.
pub fn derive_state(
    amount_total: i64,
    payments: &PaymentTotals,
    cancelled: bool,
    fulfilled: bool,
) -> OrderState {
    if payments.amount_paid > 0 && payments.amount_refunded >= payments.amount_paid {
        OrderState::Refunded
    } else if cancelled {
        OrderState::Cancelled
    } else if fulfilled {
        OrderState::Fulfilled
    } else if payments.amount_refunded > 0 {
        OrderState::PartiallyRefunded
    } else if payments.paid_any && payments.amount_paid >= amount_total {
        OrderState::Paid
    } else {
        match payments.attempt {
            Some(Attempt::Processing) => OrderState::PaymentProcessing,
            Some(Attempt::Failed) => OrderState::PaymentFailed,
            None => OrderState::PendingPayment,
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderState::*;
    use super::*;

    #[test]
    fn checkout_in_every_state() {
        let table = [
            (PendingPayment, Ok(())),
            (PaymentProcessing, Err(Refusal::PaymentProcessing)),
            (PaymentFailed, Ok(())),
            (Paid, Err(Refusal::NotPayable)),
            (Fulfilled, Err(Refusal::NotPayable)),
            (Cancelled, Err(Refusal::Cancelled)),
            (PartiallyRefunded, Err(Refusal::NotPayable)),
            (Refunded, Err(Refusal::Refunded)),
        ];
        assert_eq!(table.len(), ALL_STATES.len());
        for (state, expected) in table {
            assert_eq!(state.checkout(), expected, "{state:?}");
        }
    }

    /// The whole table, written out once so a change to the rules is a
    /// deliberate edit here.
    #[test]
    fn cancel_in_every_state() {
        let expected = [
            (PendingPayment, Ok(Transition::To(Cancelled))),
            (PaymentProcessing, Err(Refusal::PaymentProcessing)),
            (PaymentFailed, Ok(Transition::To(Cancelled))),
            (Paid, Ok(Transition::To(Cancelled))),
            (Fulfilled, Err(Refusal::AlreadyFulfilled)),
            (Cancelled, Ok(Transition::AlreadyDone)),
            (PartiallyRefunded, Ok(Transition::To(Cancelled))),
            (Refunded, Err(Refusal::Refunded)),
        ];
        assert_eq!(expected.len(), ALL_STATES.len());
        for (state, outcome) in expected {
            assert_eq!(state.cancel(), outcome, "cancel from {state}");
        }
    }

    #[test]
    fn fulfil_in_every_state() {
        let expected = [
            (PendingPayment, Err(Refusal::NotPaid)),
            (PaymentProcessing, Err(Refusal::NotPaid)),
            (PaymentFailed, Err(Refusal::NotPaid)),
            (Paid, Ok(Transition::To(Fulfilled))),
            (Fulfilled, Ok(Transition::AlreadyDone)),
            (Cancelled, Err(Refusal::Cancelled)),
            (PartiallyRefunded, Ok(Transition::To(Fulfilled))),
            (Refunded, Err(Refusal::Refunded)),
        ];
        assert_eq!(expected.len(), ALL_STATES.len());
        for (state, outcome) in expected {
            assert_eq!(state.fulfil(), outcome, "fulfil from {state}");
        }
    }

    #[test]
    fn a_done_command_is_idempotent() {
        for state in ALL_STATES {
            if let Ok(Transition::To(next)) = state.cancel() {
                assert_eq!(next.cancel(), Ok(Transition::AlreadyDone));
            }
            if let Ok(Transition::To(next)) = state.fulfil() {
                assert_eq!(next.fulfil(), Ok(Transition::AlreadyDone));
            }
        }
    }

    #[test]
    fn terminal_states_refuse_the_other_command() {
        assert!(Cancelled.fulfil().is_err());
        assert!(Fulfilled.cancel().is_err());
        assert!(Refunded.cancel().is_err() && Refunded.fulfil().is_err());
    }

    fn paid(amount_paid: i64, amount_refunded: i64) -> PaymentTotals {
        PaymentTotals {
            amount_paid,
            paid_any: amount_paid > 0,
            amount_refunded,
            ..PaymentTotals::default()
        }
    }

    #[test]
    fn derived_state_follows_the_rule_order() {
        let none = PaymentTotals::default();
        assert_eq!(derive_state(100, &none, false, false), PendingPayment);
        let processing = PaymentTotals {
            attempt: Some(Attempt::Processing),
            ..none
        };
        assert_eq!(
            derive_state(100, &processing, false, false),
            PaymentProcessing
        );
        let failed = PaymentTotals {
            attempt: Some(Attempt::Failed),
            ..none
        };
        assert_eq!(derive_state(100, &failed, false, false), PaymentFailed);
        // Paid beats any attempt report, whenever it came.
        let paid_then_failed = PaymentTotals {
            attempt: Some(Attempt::Failed),
            ..paid(100, 0)
        };
        assert_eq!(derive_state(100, &paid_then_failed, false, false), Paid);
        assert_eq!(
            derive_state(100, &paid(50, 0), false, false),
            PendingPayment,
            "underpaid"
        );
        assert_eq!(
            derive_state(100, &paid(100, 30), false, false),
            PartiallyRefunded
        );
        assert_eq!(derive_state(100, &paid(100, 30), false, true), Fulfilled);
        assert_eq!(derive_state(100, &paid(100, 30), true, false), Cancelled);
        assert_eq!(derive_state(100, &paid(100, 100), true, true), Refunded);
        assert_eq!(derive_state(100, &paid(100, 0), true, false), Cancelled);
        assert_eq!(derive_state(100, &paid(0, 0), true, false), Cancelled);
    }

    #[test]
    fn derived_state_agrees_with_the_command_table() {
        // Applying a command's transition and deriving from the new facts
        // give the same state, so commands and events never disagree.
        for (summary, fulfilled, cancelled) in [
            (paid(100, 0), false, false),
            (paid(100, 30), false, false),
            (PaymentTotals::default(), false, false),
            (
                PaymentTotals {
                    attempt: Some(Attempt::Failed),
                    ..PaymentTotals::default()
                },
                false,
                false,
            ),
        ] {
            let state = derive_state(100, &summary, cancelled, fulfilled);
            if let Ok(Transition::To(next)) = state.cancel() {
                assert_eq!(
                    derive_state(100, &summary, true, fulfilled),
                    next,
                    "cancel from {state}"
                );
            }
            if let Ok(Transition::To(next)) = state.fulfil() {
                assert_eq!(
                    derive_state(100, &summary, cancelled, true),
                    next,
                    "fulfil from {state}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for state in ALL_STATES {
            assert_eq!(OrderState::parse(state.as_str()), Some(state));
        }
        assert_eq!(OrderState::parse("paid"), None);
    }

    #[test]
    fn refusal_reasons_are_distinct() {
        let reasons = [
            Refusal::NotPaid,
            Refusal::PaymentProcessing,
            Refusal::AlreadyFulfilled,
            Refusal::Cancelled,
            Refusal::Refunded,
        ]
        .map(Refusal::reason);
        let unique: std::collections::HashSet<_> = reasons.iter().collect();
        assert_eq!(unique.len(), reasons.len());
    }
}
