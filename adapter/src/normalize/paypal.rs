//! PayPal webhook events (Orders v2 and Payments v2 resources).
//!
//! The envelope: `id` (`WH-…`, the dedupe key), `event_type`,
//! `create_time` (RFC 3339) and `resource`, the object the event is about.
//!
//! | event_type | resource | kind | payment_ref | refund_ref |
//! |---|---|---|---|---|
//! | `CHECKOUT.ORDER.APPROVED` | order | PAYMENT_PROCESSING (approved, not captured) | order id | |
//! | `PAYMENT.CAPTURE.COMPLETED` | capture | PAYMENT_SUCCEEDED | capture id | |
//! | `PAYMENT.CAPTURE.DENIED` | capture | PAYMENT_FAILED | capture id | |
//! | `PAYMENT.CAPTURE.PENDING` | capture | PAYMENT_PROCESSING | capture id | |
//! | `PAYMENT.CAPTURE.REFUNDED` | refund | REFUNDED (status `COMPLETED` or absent, else OTHER) | capture id from the `up` link | refund id |
//!
//! Amounts are `{"value": "10.99", "currency_code": "USD"}`, decimal strings
//! in major units, converted exactly with the currency's ISO 4217 exponent
//! ([`super::amount::decimal_to_minor`]); a value with more decimals than the
//! currency has is an error rather than rounded. A refund's amount is that
//! refund's, not the running total (`seller_payable_breakdown.
//! total_refunded_amount` is ignored), so partial refunds add up per refund
//! id on the fulfilment side.
//!
//! A capture without `amount` is read by its `seller_receivable_breakdown.
//! gross_amount`, a refund without one by its `seller_payable_breakdown.
//! gross_amount`: PayPal documents each as the same figure (the captured,
//! the refunded amount), and the breakdowns are what some integrations
//! look at. Only when both are absent is the event refused at `amount`.
//!
//! `order_ref` is the merchant's `custom_id`, else `invoice_id`; for orders,
//! those of the first purchase unit, else its `reference_id` — except
//! `"default"`, which PayPal fills in when the merchant set none.

use fulfil_proto::v1::PaymentEvent;

use super::amount::decimal_to_minor;
use super::json::{At, from_rfc3339};
use super::{Kind, NormalizeError, event};

/// The `reference_id` PayPal gives a purchase unit the merchant did not name.
const DEFAULT_REFERENCE_ID: &str = "default";

pub(super) fn normalize(root: &At<'_>) -> Result<PaymentEvent, NormalizeError> {
    let event_id = root.get("id").req_str()?;
    let event_type = root.get("event_type").req_str()?;
    let create_time = root.get("create_time");
    let occur_time = from_rfc3339(create_time.req_str()?, create_time.path())?;
    let resource = root.get("resource");
    let base = |kind| event(kind, event_id, event_type, occur_time);
    let capture_event = |kind| -> Result<PaymentEvent, NormalizeError> {
        let mut ev = base(kind);
        capture(&mut ev, &resource)?;
        Ok(ev)
    };

    match event_type {
        "CHECKOUT.ORDER.APPROVED" => {
            let mut ev = base(Kind::PaymentProcessing);
            order(&mut ev, &resource)?;
            Ok(ev)
        }
        "PAYMENT.CAPTURE.COMPLETED" => capture_event(Kind::PaymentSucceeded),
        "PAYMENT.CAPTURE.DENIED" => capture_event(Kind::PaymentFailed),
        "PAYMENT.CAPTURE.PENDING" => capture_event(Kind::PaymentProcessing),
        "PAYMENT.CAPTURE.REFUNDED" => {
            resource.object()?;
            match resource.get("status").str()? {
                None | Some("COMPLETED") => {
                    let mut ev = base(Kind::Refunded);
                    refund(&mut ev, &resource)?;
                    Ok(ev)
                }
                // PENDING (e.g. eCheck), FAILED, CANCELLED: no money returned.
                Some(_) => Ok(base(Kind::Other)),
            }
        }
        _ => Ok(base(Kind::Other)),
    }
}

fn order(ev: &mut PaymentEvent, order: &At<'_>) -> Result<(), NormalizeError> {
    order.object()?;
    ev.payment_ref = order.get("id").req_str()?.to_owned();
    // Fulfil creates one purchase unit per order; a multi-unit order is
    // read by its first unit.
    let unit = order.get("purchase_units").index(0);
    unit.object()?;
    ev.order_ref = match merchant_ref(&unit)? {
        Some(found) => found.to_owned(),
        None => match unit.get("reference_id").str()? {
            Some(DEFAULT_REFERENCE_ID) | None => String::new(),
            Some(reference) => reference.to_owned(),
        },
    };
    money(ev, &unit.get("amount"))
}

