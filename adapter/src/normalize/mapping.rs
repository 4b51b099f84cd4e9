//! Configuration-driven normalisation, so a new provider (any Standard
//! Webhooks sender, or Paddle Billing) can be wired by configuration alone.
//!
//! A [`Mapping`] names, with JSON pointers (RFC 6901, e.g. `/data/id`),
//! where each field of the event is, and lists which event types mean
//! which kind. Event types in none of the lists are OTHER. Fields whose
//! pointer is unset or points at nothing are left empty, except the event
//! type, the event id and (when configured) the time, which every event
//! must have.
//!
//! ```json
//! {
//!   "event_type": "/type",
//!   "occur_time": "/timestamp",
//!   "order_ref": "/data/payment/reference",
//!   "payment_ref": "/data/payment/id",
//!   "amount": "/data/payment/amount",
//!   "amount_format": "decimal",
//!   "currency": "/data/payment/currency",
//!   "succeeded": ["payment.succeeded"],
//!   "failed": ["payment.failed"]
//! }
//! ```
//!
//! Refunds often come as a different object from payments (Paddle:
//! adjustments, not transactions), so [`Mapping::refund`] can point
//! elsewhere for events of the `refunded` list, and require conditions
//! (an approved refund, not a pending one or a credit) before an event
//! counts as a refund at all.

use fulfil_proto::v1::PaymentEvent;
use prost_types::Timestamp;
use serde_json::Value;

use super::amount::{decimal_to_minor, minor_units};
use super::json::{currency_code, from_rfc3339, from_unix_seconds};
use super::{Kind, NormalizeError, event, set_money};

/// How a provider writes amounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmountFormat {
    /// Integer minor units, as a JSON integer or a string of digits
    /// (`1099`, `"1099"`).
    #[default]
    MinorUnits,
    /// A decimal in major units (`"10.99"`), converted exactly with the
    /// currency's ISO 4217 exponent; needs `currency`.
    Decimal,
}

/// Where a provider's payload keeps each field, and what its event types
/// mean. Pointers are JSON pointers into the body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The event type (`/type`; Paddle `/event_type`). Required.
    pub event_type: String,
    /// The event id, the dedupe key (Paddle `/event_id`). When unset,
    /// Standard Webhooks senders are deduplicated on the verified
    /// `webhook-id` header.
    #[serde(default)]
    pub event_id: Option<String>,
    /// The order the event belongs to.
    #[serde(default)]
    pub order_ref: Option<String>,
    /// The provider's payment object.
    #[serde(default)]
    pub payment_ref: Option<String>,
    /// The provider's refund object.
    #[serde(default)]
    pub refund_ref: Option<String>,
    /// The amount.
    #[serde(default)]
    pub amount: Option<String>,
    /// How `amount` is written.
    #[serde(default)]
    pub amount_format: AmountFormat,
    /// The ISO 4217 currency code (any case).
    #[serde(default)]
    pub currency: Option<String>,
    /// When it happened: an RFC 3339 string, or unix seconds (an integer
    /// or a string of digits).
    #[serde(default)]
    pub occur_time: Option<String>,
    /// Event types meaning PAYMENT_SUCCEEDED.
    #[serde(default)]
    pub succeeded: Vec<String>,
    /// Event types meaning PAYMENT_FAILED.
    #[serde(default)]
    pub failed: Vec<String>,
    /// Event types meaning PAYMENT_PROCESSING.
    #[serde(default)]
    pub processing: Vec<String>,
    /// Event types meaning PAYMENT_CANCELLED.
    #[serde(default)]
    pub cancelled: Vec<String>,
    /// Event types meaning REFUNDED (the amount being this refund's).
    #[serde(default)]
    pub refunded: Vec<String>,
    /// How events of the `refunded` list differ from payments, if they do.
    #[serde(default)]
    pub refund: Option<RefundMapping>,
}

