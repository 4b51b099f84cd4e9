//! What a payment event does: the rules, as pure functions.
//!
//! Storage finds the order an event names, claims the event in the ledger
//! and writes what these functions decide; nothing here touches a database.
//!
//! 1. [`target`]: what the event is about (an existing order, the order of
//!    an in-app purchase, entitlements only, or nothing we act on).
//! 2. [`decide`]: its outcome once its order is known (or known missing):
//!    APPLIED, MISMATCH (money that does not fit the order), UNMATCHED (no
//!    order yet; kept until one appears) or IGNORED.
//! 3. [`apply`]: merges an APPLIED or MISMATCH event into the order's
//!    [`Summary`] and derives the order's amounts, flags and state; returns
//!    the order's next version when something changed.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use super::summary::{Fact, Summary};
use super::{EventKind, Outcome, PaymentEvent};
use crate::order::{
    Currency, LineItem, NewOrder, Order, OrderId, OrderState, UnixMicros, derive_state,
};

/// What an event is about, before any order is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A payment of an order that exists beforehand: found by `order_ref`,
    /// or by an earlier event of the same payment.
    Order,
    /// An in-app purchase with a price: pays an order of its own, created on
    /// first sight, and grants entitlements.
    Purchase(OrderId),
    /// Changes entitlements only.
    Entitlements(EntitlementChange),
    /// Recorded for the audit trail; changes nothing.
    Nothing,
}

/// How an event changes its customer's entitlements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntitlementChange {
    /// Extend each entitlement to the grant's end (or for life).
    Grant,
    /// Each entitlement expired through the grant's end (or the event time).
    Expire,
}

/// Where an event goes; see [`Target`].
pub fn target(event: &PaymentEvent) -> Target {
    match event.kind {
        kind if kind.concerns_order() => Target::Order,
        EventKind::Purchase | EventKind::Renewal if event.currency.is_some() => {
            Target::Purchase(purchase_order_id(event))
        }
        // Free (no price, so no currency): nothing to pay, access to grant.
        EventKind::Purchase | EventKind::Renewal => Target::Entitlements(EntitlementChange::Grant),
        EventKind::Uncancellation | EventKind::ProductChange if !event.entitlements.is_empty() => {
            Target::Entitlements(EntitlementChange::Grant)
        }
        EventKind::Expiration if !event.entitlements.is_empty() => {
            Target::Entitlements(EntitlementChange::Expire)
        }
        _ => Target::Nothing,
    }
}

/// The entitlement change an event makes, if any (purchases grant too).
pub fn entitlement_change(event: &PaymentEvent) -> Option<EntitlementChange> {
    match target(event) {
        Target::Purchase(_) => Some(EntitlementChange::Grant),
        Target::Entitlements(change) => Some(change),
        Target::Order | Target::Nothing => None,
    }
}

/// Why a money event does not fit its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The event is in another currency than the order.
    Currency {
        /// The event's currency.
        event: Currency,
        /// The order's currency.
        order: Currency,
    },
    /// A payment that is not exactly the order's total.
    Amount {
        /// What was paid.
        paid: i64,
        /// What the order costs.
        total: i64,
        /// The order's currency.
        currency: Currency,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Currency { event, order } => {
                write!(f, "CURRENCY_MISMATCH: event in {event}, order in {order}")
            }
            Mismatch::Amount {
                paid,
                total,
                currency,
            } => write!(
                f,
                "AMOUNT_MISMATCH: paid {paid} {currency}, order total {total} {currency}"
            ),
        }
    }
}

/// Whether a money event fits its order. A payment must match the total
/// exactly (a short or long payment needs a human); any money event must be
/// in the order's currency.
pub fn fit(
    kind: EventKind,
    amount: i64,
    currency: Option<Currency>,
    order: &Order,
) -> Result<(), Mismatch> {
    if !matches!(kind, EventKind::PaymentSucceeded | EventKind::Refunded) {
        return Ok(());
    }
    if let Some(event) = currency.filter(|c| *c != order.currency) {
        return Err(Mismatch::Currency {
            event,
            order: order.currency,
        });
    }
    if kind == EventKind::PaymentSucceeded && amount != order.amount_total {
        return Err(Mismatch::Amount {
            paid: amount,
            total: order.amount_total,
            currency: order.currency,
        });
    }
    Ok(())
}

/// What recording an event decides, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The event's outcome.
    pub outcome: Outcome,
    /// Why it did not fit, for MISMATCH.
    pub note: Option<String>,
}

