//! What an order's payment events add up to, whatever order they came in.
//!
//! Every figure here is a function of the SET of events applied to an order,
//! never of their arrival order, so duplicates and reordering converge:
//!
//! - paid: per payment reference, the largest succeeded amount (a payment
//!   reported twice, e.g. by `payment_intent.succeeded` and
//!   `checkout.session.completed`, counts once); summed over references.
//! - refunded: per payment reference, the larger of the largest running
//!   total reported (`amount_is_cumulative`) and the sum over distinct refund
//!   references of each refund's largest amount; summed over references.
//! - attempt: of the "processing", "failed" and "cancelled" reports, the one
//!   with the latest provider time (event id breaks ties) — only consulted
//!   when the order is not paid.
//! - disputed: some dispute was opened and that same dispute not closed.

use std::collections::{BTreeMap, BTreeSet};

use super::EventKind;

/// One applied event, reduced to what the summary needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// The provider's event id (tie-breaker).
    pub event_id: String,
    /// What happened.
    pub kind: EventKind,
    /// The provider payment it concerns (may be empty).
    pub payment_ref: String,
    /// The refund or dispute it concerns (may be empty).
    pub refund_ref: String,
    /// Minor units.
    pub amount: i64,
    /// For refunds: `amount` is a running total.
    pub amount_is_cumulative: bool,
    /// Provider time, unix microseconds.
    pub occur_time: i64,
}

/// The latest unsettled payment attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Started, not settled.
    Processing,
    /// Failed or cancelled.
    Failed,
}

/// What the facts add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PaymentSummary {
    /// Captured, minor units.
    pub amount_paid: i64,
    /// Whether any payment succeeded (a zero-total order is paid by one).
    pub paid_any: bool,
    /// Refunded, minor units.
    pub amount_refunded: i64,
    /// The latest unsettled attempt, if any.
    pub attempt: Option<Attempt>,
    /// An open dispute exists.
    pub disputed: bool,
}

/// Sums up the facts; see the module docs for the rules.
pub fn summarize(facts: &[Fact]) -> PaymentSummary {
    let key = |f: &Fact| {
        if f.payment_ref.is_empty() {
            format!("event:{}", f.event_id)
        } else {
            f.payment_ref.clone()
        }
    };

    let mut paid: BTreeMap<String, i64> = BTreeMap::new();
    let mut cumulative_refunds: BTreeMap<String, i64> = BTreeMap::new();
    let mut single_refunds: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut attempt: Option<(i64, &str, Attempt)> = None;
    let mut opened = BTreeSet::new();
    let mut closed = BTreeSet::new();

    for fact in facts {
        match fact.kind {
            // An in-app purchase or renewal is its order's payment.
            EventKind::PaymentSucceeded | EventKind::Purchase | EventKind::Renewal => {
                let entry = paid.entry(key(fact)).or_insert(0);
                *entry = (*entry).max(fact.amount);
            }
            EventKind::Refunded if fact.amount_is_cumulative => {
                let entry = cumulative_refunds.entry(key(fact)).or_insert(0);
                *entry = (*entry).max(fact.amount);
            }
            EventKind::Refunded => {
                let refund = if fact.refund_ref.is_empty() {
                    format!("event:{}", fact.event_id)
                } else {
                    fact.refund_ref.clone()
                };
                let entry = single_refunds
                    .entry(key(fact))
                    .or_default()
                    .entry(refund)
                    .or_insert(0);
                *entry = (*entry).max(fact.amount);
            }
            EventKind::PaymentProcessing
            | EventKind::PaymentFailed
            | EventKind::PaymentCancelled => {
                let this = match fact.kind {
                    EventKind::PaymentProcessing => Attempt::Processing,
                    _ => Attempt::Failed,
                };
                let later = attempt
                    .is_none_or(|(t, id, _)| (fact.occur_time, fact.event_id.as_str()) > (t, id));
                if later {
                    attempt = Some((fact.occur_time, fact.event_id.as_str(), this));
                }
            }
            EventKind::DisputeOpened => {
                opened.insert(fact.refund_ref.as_str());
            }
            EventKind::DisputeClosed => {
                closed.insert(fact.refund_ref.as_str());
            }
            _ => {}
        }
    }

    let amount_paid = paid.values().fold(0i64, |sum, v| sum.saturating_add(*v));
    let payments: BTreeSet<&String> = cumulative_refunds
        .keys()
        .chain(single_refunds.keys())
        .collect();
    let amount_refunded = payments.into_iter().fold(0i64, |sum, payment| {
        let cumulative = cumulative_refunds.get(payment).copied().unwrap_or(0);
        let singles = single_refunds
            .get(payment)
            .map(|r| r.values().fold(0i64, |s, v| s.saturating_add(*v)))
            .unwrap_or(0);
        sum.saturating_add(cumulative.max(singles))
    });

    PaymentSummary {
        amount_paid,
        paid_any: !paid.is_empty(),
        amount_refunded,
        attempt: attempt.map(|(_, _, a)| a),
        disputed: opened.difference(&closed).next().is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(id: &str, kind: EventKind, payment: &str, refund: &str, amount: i64, t: i64) -> Fact {
        Fact {
            event_id: id.into(),
            kind,
            payment_ref: payment.into(),
            refund_ref: refund.into(),
            amount,
            amount_is_cumulative: false,
            occur_time: t,
        }
    }

    #[test]
    fn one_payment_reported_twice_counts_once() {
        let s = summarize(&[
            fact("e1", EventKind::PaymentSucceeded, "pi_1", "", 3900, 1),
            fact("e2", EventKind::PaymentSucceeded, "pi_1", "", 3900, 2),
        ]);
        assert_eq!((s.amount_paid, s.paid_any), (3900, true));
    }

    #[test]
    fn cumulative_and_single_refunds_do_not_double_count() {
        let cumulative = Fact {
            amount_is_cumulative: true,
            ..fact("e3", EventKind::Refunded, "pi_1", "", 1500, 3)
        };
        let s = summarize(&[
            fact("e1", EventKind::PaymentSucceeded, "pi_1", "", 3900, 1),
            fact("e2", EventKind::Refunded, "pi_1", "re_1", 1000, 2),
            fact("e4", EventKind::Refunded, "pi_1", "re_2", 500, 4),
            cumulative,
        ]);
        assert_eq!(s.amount_refunded, 1500);
    }

    #[test]
    fn latest_attempt_wins_by_provider_time() {
        let s = summarize(&[
            fact("a", EventKind::PaymentFailed, "pi_1", "", 0, 10),
            fact("b", EventKind::PaymentProcessing, "pi_2", "", 0, 20),
        ]);
        assert_eq!(s.attempt, Some(Attempt::Processing));
        let s = summarize(&[
            fact("b", EventKind::PaymentProcessing, "pi_2", "", 0, 20),
            fact("a", EventKind::PaymentFailed, "pi_1", "", 0, 30),
        ]);
        assert_eq!(s.attempt, Some(Attempt::Failed));
    }

    #[test]
    fn a_closed_dispute_stays_closed_whatever_the_order() {
        let open = fact("d1", EventKind::DisputeOpened, "pi_1", "dp_1", 0, 5);
        let close = fact("d2", EventKind::DisputeClosed, "pi_1", "dp_1", 0, 6);
        assert!(summarize(std::slice::from_ref(&open)).disputed);
        assert!(!summarize(&[close.clone(), open.clone()]).disputed);
        assert!(!summarize(&[open, close]).disputed);
    }
}