/// Pointers that replace the top-level ones for events of the `refunded`
/// list, and conditions such an event must meet to count as a refund.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundMapping {
    /// Replaces [`Mapping::order_ref`].
    #[serde(default)]
    pub order_ref: Option<String>,
    /// Replaces [`Mapping::payment_ref`].
    #[serde(default)]
    pub payment_ref: Option<String>,
    /// Replaces [`Mapping::refund_ref`].
    #[serde(default)]
    pub refund_ref: Option<String>,
    /// Replaces [`Mapping::amount`].
    #[serde(default)]
    pub amount: Option<String>,
    /// All must hold, or the event is OTHER (e.g. a refund still pending
    /// approval: its approval comes as a later event).
    #[serde(default)]
    pub require: Vec<Condition>,
}

/// The value at `pointer` is one of `one_of` (compared as text).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Where to look.
    pub pointer: String,
    /// The accepted values.
    pub one_of: Vec<String>,
}

/// A mapping that cannot work as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mapping: {0}")]
pub struct MappingError(String);

impl Mapping {
    /// Checks the mapping once, at configuration time: pointers are JSON
    /// pointers, no event type has two meanings, decimal amounts have a
    /// currency. [`super::normalize`] does not re-check; a pointer that does
    /// not start with `/` simply never finds anything.
    pub fn validate(&self) -> Result<(), MappingError> {
        if self.event_type.is_empty() {
            return Err(MappingError("event_type must point somewhere".into()));
        }
        let refund = self.refund.clone().unwrap_or_default();
        let mut pointers = vec![("event_type", Some(&self.event_type))];
        pointers.extend([
            ("event_id", self.event_id.as_ref()),
            ("order_ref", self.order_ref.as_ref()),
            ("payment_ref", self.payment_ref.as_ref()),
            ("refund_ref", self.refund_ref.as_ref()),
            ("amount", self.amount.as_ref()),
            ("currency", self.currency.as_ref()),
            ("occur_time", self.occur_time.as_ref()),
            ("refund.order_ref", refund.order_ref.as_ref()),
            ("refund.payment_ref", refund.payment_ref.as_ref()),
            ("refund.refund_ref", refund.refund_ref.as_ref()),
            ("refund.amount", refund.amount.as_ref()),
        ]);
        pointers.extend(
            refund
                .require
                .iter()
                .map(|c| ("refund.require.pointer", Some(&c.pointer))),
        );
        for (name, pointer) in pointers {
            if let Some(pointer) = pointer
                && !pointer.is_empty()
                && !pointer.starts_with('/')
            {
                return Err(MappingError(format!(
                    "{name} must be a JSON pointer starting with '/'"
                )));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (_, types) in self.lists() {
            for event_type in types {
                if !seen.insert(event_type.as_str()) {
                    return Err(MappingError(format!(
                        "event type {event_type:?} is listed under two kinds"
                    )));
                }
            }
        }
        if self.amount_format == AmountFormat::Decimal && self.currency.is_none() {
            return Err(MappingError(
                "decimal amounts need a currency pointer".into(),
            ));
        }
        Ok(())
    }

    fn lists(&self) -> [(Kind, &Vec<String>); 5] {
        [
            (Kind::PaymentSucceeded, &self.succeeded),
            (Kind::PaymentFailed, &self.failed),
            (Kind::PaymentProcessing, &self.processing),
            (Kind::PaymentCancelled, &self.cancelled),
            (Kind::Refunded, &self.refunded),
        ]
    }

    /// The kind an event type means; the first list naming it wins.
    fn kind_of(&self, event_type: &str) -> Kind {
        self.lists()
            .into_iter()
            .find(|(_, types)| types.iter().any(|t| t == event_type))
            .map_or(Kind::Other, |(kind, _)| kind)
    }
}

/// Paddle Billing's webhooks.
///
/// - `transaction.completed` is PAYMENT_SUCCEEDED (Paddle sends it once the
///   payment is captured and fully processed; the earlier
///   `transaction.paid` is left out so one payment is not reported twice),
///   `transaction.payment_failed` PAYMENT_FAILED, `transaction.canceled`
///   PAYMENT_CANCELLED. payment_ref is the transaction (`txn_…`), the
///   amount `data.details.totals.grand_total` (minor units as a string),
///   order_ref `data.custom_data.order_id` (set it when opening checkout).
/// - `adjustment.created` / `adjustment.updated` are REFUNDED only when
///   `data.action` is `refund` and `data.status` is `approved`: most live
///   refunds are created `pending_approval` and approved later (an
///   `adjustment.updated`); credits, chargebacks and rejected refunds are
///   OTHER. refund_ref is the adjustment (`adj_…`), payment_ref its
///   transaction, the amount `data.totals.total`. Adjustments carry no
///   custom data, so the order is found from the transaction.
/// - Event id `/event_id`, time `/occurred_at`, currency `/data/currency_code`.
pub fn paddle_default() -> Mapping {
    let pointer = |p: &str| Some(p.to_owned());
    let types = |ts: &[&str]| ts.iter().map(|t| (*t).to_owned()).collect();
    Mapping {
        event_type: "/event_type".to_owned(),
        event_id: pointer("/event_id"),
        order_ref: pointer("/data/custom_data/order_id"),
        payment_ref: pointer("/data/id"),
        refund_ref: None,
        amount: pointer("/data/details/totals/grand_total"),
        amount_format: AmountFormat::MinorUnits,
        currency: pointer("/data/currency_code"),
        occur_time: pointer("/occurred_at"),
        succeeded: types(&["transaction.completed"]),
        failed: types(&["transaction.payment_failed"]),
        processing: Vec::new(),
        cancelled: types(&["transaction.canceled"]),
        refunded: types(&["adjustment.created", "adjustment.updated"]),
        refund: Some(RefundMapping {
            order_ref: None,
            payment_ref: pointer("/data/transaction_id"),
            refund_ref: pointer("/data/id"),
            amount: pointer("/data/totals/total"),
            require: vec![
                Condition {
                    pointer: "/data/action".to_owned(),
                    one_of: types(&["refund"]),
                },
                Condition {
                    pointer: "/data/status".to_owned(),
                    one_of: types(&["approved"]),
                },
            ],
        }),
    }
}

pub(super) fn normalize(
    mapping: &Mapping,
    body: &Value,
    webhook_id: Option<&str>,
) -> Result<PaymentEvent, NormalizeError> {
    let event_type =
        text(body, &mapping.event_type)?.ok_or_else(|| missing(&mapping.event_type))?;
    let event_id = match &mapping.event_id {
        Some(pointer) => text(body, pointer)?.ok_or_else(|| missing(pointer))?,
        None => webhook_id
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| missing("webhook-id header"))?,
    };
    let occur_time = match &mapping.occur_time {
        Some(pointer) => Some(time(body, pointer)?),
        None => None,
    };

    let mut kind = mapping.kind_of(&event_type);
    let refund = mapping.refund.as_ref().filter(|_| kind == Kind::Refunded);
    if let Some(refund) = refund {
        for condition in &refund.require {
            let value = text(body, &condition.pointer)?;
            if !value.is_some_and(|v| condition.one_of.contains(&v)) {
                kind = Kind::Other;
            }
        }
    }
    let mut ev = event(kind, &event_id, &event_type, Timestamp::default());
    ev.occur_time = occur_time;
    if kind == Kind::Other {
        return Ok(ev);
    }

    // The refund's own pointer if it has one, else the top-level one.
    let pick = |own: Option<&Option<String>>, top: &Option<String>| -> Option<String> {
        own.and_then(Option::clone).or_else(|| top.clone())
    };
    let order_ref = pick(refund.map(|r| &r.order_ref), &mapping.order_ref);
    let payment_ref = pick(refund.map(|r| &r.payment_ref), &mapping.payment_ref);
    let refund_ref = pick(refund.map(|r| &r.refund_ref), &mapping.refund_ref);
    let amount = pick(refund.map(|r| &r.amount), &mapping.amount);

    ev.order_ref = optional_text(body, order_ref.as_deref())?;
    ev.payment_ref = optional_text(body, payment_ref.as_deref())?;
    ev.refund_ref = optional_text(body, refund_ref.as_deref())?;

    let currency = currency(body, mapping.currency.as_deref())?;
    let currency_pointer = mapping.currency.as_deref().unwrap_or("currency");
    let amount = match amount.as_deref() {
        Some(pointer) => match mapping.amount_format {
            AmountFormat::MinorUnits => minor_amount(body, pointer)?,
            AmountFormat::Decimal => match lookup(body, pointer) {
                None => 0,
                Some(_) => {
                    let code = currency
                        .as_deref()
                        .ok_or_else(|| missing(currency_pointer))?;
                    decimal_amount(body, pointer, code)?
                }
            },
        },
        None => 0,
    };
    set_money(&mut ev, amount, currency, || missing(currency_pointer))?;
    Ok(ev)
}

fn currency(body: &Value, pointer: Option<&str>) -> Result<Option<String>, NormalizeError> {
    let Some(pointer) = pointer else {
        return Ok(None);
    };
    match text(body, pointer)? {
        Some(code) => currency_code(&code)
            .map(Some)
            .ok_or_else(|| invalid(pointer, "not a three-letter ISO 4217 code".to_owned())),
        None => Ok(None),
    }
}

fn lookup<'a>(body: &'a Value, pointer: &str) -> Option<&'a Value> {
    body.pointer(pointer).filter(|v| !v.is_null())
}

