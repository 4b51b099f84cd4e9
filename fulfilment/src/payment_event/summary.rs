//! What an order's payment events add up to, whatever order they came in.
//!
//! A [`Summary`] is kept with each order and each new event is merged into
//! it, so applying an event costs the same whether its order has one event
//! or a thousand. Every part is a join (a per-key maximum, a minimum, a set
//! union), so merging is commutative, associative and idempotent: duplicates
//! and reordering converge, and `merge` of all facts in any order equals
//! [`summarize`] of them.
//!
//! - paid: per payment, the largest succeeded amount (a payment reported
//!   twice, e.g. by `payment_intent.succeeded` and
//!   `checkout.session.completed`, counts once); summed over payments.
//! - refunded: per payment, the larger of the largest running total
//!   reported (`amount_is_cumulative`) and the sum over distinct refunds of
//!   each refund's largest amount; summed over payments.
//! - attempt: of the "processing", "failed" and "cancelled" reports, the one
//!   with the latest provider time (the event's key breaks ties); only
//!   consulted when the order is not paid.
//! - disputed: some dispute was opened and that same dispute not closed.
//! - attention: of the events that did not fit the order, the earliest by
//!   provider time explains why the order needs a human.
//!
//! Payments, refunds, disputes and events are identified by [`Key`], a
//! fixed-size digest of the provider's reference, so the summary's size grows
//! with the number of distinct payments, never with the length of ids.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::EventKind;

/// A fixed-size, stable identifier of a provider reference (the first 128
/// bits of its SHA-256 under a domain tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub [u8; 16]);

impl Key {
    fn of(domain: &str, parts: &[&str]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(domain.as_bytes());
        for part in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        Key(key)
    }
}

/// One event, reduced to what the summary needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// The provider's event id (names the payment when it has no reference,
    /// and breaks ties between attempts).
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

impl Fact {
    /// The payment this fact counts towards: its reference, or the event
    /// itself when it names none.
    fn payment(&self) -> Key {
        if self.payment_ref.is_empty() {
            Key::of("event", &[&self.event_id])
        } else {
            Key::of("payment", &[&self.payment_ref])
        }
    }

    fn refund(&self) -> Key {
        if self.refund_ref.is_empty() {
            Key::of("event", &[&self.event_id])
        } else {
            Key::of("refund", &[&self.refund_ref])
        }
    }

    fn event(&self) -> Key {
        Key::of("event", &[&self.event_id])
    }
}

/// The latest unsettled payment attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attempt {
    /// Started, not settled.
    Processing,
    /// Failed or cancelled.
    Failed,
}

/// An attempt report, ordered by provider time, then event key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AttemptMark {
    /// Provider time, unix microseconds.
    pub occur_time: i64,
    /// The reporting event.
    pub event: Key,
    /// What it reported.
    pub attempt: Attempt,
}

/// An event that did not fit its order, ordered by provider time, then
/// event key; the earliest explains the order's attention flag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MismatchMark {
    /// Provider time, unix microseconds.
    pub occur_time: i64,
    /// The event.
    pub event: Key,
    /// Why it did not fit (the ledger's note).
    pub note: String,
}

/// The merged state of an order's events; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Per payment: the largest succeeded amount.
    pub paid: BTreeMap<Key, i64>,
    /// Per payment: the largest running refund total.
    pub cumulative_refunds: BTreeMap<Key, i64>,
    /// Per (payment, refund): the largest amount.
    pub refunds: BTreeMap<(Key, Key), i64>,
    /// The latest attempt report.
    pub attempt: Option<AttemptMark>,
    /// Disputes opened.
    pub disputes_opened: BTreeSet<Key>,
    /// Disputes closed.
    pub disputes_closed: BTreeSet<Key>,
    /// The earliest event that did not fit.
    pub mismatch: Option<MismatchMark>,
}

/// What the summary adds up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PaymentTotals {
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

fn keep_max<K: Ord>(map: &mut BTreeMap<K, i64>, key: K, amount: i64) {
    let entry = map.entry(key).or_insert(amount);
    *entry = (*entry).max(amount);
}