fn capture(ev: &mut PaymentEvent, capture: &At<'_>) -> Result<(), NormalizeError> {
    capture.object()?;
    ev.payment_ref = capture.get("id").req_str()?.to_owned();
    ev.order_ref = merchant_ref(capture)?.unwrap_or_default().to_owned();
    money(
        ev,
        &amount_or_gross(capture, "seller_receivable_breakdown")?,
    )
}

fn refund(ev: &mut PaymentEvent, refund: &At<'_>) -> Result<(), NormalizeError> {
    ev.refund_ref = refund.get("id").req_str()?.to_owned();
    ev.payment_ref = refunded_capture(refund)?.unwrap_or_default().to_owned();
    ev.order_ref = merchant_ref(refund)?.unwrap_or_default().to_owned();
    money(ev, &amount_or_gross(refund, "seller_payable_breakdown")?)
}

/// A resource's `amount`, else the `gross_amount` of its `breakdown`, which
/// PayPal documents as the same amount; `amount` (to be reported missing)
/// when neither is there.
fn amount_or_gross<'a>(resource: &At<'a>, breakdown: &str) -> Result<At<'a>, NormalizeError> {
    let amount = resource.get("amount");
    if amount.value()?.is_none() {
        let gross = resource.get(breakdown).get("gross_amount");
        if gross.value()?.is_some() {
            return Ok(gross);
        }
    }
    Ok(amount)
}

/// The merchant's own reference: `custom_id`, else `invoice_id`.
fn merchant_ref<'a>(resource: &At<'a>) -> Result<Option<&'a str>, NormalizeError> {
    match resource.get("custom_id").str()? {
        Some(custom) => Ok(Some(custom)),
        None => resource.get("invoice_id").str(),
    }
}

/// The capture a refund belongs to: the last path segment of its `up` link
/// (`…/v2/payments/captures/{id}`). The refund resource has no capture id
/// field of its own.
fn refunded_capture<'a>(refund: &At<'a>) -> Result<Option<&'a str>, NormalizeError> {
    for link in refund.get("links").items()? {
        if link.get("rel").str()? != Some("up") {
            continue;
        }
        let href = link.get("href");
        let Some(url) = href.str()? else {
            continue;
        };
        let path = url.split(['?', '#']).next().unwrap_or_default();
        return Ok(path.rsplit('/').find(|segment| !segment.is_empty()));
    }
    Ok(None)
}