fn missing(pointer: &str) -> NormalizeError {
    NormalizeError::MissingField {
        path: pointer.to_owned(),
    }
}

fn wrong_type(pointer: &str, expected: &'static str) -> NormalizeError {
    NormalizeError::WrongType {
        path: pointer.to_owned(),
        expected,
    }
}

fn invalid(pointer: &str, reason: String) -> NormalizeError {
    NormalizeError::InvalidValue {
        path: pointer.to_owned(),
        reason,
    }
}

/// A string, or a number written as text (some providers number their
/// ids); empty strings read as absent.
fn text(body: &Value, pointer: &str) -> Result<Option<String>, NormalizeError> {
    match lookup(body, pointer) {
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(wrong_type(pointer, "string")),
        None => Ok(None),
    }
}

fn optional_text(body: &Value, pointer: Option<&str>) -> Result<String, NormalizeError> {
    match pointer {
        Some(pointer) => Ok(text(body, pointer)?.unwrap_or_default()),
        None => Ok(String::new()),
    }
}

fn time(body: &Value, pointer: &str) -> Result<Timestamp, NormalizeError> {
    let expected = "RFC 3339 string or unix seconds";
    match lookup(body, pointer) {
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            let seconds = s
                .parse()
                .map_err(|_| invalid(pointer, "time out of range".to_owned()))?;
            from_unix_seconds(seconds, pointer)
        }
        Some(Value::String(s)) => from_rfc3339(s, pointer),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(seconds) => from_unix_seconds(seconds, pointer),
            None => Err(wrong_type(pointer, expected)),
        },
        Some(_) => Err(wrong_type(pointer, expected)),
        None => Err(missing(pointer)),
    }
}