/// The outcome of an event given its order (`None`: no such order). For a
/// [`Target::Purchase`] the order is the purchase's own, and always there.
pub fn decide(event: &PaymentEvent, order: Option<&Order>) -> Decision {
    let applied = Decision {
        outcome: Outcome::Applied,
        note: None,
    };
    match target(event) {
        Target::Order => match order {
            None => Decision {
                outcome: Outcome::Unmatched,
                note: None,
            },
            Some(order) => match fit(event.kind, event.amount, event.currency, order) {
                Ok(()) => applied,
                Err(mismatch) => Decision {
                    outcome: Outcome::Mismatch,
                    note: Some(mismatch.to_string()),
                },
            },
        },
        Target::Purchase(_) | Target::Entitlements(_) => applied,
        Target::Nothing => Decision {
            outcome: Outcome::Ignored,
            note: None,
        },
    }
}

/// Merges an event with its decision into the order's summary and returns
/// the order's next version if that changed anything. UNMATCHED and IGNORED
/// events change no order.
pub fn apply(
    order: &Order,
    summary: &mut Summary,
    fact: &Fact,
    decision: &Decision,
    now: UnixMicros,
) -> Option<Order> {
    if !merge(summary, fact, decision) {
        return None;
    }
    refresh(order, summary, now)
}

/// Merges an APPLIED or MISMATCH event into a summary; false for the
/// outcomes that change no order.
pub fn merge(summary: &mut Summary, fact: &Fact, decision: &Decision) -> bool {
    match (decision.outcome, &decision.note) {
        (Outcome::Applied, _) => summary.merge_fact(fact),
        (Outcome::Mismatch, Some(note)) => summary.merge_mismatch(fact, note),
        _ => return false,
    }
    true
}

/// The order as its summary and commands make it; `Some` with the next
/// version when that differs from `order`.
pub fn refresh(order: &Order, summary: &Summary, now: UnixMicros) -> Option<Order> {
    let totals = summary.totals();
    let state: OrderState = derive_state(
        order.amount_total,
        &totals,
        order.cancel_time.is_some(),
        order.fulfil_time.is_some(),
    );
    let attention = summary.attention_reason();
    let unchanged = order.state == state
        && order.amount_paid == totals.amount_paid
        && order.amount_refunded == totals.amount_refunded
        && order.disputed == totals.disputed
        && order.attention_reason.as_deref() == attention;
    if unchanged {
        return None;
    }
    Some(Order {
        state,
        amount_paid: totals.amount_paid,
        amount_refunded: totals.amount_refunded,
        disputed: totals.disputed,
        attention_reason: attention.map(str::to_owned),
        version: order.version + 1,
        update_time: now,
        ..order.clone()
    })
}