/// A PayPal money object to minor units and an upper-case currency.
fn money(ev: &mut PaymentEvent, money: &At<'_>) -> Result<(), NormalizeError> {
    money.object()?;
    let currency_at = money.get("currency_code");
    let currency = currency_at
        .currency()?
        .ok_or_else(|| currency_at.missing())?;
    let value_at = money.get("value");
    ev.amount = decimal_to_minor(value_at.req_str()?, &currency)
        .map_err(|err| value_at.invalid(err.to_string()))?;
    ev.currency = currency;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Payloads under `testdata/normalize/paypal-*.json` follow the shapes of
    //! PayPal's webhook event and Payments v2 reference (capture: the
    //! `@hyperse/paypal-node-sdk` sample of a sandbox delivery; refund: the
    //! v2 refund object with its `self` and `up` links).

    use serde_json::{Value, json};

    use super::super::testing::{ctx, fixture, never_panics, remove, run_json, set};
    use super::*;
    use fulfil_proto::Provider;

    fn paypal(body: &Value) -> Result<PaymentEvent, NormalizeError> {
        run_json(&ctx(Provider::Paypal), body)
    }

    fn payload(name: &str) -> Value {
        fixture(&format!("normalize/paypal-{name}.json"))
    }

    #[test]
    fn capture_completed() {
        let ev = paypal(&payload("capture-completed")).unwrap();
        assert_eq!(ev.kind(), Kind::PaymentSucceeded);
        assert_eq!(ev.event_id, "WH-652880104N329422Y-06P85183JY752714D");
        assert_eq!(ev.event_type, "PAYMENT.CAPTURE.COMPLETED");
        assert_eq!(
            ev.occur_time,
            Some(prost_types::Timestamp {
                seconds: 1_715_677_914,
                nanos: 338_000_000
            })
        );
        assert_eq!(ev.payment_ref, "9XF14200T8003681K");
        assert_eq!(ev.order_ref, "ord_019ad0c2e4f87b3b");
        assert_eq!(ev.amount, 2112);
        assert_eq!(ev.currency, "USD");
        assert_eq!(ev.refund_ref, "");
    }

    #[test]
    fn capture_order_ref_falls_back_to_invoice_id() {
        let mut body = payload("capture-completed");
        remove(&mut body, "/resource/custom_id");
        assert_eq!(paypal(&body).unwrap().order_ref, "INV-2024-0042");
        remove(&mut body, "/resource/invoice_id");
        assert_eq!(paypal(&body).unwrap().order_ref, "");
    }

    #[test]
    fn capture_denied() {
        let ev = paypal(&payload("capture-denied")).unwrap();
        assert_eq!(ev.kind(), Kind::PaymentFailed);
        assert_eq!(ev.payment_ref, "7TK53561YB803214S");
        assert_eq!(ev.order_ref, "ord_019ad0c2e4f87b3b");
        assert_eq!((ev.amount, ev.currency.as_str()), (2112, "USD"));
    }

    #[test]
    fn capture_pending() {
        let mut body = payload("capture-completed");
        set(&mut body, "/event_type", json!("PAYMENT.CAPTURE.PENDING"));
        set(&mut body, "/resource/status", json!("PENDING"));
        set(
            &mut body,
            "/resource/status_details",
            json!({"reason": "PENDING_REVIEW"}),
        );
        let ev = paypal(&body).unwrap();
        assert_eq!(ev.kind(), Kind::PaymentProcessing);
        assert_eq!(ev.payment_ref, "9XF14200T8003681K");
    }

    #[test]
    fn capture_refunded() {
        let ev = paypal(&payload("capture-refunded")).unwrap();
        assert_eq!(ev.kind(), Kind::Refunded);
        assert_eq!(ev.refund_ref, "1Y107995YT783435V");
        assert_eq!(
            ev.payment_ref, "9XF14200T8003681K",
            "the capture, from the up link"
        );
        assert_eq!(ev.order_ref, "ord_019ad0c2e4f87b3b");
        assert_eq!((ev.amount, ev.currency.as_str()), (500, "USD"));
        assert!(!ev.amount_is_cumulative);
    }

    #[test]
    fn refund_amount_is_this_refund_not_the_running_total() {
        let mut body = payload("capture-refunded");
        set(&mut body, "/resource/amount/value", json!("3.00"));
        set(
            &mut body,
            "/resource/seller_payable_breakdown/total_refunded_amount/value",
            json!("8.00"),
        );
        assert_eq!(paypal(&body).unwrap().amount, 300);
    }

    #[test]
    fn without_amount_the_gross_amount_of_the_breakdown_stands_in() {
        let mut capture = payload("capture-completed");
        remove(&mut capture, "/resource/amount");
        let ev = paypal(&capture).unwrap();
        assert_eq!((ev.amount, ev.currency.as_str()), (2112, "USD"));

        let mut refund = payload("capture-refunded");
        remove(&mut refund, "/resource/amount");
        let ev = paypal(&refund).unwrap();
        assert_eq!((ev.amount, ev.currency.as_str()), (500, "USD"));
        assert_eq!(ev.kind(), Kind::Refunded);

        // Neither: refused at `amount`, where PayPal puts it.
        for (mut body, breakdown) in [
            (capture, "seller_receivable_breakdown"),
            (refund, "seller_payable_breakdown"),
        ] {
            remove(&mut body, &format!("/resource/{breakdown}"));
            assert_eq!(
                paypal(&body).unwrap_err(),
                NormalizeError::MissingField {
                    path: "$.resource.amount".into()
                }
            );
        }
    }

    #[test]
    fn refund_without_an_up_link_has_no_payment_ref() {
        let mut body = payload("capture-refunded");
        set(
            &mut body,
            "/resource/links",
            json!([{"method": "GET", "rel": "self",
                    "href": "https://api.paypal.com/v2/payments/refunds/1Y107995YT783435V"}]),
        );
        let ev = paypal(&body).unwrap();
        assert_eq!(ev.kind(), Kind::Refunded);
        assert_eq!(ev.payment_ref, "");
        remove(&mut body, "/resource/links");
        assert_eq!(paypal(&body).unwrap().payment_ref, "");
    }

    #[test]
    fn refunds_not_completed_are_other() {
        for status in ["PENDING", "FAILED", "CANCELLED"] {
            let mut body = payload("capture-refunded");
            set(&mut body, "/resource/status", json!(status));
            let ev = paypal(&body).unwrap();
            assert_eq!(ev.kind(), Kind::Other, "{status}");
            assert_eq!(ev.event_id, "WH-1GE84257G0350133W-6RW800890C634293G");
        }
    }

    #[test]
    fn order_approved_is_processing() {
        let ev = paypal(&payload("order-approved")).unwrap();
        assert_eq!(ev.kind(), Kind::PaymentProcessing);
        assert_eq!(ev.payment_ref, "10581139X0233013B");
        assert_eq!(ev.order_ref, "ord_019ad0c2e4f87b3b");
        assert_eq!((ev.amount, ev.currency.as_str()), (2112, "USD"));
    }

    #[test]
    fn order_ref_of_an_order_falls_back_to_a_named_reference_id() {
        let mut body = payload("order-approved");
        remove(&mut body, "/resource/purchase_units/0/custom_id");
        assert_eq!(
            paypal(&body).unwrap().order_ref,
            "",
            "\"default\" is PayPal's, not ours"
        );
        set(
            &mut body,
            "/resource/purchase_units/0/reference_id",
            json!("ord_77"),
        );
        assert_eq!(paypal(&body).unwrap().order_ref, "ord_77");
        set(
            &mut body,
            "/resource/purchase_units/0/invoice_id",
            json!("INV-9"),
        );
        assert_eq!(paypal(&body).unwrap().order_ref, "INV-9");
    }

    fn with_amount(value: &str, currency: &str) -> Result<PaymentEvent, NormalizeError> {
        let mut body = payload("capture-completed");
        set(
            &mut body,
            "/resource/amount",
            json!({"value": value, "currency_code": currency}),
        );
        paypal(&body)
    }

    #[test]
    fn decimal_amounts_use_the_currency_exponent() {
        let amount = |v, c| with_amount(v, c).map(|ev| (ev.amount, ev.currency));
        assert_eq!(amount("1000", "JPY").unwrap(), (1000, "JPY".into()));
        assert_eq!(amount("1.234", "KWD").unwrap(), (1234, "KWD".into()));
        assert_eq!(amount("10.99", "EUR").unwrap(), (1099, "EUR".into()));
        assert_eq!(amount("0.01", "usd").unwrap(), (1, "USD".into()));
    }

    #[test]
    fn amounts_that_cannot_be_exact_are_invalid() {
        for (value, currency) in [
            ("10.999", "USD"),
            ("1000.5", "JPY"),
            ("-10.00", "USD"),
            ("99999999999999999999.99", "USD"),
            ("10,00", "EUR"),
            ("", "USD"),
        ] {
            let err = with_amount(value, currency).unwrap_err();
            let expected = if value.is_empty() {
                "missing_field"
            } else {
                "invalid_value"
            };
            assert_eq!(err.code(), expected, "{value} {currency}");
            assert!(err.to_string().contains("$.resource.amount.value"), "{err}");
        }
        let err = with_amount("10.00", "DOLLAR").unwrap_err();
        assert_eq!(err.code(), "invalid_value");
        assert!(
            err.to_string().contains("$.resource.amount.currency_code"),
            "{err}"
        );
    }

    #[test]
    fn an_amount_as_a_number_is_the_wrong_type() {
        let mut body = payload("capture-completed");
        set(&mut body, "/resource/amount/value", json!(21.12));
        assert_eq!(
            paypal(&body).unwrap_err(),
            NormalizeError::WrongType {
                path: "$.resource.amount.value".into(),
                expected: "string"
            }
        );
    }

    #[test]
    fn unknown_event_types_are_other() {
        let mut body = payload("capture-completed");
        set(&mut body, "/event_type", json!("CUSTOMER.DISPUTE.CREATED"));
        set(&mut body, "/resource", json!({"dispute_id": "PP-D-27803"}));
        let ev = paypal(&body).unwrap();
        assert_eq!(ev.kind(), Kind::Other);
        assert_eq!(ev.event_type, "CUSTOMER.DISPUTE.CREATED");
        assert_eq!(ev.event_id, "WH-652880104N329422Y-06P85183JY752714D");
    }

    #[test]
    fn envelope_fields_are_required_and_typed() {
        let body = payload("capture-completed");
        for field in ["id", "event_type", "create_time"] {
            let mut broken = body.clone();
            remove(&mut broken, &format!("/{field}"));
            assert_eq!(
                paypal(&broken).unwrap_err(),
                NormalizeError::MissingField {
                    path: format!("$.{field}")
                }
            );
        }
        let mut broken = body.clone();
        set(&mut broken, "/create_time", json!("14 May 2024"));
        assert_eq!(paypal(&broken).unwrap_err().code(), "invalid_value");
        let mut broken = body;
        set(&mut broken, "/resource", json!([]));
        assert_eq!(
            paypal(&broken).unwrap_err(),
            NormalizeError::WrongType {
                path: "$.resource".into(),
                expected: "object"
            }
        );
    }

    #[test]
    fn never_panics_on_mutations() {
        let context = ctx(Provider::Paypal);
        for name in [
            "capture-completed",
            "capture-denied",
            "capture-refunded",
            "order-approved",
        ] {
            never_panics(&context, &payload(name));
        }
    }
}