fn minor_amount(body: &Value, pointer: &str) -> Result<i64, NormalizeError> {
    match lookup(body, pointer) {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if v < 0 => Err(invalid(pointer, "must not be negative".to_owned())),
            Some(v) => Ok(v),
            None if n.is_u64() => Err(invalid(pointer, "too large".to_owned())),
            None => Err(wrong_type(pointer, "integer minor units")),
        },
        Some(Value::String(s)) => minor_units(s).map_err(|err| invalid(pointer, err.to_string())),
        Some(_) => Err(wrong_type(pointer, "integer minor units")),
        None => Ok(0),
    }
}

fn decimal_amount(body: &Value, pointer: &str, currency: &str) -> Result<i64, NormalizeError> {
    let text = match lookup(body, pointer) {
        Some(Value::String(s)) => s.clone(),
        // Rust writes floats in plain decimal, never with an exponent, so
        // the exact conversion applies to numbers too.
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (_, _, Some(f)) => format!("{f}"),
            _ => return Err(wrong_type(pointer, "decimal")),
        },
        Some(_) => return Err(wrong_type(pointer, "decimal")),
        None => return Ok(0),
    };
    decimal_to_minor(&text, currency).map_err(|err| invalid(pointer, err.to_string()))
}

#[cfg(test)]
mod tests {
    //! Paddle payloads under `testdata/normalize/paddle-*.json` follow the
    //! examples of Paddle Billing's webhook reference (transaction.completed,
    //! adjustment.updated); `standard-acme-payment.json` is a made-up
    //! Standard Webhooks sender (`type`, `timestamp`, `data`, the envelope
    //! the Standard Webhooks spec recommends).