impl Summary {
    /// Merges one applied event.
    pub fn merge_fact(&mut self, fact: &Fact) {
        match fact.kind {
            // An in-app purchase or renewal is its order's payment.
            EventKind::PaymentSucceeded | EventKind::Purchase | EventKind::Renewal => {
                keep_max(&mut self.paid, fact.payment(), fact.amount);
            }
            EventKind::Refunded if fact.amount_is_cumulative => {
                keep_max(&mut self.cumulative_refunds, fact.payment(), fact.amount);
            }
            EventKind::Refunded => {
                keep_max(
                    &mut self.refunds,
                    (fact.payment(), fact.refund()),
                    fact.amount,
                );
            }
            EventKind::PaymentProcessing
            | EventKind::PaymentFailed
            | EventKind::PaymentCancelled => {
                let mark = AttemptMark {
                    occur_time: fact.occur_time,
                    event: fact.event(),
                    attempt: match fact.kind {
                        EventKind::PaymentProcessing => Attempt::Processing,
                        _ => Attempt::Failed,
                    },
                };
                self.attempt = self.attempt.max(Some(mark));
            }
            EventKind::DisputeOpened => {
                self.disputes_opened
                    .insert(Key::of("dispute", &[&fact.refund_ref]));
            }
            EventKind::DisputeClosed => {
                self.disputes_closed
                    .insert(Key::of("dispute", &[&fact.refund_ref]));
            }
            _ => {}
        }
    }

    /// Merges an event that did not fit the order.
    pub fn merge_mismatch(&mut self, fact: &Fact, note: &str) {
        let mark = MismatchMark {
            occur_time: fact.occur_time,
            event: fact.event(),
            note: note.to_owned(),
        };
        if self.mismatch.as_ref().is_none_or(|m| mark < *m) {
            self.mismatch = Some(mark);
        }
    }

    /// Merges another summary (the join of both).
    pub fn merge(&mut self, other: &Summary) {
        for (key, amount) in &other.paid {
            keep_max(&mut self.paid, *key, *amount);
        }
        for (key, amount) in &other.cumulative_refunds {
            keep_max(&mut self.cumulative_refunds, *key, *amount);
        }
        for (key, amount) in &other.refunds {
            keep_max(&mut self.refunds, *key, *amount);
        }
        self.attempt = self.attempt.max(other.attempt);
        self.disputes_opened
            .extend(other.disputes_opened.iter().copied());
        self.disputes_closed
            .extend(other.disputes_closed.iter().copied());
        if let Some(mark) = &other.mismatch
            && self.mismatch.as_ref().is_none_or(|m| mark < m)
        {
            self.mismatch = Some(mark.clone());
        }
    }

    /// The amounts and flags this summary adds up to.
    pub fn totals(&self) -> PaymentTotals {
        let amount_paid = self
            .paid
            .values()
            .fold(0i64, |sum, v| sum.saturating_add(*v));
        // Singles grouped by payment: the map is ordered by payment first.
        let mut singles: BTreeMap<Key, i64> = BTreeMap::new();
        for ((payment, _), amount) in &self.refunds {
            let entry = singles.entry(*payment).or_insert(0);
            *entry = entry.saturating_add(*amount);
        }
        let payments: BTreeSet<&Key> = self
            .cumulative_refunds
            .keys()
            .chain(singles.keys())
            .collect();
        let amount_refunded = payments.into_iter().fold(0i64, |sum, payment| {
            let cumulative = self.cumulative_refunds.get(payment).copied().unwrap_or(0);
            let single = singles.get(payment).copied().unwrap_or(0);
            sum.saturating_add(cumulative.max(single))
        });
        PaymentTotals {
            amount_paid,
            paid_any: !self.paid.is_empty(),
            amount_refunded,
            attempt: self.attempt.map(|a| a.attempt),
            disputed: self
                .disputes_opened
                .difference(&self.disputes_closed)
                .next()
                .is_some(),
        }
    }

    /// Why the order needs a human, if it does.
    pub fn attention_reason(&self) -> Option<&str> {
        self.mismatch.as_ref().map(|m| m.note.as_str())
    }
}

