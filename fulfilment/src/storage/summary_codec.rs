//! The stored form of an order's payment [`Summary`] (column
//! `orders.payment_summary`): a protobuf message, so a later release can add
//! fields and still read what this one wrote.

use prost::Message;

use super::StorageError;
use crate::payment_event::summary::{Attempt, AttemptMark, Key, MismatchMark, Summary};

#[derive(Clone, PartialEq, Message)]
struct SummaryPb {
    #[prost(message, repeated, tag = "1")]
    paid: Vec<AmountPb>,
    #[prost(message, repeated, tag = "2")]
    cumulative_refunds: Vec<AmountPb>,
    #[prost(message, repeated, tag = "3")]
    refunds: Vec<RefundPb>,
    #[prost(message, optional, tag = "4")]
    attempt: Option<AttemptPb>,
    #[prost(bytes = "vec", repeated, tag = "5")]
    disputes_opened: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    disputes_closed: Vec<Vec<u8>>,
    #[prost(message, optional, tag = "7")]
    mismatch: Option<MismatchPb>,
}

#[derive(Clone, PartialEq, Message)]
struct AmountPb {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(int64, tag = "2")]
    amount: i64,
}

#[derive(Clone, PartialEq, Message)]
struct RefundPb {
    #[prost(bytes = "vec", tag = "1")]
    payment: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    refund: Vec<u8>,
    #[prost(int64, tag = "3")]
    amount: i64,
}

#[derive(Clone, PartialEq, Message)]
struct AttemptPb {
    #[prost(int64, tag = "1")]
    occur_time: i64,
    #[prost(bytes = "vec", tag = "2")]
    event: Vec<u8>,
    /// 1 processing, 2 failed.
    #[prost(int32, tag = "3")]
    attempt: i32,
}

#[derive(Clone, PartialEq, Message)]
struct MismatchPb {
    #[prost(int64, tag = "1")]
    occur_time: i64,
    #[prost(bytes = "vec", tag = "2")]
    event: Vec<u8>,
    #[prost(string, tag = "3")]
    note: String,
}

/// Encodes a summary for the `payment_summary` column.
pub(crate) fn encode(summary: &Summary) -> Vec<u8> {
    let key = |k: &Key| k.0.to_vec();
    SummaryPb {
        paid: summary
            .paid
            .iter()
            .map(|(k, amount)| AmountPb {
                key: key(k),
                amount: *amount,
            })
            .collect(),
        cumulative_refunds: summary
            .cumulative_refunds
            .iter()
            .map(|(k, amount)| AmountPb {
                key: key(k),
                amount: *amount,
            })
            .collect(),
        refunds: summary
            .refunds
            .iter()
            .map(|((payment, refund), amount)| RefundPb {
                payment: key(payment),
                refund: key(refund),
                amount: *amount,
            })
            .collect(),
        attempt: summary.attempt.map(|a| AttemptPb {
            occur_time: a.occur_time,
            event: key(&a.event),
            attempt: match a.attempt {
                Attempt::Processing => 1,
                Attempt::Failed => 2,
            },
        }),
        disputes_opened: summary.disputes_opened.iter().map(key).collect(),
        disputes_closed: summary.disputes_closed.iter().map(key).collect(),
        mismatch: summary.mismatch.as_ref().map(|m| MismatchPb {
            occur_time: m.occur_time,
            event: key(&m.event),
            note: m.note.clone(),
        }),
    }
    .encode_to_vec()
}

fn key(bytes: &[u8]) -> Result<Key, StorageError> {
    <[u8; 16]>::try_from(bytes)
        .map(Key)
        .map_err(|_| StorageError::Corrupt("payment summary: key length".into()))
}

/// Decodes a `payment_summary` column.
pub(crate) fn decode(bytes: &[u8]) -> Result<Summary, StorageError> {
    let pb = SummaryPb::decode(bytes)
        .map_err(|e| StorageError::Corrupt(format!("payment summary: {e}")))?;
    let mut summary = Summary::default();
    for entry in pb.paid {
        summary.paid.insert(key(&entry.key)?, entry.amount);
    }
    for entry in pb.cumulative_refunds {
        summary
            .cumulative_refunds
            .insert(key(&entry.key)?, entry.amount);
    }
    for entry in pb.refunds {
        summary
            .refunds
            .insert((key(&entry.payment)?, key(&entry.refund)?), entry.amount);
    }
    summary.attempt = match pb.attempt {
        None => None,
        Some(a) => Some(AttemptMark {
            occur_time: a.occur_time,
            event: key(&a.event)?,
            attempt: match a.attempt {
                1 => Attempt::Processing,
                2 => Attempt::Failed,
                other => {
                    return Err(StorageError::Corrupt(format!(
                        "payment summary: attempt {other}"
                    )));
                }
            },
        }),
    };
    for k in pb.disputes_opened {
        summary.disputes_opened.insert(key(&k)?);
    }
    for k in pb.disputes_closed {
        summary.disputes_closed.insert(key(&k)?);
    }
    summary.mismatch = match pb.mismatch {
        None => None,
        Some(m) => Some(MismatchMark {
            occur_time: m.occur_time,
            event: key(&m.event)?,
            note: m.note,
        }),
    };
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment_event::EventKind;
    use crate::payment_event::summary::{Fact, summarize};

    #[test]
    fn a_summary_round_trips() {
        let fact = |id: &str, kind, payment: &str, refund: &str, amount, t| Fact {
            event_id: id.into(),
            kind,
            payment_ref: payment.into(),
            refund_ref: refund.into(),
            amount,
            amount_is_cumulative: id.starts_with('c'),
            occur_time: t,
        };
        let mut summary = summarize(&[
            fact("a", EventKind::PaymentSucceeded, "pi_1", "", 3900, 1),
            fact("b", EventKind::Refunded, "pi_1", "re_1", 100, 2),
            fact("c", EventKind::Refunded, "pi_1", "", 300, 3),
            fact("d", EventKind::PaymentFailed, "pi_0", "", 0, 4),
            fact("e", EventKind::DisputeOpened, "pi_1", "dp_1", 0, 5),
            fact("f", EventKind::DisputeClosed, "pi_1", "dp_2", 0, 6),
        ]);
        summary.merge_mismatch(&fact("g", EventKind::PaymentSucceeded, "", "", 1, 7), "why");
        assert_eq!(decode(&encode(&summary)).expect("decodes"), summary);
        assert_eq!(
            decode(&encode(&Summary::default())).expect("decodes"),
            Summary::default()
        );
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