    use serde_json::json;

    use super::super::Context;
    use super::super::testing::{ctx, fixture, never_panics, remove, run_json, set};
    use super::*;
    use fulfil_proto::Provider;

    fn paddle(body: &Value) -> Result<PaymentEvent, NormalizeError> {
        run_json(&ctx(Provider::Paddle), body)
    }

    fn transaction(event_type: &str) -> Value {
        let mut body = fixture("normalize/paddle-transaction-completed.json");
        set(&mut body, "/event_type", json!(event_type));
        body
    }

    fn adjustment(event_type: &str, action: &str, status: &str) -> Value {
        let mut body = fixture("normalize/paddle-adjustment-updated.json");
        set(&mut body, "/event_type", json!(event_type));
        set(&mut body, "/data/action", json!(action));
        set(&mut body, "/data/status", json!(status));
        body
    }

    #[test]
    fn paddle_default_is_valid() {
        assert_eq!(paddle_default().validate(), Ok(()));
    }

    #[test]
    fn paddle_transaction_completed() {
        let ev = paddle(&transaction("transaction.completed")).unwrap();
        assert_eq!(ev.kind(), Kind::PaymentSucceeded);
        assert_eq!(ev.provider, "paddle");
        assert_eq!(ev.event_id, "evt_01hv8wt8nffy3ej5zvjbqabwmy");
        assert_eq!(ev.event_type, "transaction.completed");
        assert_eq!(
            ev.occur_time,
            Some(Timestamp {
                seconds: 1_712_917_129,
                nanos: 738_972_000
            })
        );
        assert_eq!(ev.payment_ref, "txn_01hv8wptq8987qeep44cyrewp9");
        assert_eq!(ev.order_ref, "ord_019ad0c2e4f87b3b");
        assert_eq!((ev.amount, ev.currency.as_str()), (35887, "USD"));
        assert_eq!(ev.refund_ref, "");
    }

    #[test]
    fn paddle_payment_failed_and_canceled() {
        let ev = paddle(&transaction("transaction.payment_failed")).unwrap();
        assert_eq!(ev.kind(), Kind::PaymentFailed);
        assert_eq!(ev.payment_ref, "txn_01hv8wptq8987qeep44cyrewp9");
        let ev = paddle(&transaction("transaction.canceled")).unwrap();
        assert_eq!(ev.kind(), Kind::PaymentCancelled);
    }