/// Sums up applied facts from scratch (the reference `merge` must agree with).
pub fn summarize(facts: &[Fact]) -> Summary {
    let mut summary = Summary::default();
    for fact in facts {
        summary.merge_fact(fact);
    }
    summary
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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
        ])
        .totals();
        assert_eq!((s.amount_paid, s.paid_any), (3900, true));
    }

    #[test]
    fn two_payments_add_up() {
        let s = summarize(&[
            fact("e1", EventKind::PaymentSucceeded, "pi_1", "", 1000, 1),
            fact("e2", EventKind::PaymentSucceeded, "pi_2", "", 2900, 2),
            fact("e3", EventKind::PaymentSucceeded, "", "", 100, 3),
        ])
        .totals();
        assert_eq!(s.amount_paid, 4000);
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
        ])
        .totals();
        assert_eq!(s.amount_refunded, 1500);
    }

    #[test]
    fn latest_attempt_wins_by_provider_time() {
        let s = summarize(&[
            fact("a", EventKind::PaymentFailed, "pi_1", "", 0, 10),
            fact("b", EventKind::PaymentProcessing, "pi_2", "", 0, 20),
        ]);
        assert_eq!(s.totals().attempt, Some(Attempt::Processing));
        let s = summarize(&[
            fact("b", EventKind::PaymentProcessing, "pi_2", "", 0, 20),
            fact("a", EventKind::PaymentFailed, "pi_1", "", 0, 30),
        ]);
        assert_eq!(s.totals().attempt, Some(Attempt::Failed));
    }

    #[test]
    fn a_closed_dispute_stays_closed_whatever_the_order() {
        let open = fact("d1", EventKind::DisputeOpened, "pi_1", "dp_1", 0, 5);
        let close = fact("d2", EventKind::DisputeClosed, "pi_1", "dp_1", 0, 6);
        assert!(summarize(std::slice::from_ref(&open)).totals().disputed);
        assert!(!summarize(&[close.clone(), open.clone()]).totals().disputed);
        assert!(!summarize(&[open, close]).totals().disputed);
    }

    #[test]
    fn the_earliest_mismatch_explains_the_flag() {
        let mut s = Summary::default();
        s.merge_mismatch(
            &fact("late", EventKind::PaymentSucceeded, "", "", 1, 9),
            "B",
        );
        s.merge_mismatch(
            &fact("early", EventKind::PaymentSucceeded, "", "", 1, 2),
            "A",
        );
        assert_eq!(s.attention_reason(), Some("A"));
    }

    /// Facts of a few payments, refunds, disputes and attempts, some
    /// sharing references, so maxima and ties are exercised.
    fn any_fact() -> impl Strategy<Value = (Fact, Option<String>)> {
        let kinds = prop::sample::select(vec![
            EventKind::PaymentSucceeded,
            EventKind::PaymentProcessing,
            EventKind::PaymentFailed,
            EventKind::PaymentCancelled,
            EventKind::Refunded,
            EventKind::DisputeOpened,
            EventKind::DisputeClosed,
            EventKind::Purchase,
            EventKind::Other,
        ]);
        (
            kinds,
            0u8..6,
            prop::sample::select(vec!["", "pi_1", "pi_2"]),
            prop::sample::select(vec!["", "re_1", "re_2", "dp_1"]),
            0i64..5000,
            any::<bool>(),
            0i64..4,
            prop::option::weighted(0.15, prop::sample::select(vec!["X", "Y"])),
        )
            .prop_map(|(kind, id, payment, refund, amount, cumulative, t, note)| {
                (
                    Fact {
                        event_id: format!("evt_{id}"),
                        kind,
                        payment_ref: payment.into(),
                        refund_ref: refund.into(),
                        amount,
                        amount_is_cumulative: cumulative,
                        occur_time: t,
                    },
                    note.map(str::to_owned),
                )
            })
    }

    fn merge_all(facts: &[(Fact, Option<String>)]) -> Summary {
        let mut s = Summary::default();
        for (fact, note) in facts {
            match note {
                Some(note) => s.merge_mismatch(fact, note),
                None => s.merge_fact(fact),
            }
        }
        s
    }

    proptest! {
        /// Merging facts one at a time, in any order and with repeats, gives
        /// the summary of the distinct facts.
        #[test]
        fn incremental_merge_equals_summarize(
            facts in prop::collection::vec(any_fact(), 0..24),
            repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
            seed in any::<u64>(),
        ) {
            let mut deliveries = facts.clone();
            for index in &repeats {
                if !facts.is_empty() {
                    deliveries.push(index.get(&facts).clone());
                }
            }
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..deliveries.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                deliveries.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let applied: Vec<Fact> = facts.iter().filter(|(_, n)| n.is_none()).map(|(f, _)| f.clone()).collect();
            let mut reference = summarize(&applied);
            for (fact, note) in &facts {
                if let Some(note) = note {
                    reference.merge_mismatch(fact, note);
                }
            }
            prop_assert_eq!(merge_all(&deliveries), reference);
        }

        /// The join of summaries is commutative, associative and idempotent.
        #[test]
        fn merge_is_a_join(
            a in prop::collection::vec(any_fact(), 0..10),
            b in prop::collection::vec(any_fact(), 0..10),
            c in prop::collection::vec(any_fact(), 0..10),
        ) {
            let (a, b, c) = (merge_all(&a), merge_all(&b), merge_all(&c));
            let join = |x: &Summary, y: &Summary| { let mut z = x.clone(); z.merge(y); z };
            prop_assert_eq!(join(&a, &b), join(&b, &a));
            prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
            prop_assert_eq!(join(&a, &a), a.clone());
        }
    }
}