/// The order an in-app purchase pays for. In-app purchases have no order
/// beforehand; the id derives from the transaction, so a purchase reported
/// twice (or by two event ids) maps to one order.
pub fn purchase_order_id(event: &PaymentEvent) -> OrderId {
    let transaction = if event.payment_ref.is_empty() {
        &event.event_id
    } else {
        &event.payment_ref
    };
    let digest = Sha256::digest(format!("{}\0{transaction}", event.source).as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    OrderId::from_trusted(format!("iap_{hex}"))
}

/// The order created for an in-app purchase on first sight; `None` when the
/// event carries no currency (then it is no [`Target::Purchase`]).
pub fn purchase_order(event: &PaymentEvent) -> Option<NewOrder> {
    let currency = event.currency?;
    Some(NewOrder {
        order_id: Some(purchase_order_id(event)),
        customer_id: event.customer_ref.clone(),
        line_items: vec![LineItem {
            sku: if event.product_ref.is_empty() {
                "in-app-purchase".into()
            } else {
                event.product_ref.clone()
            },
            quantity: 1,
            unit_amount: event.amount,
        }],
        currency,
        amount_total: event.amount,
        metadata: BTreeMap::from([
            ("source".to_owned(), event.source.clone()),
            ("provider".to_owned(), event.provider.clone()),
        ]),
        request_id: None,
        request_hash: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment_event::Grant;

    fn order(total: i64) -> Order {
        Order::new(
            &NewOrder {
                order_id: None,
                customer_id: "cus_1".into(),
                line_items: vec![LineItem {
                    sku: "tee".into(),
                    quantity: 1,
                    unit_amount: total,
                }],
                currency: Currency::parse("EUR").expect("EUR"),
                amount_total: total,
                metadata: BTreeMap::new(),
                request_id: None,
                request_hash: String::new(),
            },
            OrderId::from_trusted("ord_1".into()),
            UnixMicros(1),
        )
    }

    fn event(kind: EventKind, amount: i64, currency: &str) -> PaymentEvent {
        PaymentEvent {
            source: "stripe".into(),
            provider: "stripe".into(),
            event_id: format!("evt_{kind:?}_{amount}"),
            kind,
            event_type: "t".into(),
            order_ref: "ord_1".into(),
            payment_ref: "pi_1".into(),
            refund_ref: String::new(),
            amount,
            amount_is_cumulative: false,
            currency: Currency::parse(currency),
            occur_time: UnixMicros(10),
            customer_ref: String::new(),
            product_ref: String::new(),
            entitlements: Vec::new(),
            payload: Vec::new(),
        }
    }

    fn run(
        order: &Order,
        summary: &mut Summary,
        event: &PaymentEvent,
    ) -> (Decision, Option<Order>) {
        let decision = decide(event, Some(order));
        let next = apply(order, summary, &event.fact(), &decision, UnixMicros(99));
        (decision, next)
    }

    #[test]
    fn a_payment_of_the_total_pays_the_order() {
        let order = order(3900);
        let mut summary = Summary::default();
        let (decision, next) = run(
            &order,
            &mut summary,
            &event(EventKind::PaymentSucceeded, 3900, "eur"),
        );
        assert_eq!(decision.outcome, Outcome::Applied);
        let next = next.expect("changed");
        assert_eq!(
            (next.state, next.amount_paid, next.version),
            (OrderState::Paid, 3900, 2)
        );
        assert_eq!(next.update_time, UnixMicros(99));
    }

    #[test]
    fn the_same_payment_again_changes_nothing() {
        let order = order(3900);
        let mut summary = Summary::default();
        let paid = event(EventKind::PaymentSucceeded, 3900, "eur");
        let next = run(&order, &mut summary, &paid).1.expect("paid");
        let again = PaymentEvent {
            event_id: "evt_session".into(),
            ..paid
        };
        assert_eq!(
            run(&next, &mut summary, &again),
            (decide(&again, Some(&next)), None)
        );
    }

    #[test]
    fn a_short_payment_is_a_mismatch_that_flags_the_order() {
        let order = order(3900);
        let mut summary = Summary::default();
        let (decision, next) = run(
            &order,
            &mut summary,
            &event(EventKind::PaymentSucceeded, 100, "eur"),
        );
        assert_eq!(decision.outcome, Outcome::Mismatch);
        let next = next.expect("flagged");
        assert_eq!(next.state, OrderState::PendingPayment);
        assert_eq!(next.amount_paid, 0, "a mismatch is recorded, not counted");
        assert_eq!(
            next.attention_reason.as_deref(),
            Some("AMOUNT_MISMATCH: paid 100 EUR, order total 3900 EUR")
        );
    }

    #[test]
    fn a_refund_in_another_currency_is_a_mismatch() {
        let order = order(3900);
        let refund = event(EventKind::Refunded, 100, "usd");
        assert_eq!(
            decide(&refund, Some(&order)).note.as_deref(),
            Some("CURRENCY_MISMATCH: event in USD, order in EUR")
        );
    }

    #[test]
    fn without_an_order_a_payment_waits() {
        let paid = event(EventKind::PaymentSucceeded, 3900, "eur");
        assert_eq!(decide(&paid, None).outcome, Outcome::Unmatched);
    }

    #[test]
    fn a_late_failure_never_unpays() {
        let order = order(3900);
        let mut summary = Summary::default();
        let paid = run(
            &order,
            &mut summary,
            &event(EventKind::PaymentSucceeded, 3900, "eur"),
        )
        .1
        .expect("paid");
        let failed = PaymentEvent {
            occur_time: UnixMicros(50),
            ..event(EventKind::PaymentFailed, 0, "")
        };
        assert_eq!(run(&paid, &mut summary, &failed).1, None);
    }

    #[test]
    fn events_that_concern_no_order_are_ignored_or_go_to_entitlements() {
        assert_eq!(
            decide(&event(EventKind::Test, 0, ""), None).outcome,
            Outcome::Ignored
        );
        let expiration = PaymentEvent {
            entitlements: vec![Grant {
                entitlement_id: "pro".into(),
                expire_time: None,
            }],
            ..event(EventKind::Expiration, 0, "")
        };
        assert_eq!(
            target(&expiration),
            Target::Entitlements(EntitlementChange::Expire)
        );
        assert_eq!(decide(&expiration, None).outcome, Outcome::Applied);
        assert_eq!(
            target(&event(EventKind::Expiration, 0, "")),
            Target::Nothing
        );
    }

    #[test]
    fn a_purchase_names_one_order_per_transaction() {
        let purchase = PaymentEvent {
            customer_ref: "app_user".into(),
            ..event(EventKind::Purchase, 499, "usd")
        };
        let again = PaymentEvent {
            event_id: "evt_other".into(),
            ..purchase.clone()
        };
        assert_eq!(purchase_order_id(&purchase), purchase_order_id(&again));
        assert!(purchase_order_id(&purchase).as_str().starts_with("iap_"));
        let new = purchase_order(&purchase).expect("order");
        assert_eq!(
            (new.amount_total, new.customer_id.as_str()),
            (499, "app_user")
        );
        assert_eq!(
            entitlement_change(&purchase),
            Some(EntitlementChange::Grant)
        );
    }
}