    #[test]
    fn paddle_other_transaction_events_are_other() {
        for event_type in [
            "transaction.paid",
            "transaction.created",
            "subscription.created",
        ] {
            let ev = paddle(&transaction(event_type)).unwrap();
            assert_eq!(ev.kind(), Kind::Other, "{event_type}");
            assert_eq!(ev.event_id, "evt_01hv8wt8nffy3ej5zvjbqabwmy");
            assert_eq!(ev.payment_ref, "");
        }
    }

    #[test]
    fn paddle_approved_refund_adjustment() {
        for event_type in ["adjustment.updated", "adjustment.created"] {
            let ev = paddle(&adjustment(event_type, "refund", "approved")).unwrap();
            assert_eq!(ev.kind(), Kind::Refunded, "{event_type}");
            assert_eq!(ev.refund_ref, "adj_01hvb3hvxtg6rpr3sqwpbhgtx6");
            assert_eq!(ev.payment_ref, "txn_01hv8wptq8987qeep44cyrewp9");
            assert_eq!((ev.amount, ev.currency.as_str()), (10800, "USD"));
            assert_eq!(ev.order_ref, "", "found through the transaction");
        }
    }

    #[test]
    fn paddle_pending_rejected_credit_and_chargeback_adjustments_are_other() {
        for (action, status) in [
            ("refund", "pending_approval"),
            ("refund", "rejected"),
            ("credit", "approved"),
            ("chargeback", "approved"),
        ] {
            let ev = paddle(&adjustment("adjustment.created", action, status)).unwrap();
            assert_eq!(ev.kind(), Kind::Other, "{action} {status}");
            assert_eq!(ev.amount, 0);
        }
        let mut body = adjustment("adjustment.updated", "refund", "approved");
        remove(&mut body, "/data/status");
        assert_eq!(paddle(&body).unwrap().kind(), Kind::Other);
    }

    #[test]
    fn paddle_amounts_are_minor_unit_strings() {
        let mut body = transaction("transaction.completed");
        set(
            &mut body,
            "/data/details/totals/grand_total",
            json!("358.87"),
        );
        assert_eq!(paddle(&body).unwrap_err().code(), "invalid_value");
        set(&mut body, "/data/details/totals/grand_total", json!("-1"));
        assert_eq!(paddle(&body).unwrap_err().code(), "invalid_value");
        set(&mut body, "/data/details/totals/grand_total", json!(true));
        assert_eq!(
            paddle(&body).unwrap_err(),
            NormalizeError::WrongType {
                path: "/data/details/totals/grand_total".into(),
                expected: "integer minor units"
            }
        );
        set(&mut body, "/data/details/totals/grand_total", json!(35887));
        assert_eq!(paddle(&body).unwrap().amount, 35887);
    }

    #[test]
    fn paddle_envelope_fields_are_required() {
        for pointer in ["/event_id", "/event_type", "/occurred_at"] {
            let mut body = transaction("transaction.completed");
            remove(&mut body, pointer);
            assert_eq!(
                paddle(&body).unwrap_err(),
                NormalizeError::MissingField {
                    path: pointer.into()
                }
            );
        }
    }

    /// A custom Standard Webhooks sender, configured from JSON as an
    /// operator would.
    fn acme() -> Mapping {
        serde_json::from_value(json!({
            "event_type": "/type",
            "occur_time": "/timestamp",
            "order_ref": "/data/payment/reference",
            "payment_ref": "/data/payment/id",
            "amount": "/data/payment/amount",
            "amount_format": "decimal",
            "currency": "/data/payment/currency",
            "succeeded": ["payment.succeeded"],
            "failed": ["payment.failed"],
            "processing": ["payment.pending"],
            "cancelled": ["payment.voided"],
            "refunded": ["refund.succeeded"],
            "refund": {"refund_ref": "/data/refund/id", "amount": "/data/refund/amount"}
        }))
        .unwrap()
    }

    fn standard<'a>(mapping: &'a Mapping, webhook_id: Option<&'a str>) -> Context<'a> {
        Context {
            mapping: Some(mapping),
            webhook_id,
            ..ctx(Provider::Standard)
        }
    }

    #[test]
    fn a_custom_standard_webhooks_provider() {
        let mapping = acme();
        assert_eq!(mapping.validate(), Ok(()));
        let body = fixture("normalize/standard-acme-payment.json");
        let ev = run_json(
            &standard(&mapping, Some("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")),
            &body,
        )
        .unwrap();
        assert_eq!(ev.kind(), Kind::PaymentSucceeded);
        assert_eq!(ev.provider, "standard");
        assert_eq!(
            ev.event_id, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            "the webhook-id header"
        );
        assert_eq!(ev.event_type, "payment.succeeded");
        assert_eq!(
            ev.occur_time,
            Some(Timestamp {
                seconds: 1_717_245_005,
                nanos: 123_456_000
            })
        );
        assert_eq!(ev.payment_ref, "pay_7Hq2VwQe");
        assert_eq!(ev.order_ref, "ord_019ad0c2e4f87b3b");
        assert_eq!((ev.amount, ev.currency.as_str()), (12990, "EUR"));
    }

    #[test]
    fn standard_kinds_and_refund_pointers() {
        let mapping = acme();
        let context = standard(&mapping, Some("msg_1"));
        for (event_type, kind) in [
            ("payment.failed", Kind::PaymentFailed),
            ("payment.pending", Kind::PaymentProcessing),
            ("payment.voided", Kind::PaymentCancelled),
            ("payment.updated", Kind::Other),
        ] {
            let mut body = fixture("normalize/standard-acme-payment.json");
            set(&mut body, "/type", json!(event_type));
            assert_eq!(
                run_json(&context, &body).unwrap().kind(),
                kind,
                "{event_type}"
            );
        }
        let mut body = fixture("normalize/standard-acme-payment.json");
        set(&mut body, "/type", json!("refund.succeeded"));
        set(
            &mut body,
            "/data/refund",
            json!({"id": "rf_1", "amount": "20.00"}),
        );
        let ev = run_json(&context, &body).unwrap();
        assert_eq!(ev.kind(), Kind::Refunded);
        assert_eq!(ev.refund_ref, "rf_1");
        assert_eq!(ev.payment_ref, "pay_7Hq2VwQe", "the top-level pointer");
        assert_eq!(ev.amount, 2000, "the refund's own amount");
    }

    #[test]
    fn standard_event_id_from_the_body_when_configured() {
        let mut mapping = acme();
        mapping.event_id = Some("/data/payment/id".into());
        let body = fixture("normalize/standard-acme-payment.json");
        let ev = run_json(&standard(&mapping, Some("msg_1")), &body).unwrap();
        assert_eq!(ev.event_id, "pay_7Hq2VwQe");
    }

    #[test]
    fn standard_without_any_event_id_is_missing_it() {
        let mapping = acme();
        let body = fixture("normalize/standard-acme-payment.json");
        for webhook_id in [None, Some("")] {
            let err = run_json(&standard(&mapping, webhook_id), &body).unwrap_err();
            assert_eq!(err.code(), "missing_field");
            assert!(err.to_string().contains("webhook-id"), "{err}");
        }
    }

    #[test]
    fn standard_decimal_amount_edge_cases() {
        let mapping = acme();
        let context = standard(&mapping, Some("msg_1"));
        let amount = |value: Value, currency: &str| {
            let mut body = fixture("normalize/standard-acme-payment.json");
            set(&mut body, "/data/payment/amount", value);
            set(&mut body, "/data/payment/currency", json!(currency));
            run_json(&context, &body).map(|ev| ev.amount)
        };
        assert_eq!(amount(json!("1000"), "JPY"), Ok(1000));
        assert_eq!(amount(json!("1.234"), "KWD"), Ok(1234));
        assert_eq!(amount(json!(10.99), "USD"), Ok(1099));
        assert_eq!(amount(json!(7), "USD"), Ok(700));
        assert_eq!(
            amount(json!("10.999"), "USD").unwrap_err().code(),
            "invalid_value"
        );
        assert_eq!(
            amount(json!("-1.00"), "USD").unwrap_err().code(),
            "invalid_value"
        );
        assert_eq!(
            amount(json!(-1.5), "USD").unwrap_err().code(),
            "invalid_value"
        );
        assert_eq!(
            amount(json!(1e300), "USD").unwrap_err().code(),
            "invalid_value"
        );
        assert_eq!(amount(json!({}), "USD").unwrap_err().code(), "wrong_type");
        assert_eq!(
            amount(json!("10.00"), "EURO").unwrap_err().code(),
            "invalid_value"
        );

        let mut body = fixture("normalize/standard-acme-payment.json");
        remove(&mut body, "/data/payment/currency");
        assert_eq!(
            run_json(&context, &body).unwrap_err(),
            NormalizeError::MissingField {
                path: "/data/payment/currency".into()
            }
        );
    }

    #[test]
    fn times_as_rfc3339_or_unix_seconds() {
        let mapping = acme();
        let context = standard(&mapping, Some("msg_1"));
        let time = |value: Value| {
            let mut body = fixture("normalize/standard-acme-payment.json");
            set(&mut body, "/timestamp", value);
            run_json(&context, &body).map(|ev| ev.occur_time)
        };
        let at = Some(Timestamp {
            seconds: 1_717_245_005,
            nanos: 0,
        });
        assert_eq!(time(json!(1_717_245_005)), Ok(at));
        assert_eq!(time(json!("1717245005")), Ok(at));
        assert_eq!(time(json!("2024-06-01T14:30:05+02:00")), Ok(at));
        assert_eq!(
            time(json!("last tuesday")).unwrap_err().code(),
            "invalid_value"
        );
        assert_eq!(time(json!(1.5)).unwrap_err().code(), "wrong_type");
        assert_eq!(
            time(json!(999_999_999_999_i64)).unwrap_err().code(),
            "invalid_value"
        );
        let err = time(json!("99999999999999999999999")).unwrap_err();
        assert_eq!(err.code(), "invalid_value");
        assert!(err.to_string().contains("/timestamp"), "{err}");
        assert_eq!(
            time(Value::Null).unwrap_err(),
            NormalizeError::MissingField {
                path: "/timestamp".into()
            }
        );
    }

    #[test]
    fn unknown_fields_in_configuration_are_refused() {
        let typo = serde_json::from_value::<Mapping>(json!({
            "event_type": "/type",
            "sucseeded": ["payment.succeeded"]
        }));
        assert!(typo.is_err());
        let minimal: Mapping = serde_json::from_value(json!({"event_type": "/type"})).unwrap();
        assert_eq!(minimal.amount_format, AmountFormat::MinorUnits);
        assert!(minimal.succeeded.is_empty());
    }

    #[test]
    fn validate_catches_configuration_mistakes() {
        let mut bad = acme();
        bad.order_ref = Some("data.payment.reference".into());
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("order_ref")
        );

        let mut bad = acme();
        bad.failed.push("payment.succeeded".into());
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("payment.succeeded")
        );

        let mut bad = acme();
        bad.currency = None;
        assert!(bad.validate().is_err());

        let mut bad = acme();
        bad.event_type = String::new();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn never_panics_on_mutations() {
        never_panics(
            &ctx(Provider::Paddle),
            &transaction("transaction.completed"),
        );
        never_panics(
            &ctx(Provider::Paddle),
            &adjustment("adjustment.updated", "refund", "approved"),
        );
        let mapping = acme();
        never_panics(
            &standard(&mapping, Some("msg_1")),
            &fixture("normalize/standard-acme-payment.json"),
        );
    }
}
