//! Stripe events.
//!
//! The envelope is an `event` object: `id` (`evt_…`, the dedupe key),
//! `type`, `created` (unix seconds) and `data.object`, the object the event
//! is about.
//!
//! | type | kind | payment_ref | refund_ref | amount |
//! |---|---|---|---|---|
//! | `payment_intent.succeeded` | PAYMENT_SUCCEEDED | pi | | `amount_received` (see below) |
//! | `payment_intent.payment_failed` / `.canceled` / `.processing` | FAILED / CANCELLED / PROCESSING | pi | | `amount` |
//! | `checkout.session.completed` | SUCCEEDED if `payment_status` is `paid` or `no_payment_required`, else PROCESSING | pi, else cs | | `amount_total` |
//! | `checkout.session.async_payment_succeeded` / `_failed` | SUCCEEDED / FAILED | pi, else cs | | `amount_total` |
//! | `charge.refunded` | REFUNDED, cumulative | pi, else ch | `ch_…#cumulative` | `amount_refunded` |
//! | `refund.created` / `refund.updated` / `charge.refund.updated` | REFUNDED when `status` is `succeeded`, else OTHER | pi, else ch | re | `amount` |
//! | `charge.dispute.created` / `.closed` | DISPUTE_OPENED / DISPUTE_CLOSED | pi, else ch | dp | `amount` |
//!
//! `order_ref` is `metadata[<order_ref_key>]` of the object, else the
//! session's `client_reference_id`, else empty: the fulfilment side then
//! finds the order from a payment it recorded earlier under `payment_ref`.
//! That is why refunds and disputes use the payment intent id when there is
//! one — it is what `payment_intent.succeeded` recorded.
//!
//! `amount_received` is absent from payment intents of older API versions
//! (2017-08-15, still live on accounts pinned to it). There the amount is,
//! as Stripe's docs describe the received amount: the sum of the captured
//! amounts of the intent's succeeded charges (`charges.data[]`, each its
//! `amount_captured`, else its `amount`), else the intent's `amount` once
//! its `status` is `succeeded`. Only when none of these is there is the
//! event refused (`missing_field` at `amount_received`).
//!
//! The other fields read here are in every API version's payloads (newer
//! fields such as `payment_intent` on charges, refunds and disputes are
//! added to old versions too, and fall back to the charge when null);
//! `amount_total` of a session is null only before it has a price.
//!
//! `charge.refunded` reports `amount_refunded`, the running total over all
//! refunds of the charge, not the amount of the refund that triggered it.
//! It is sent as a monotone fact (`amount_is_cumulative`, refund_ref
//! `ch_…#cumulative`): the fulfilment side keeps the largest total seen per
//! payment, so a late or duplicate delivery never lowers it, and does not
//! add it to the individual `refund.*` amounts it may also receive.

use fulfil_proto::v1::PaymentEvent;

use super::json::{At, from_unix_seconds};
use super::{Kind, NormalizeError, event, set_money};

/// Marks the refund_ref of a cumulative total (`charge.refunded`).
const CUMULATIVE_SUFFIX: &str = "#cumulative";

pub(super) fn normalize(
    root: &At<'_>,
    order_ref_key: &str,
) -> Result<PaymentEvent, NormalizeError> {
    let event_id = root.get("id").req_str()?;
    let event_type = root.get("type").req_str()?;
    let created = root.get("created");
    let occur_time = from_unix_seconds(created.req_i64()?, created.path())?;
    let object = root.get("data").get("object");
    let base = |kind| event(kind, event_id, event_type, occur_time);
    let pi_event = |kind, amount| -> Result<PaymentEvent, NormalizeError> {
        let mut ev = base(kind);
        payment_intent(&mut ev, &object, amount, order_ref_key)?;
        Ok(ev)
    };
    let session_event = |kind| -> Result<PaymentEvent, NormalizeError> {
        let mut ev = base(kind);
        checkout_session(&mut ev, &object, order_ref_key)?;
        Ok(ev)
    };

    match event_type {
        "payment_intent.succeeded" => pi_event(Kind::PaymentSucceeded, PiAmount::Received),
        "payment_intent.payment_failed" => pi_event(Kind::PaymentFailed, PiAmount::Requested),
        "payment_intent.canceled" => pi_event(Kind::PaymentCancelled, PiAmount::Requested),
        "payment_intent.processing" => pi_event(Kind::PaymentProcessing, PiAmount::Requested),
        "checkout.session.completed" => {
            object.object()?;
            if object.get("mode").str()? == Some("setup") {
                // A setup-mode session saves a payment method; nothing is paid.
                return Ok(base(Kind::Other));
            }
            let kind = match object.get("payment_status").str()? {
                Some("paid" | "no_payment_required") => Kind::PaymentSucceeded,
                // "unpaid": an async method (bank debit, voucher) is still
                // settling; `async_payment_succeeded` or `_failed` follows.
                _ => Kind::PaymentProcessing,
            };
            session_event(kind)
        }
        "checkout.session.async_payment_succeeded" => session_event(Kind::PaymentSucceeded),
        "checkout.session.async_payment_failed" => session_event(Kind::PaymentFailed),
        "charge.refunded" => {
            let mut ev = base(Kind::Refunded);
            charge_refunded(&mut ev, &object, order_ref_key)?;
            Ok(ev)
        }
        "refund.created" | "refund.updated" | "charge.refund.updated" => {
            object.object()?;
            if object.get("status").str()? != Some("succeeded") {
                // Pending, requires_action, failed or canceled: no money has
                // moved (yet); a later `refund.updated` reports success.
                return Ok(base(Kind::Other));
            }
            let mut ev = base(Kind::Refunded);
            refund(&mut ev, &object, order_ref_key)?;
            Ok(ev)
        }
        "charge.dispute.created" => {
            let mut ev = base(Kind::DisputeOpened);
            dispute(&mut ev, &object, order_ref_key)?;
            Ok(ev)
        }
        "charge.dispute.closed" => {
            let mut ev = base(Kind::DisputeClosed);
            dispute(&mut ev, &object, order_ref_key)?;
            Ok(ev)
        }
        _ => Ok(base(Kind::Other)),
    }
}

/// Which amount of a payment intent an event reports.
#[derive(Clone, Copy)]
enum PiAmount {
    /// `amount`: what was asked for (failed, cancelled, processing).
    Requested,
    /// What was received ([`amount_received`]).
    Received,
}

fn payment_intent(
    ev: &mut PaymentEvent,
    pi: &At<'_>,
    amount: PiAmount,
    order_ref_key: &str,
) -> Result<(), NormalizeError> {
    pi.object()?;
    ev.payment_ref = pi.get("id").req_str()?.to_owned();
    ev.order_ref = order_ref(pi, order_ref_key)?;
    match amount {
        PiAmount::Requested => money(ev, pi, "amount", true),
        PiAmount::Received => {
            let received = amount_received(pi)?;
            let currency_at = pi.get("currency");
            set_money(ev, received, currency_at.currency()?, || {
                currency_at.missing()
            })
        }
    }
}

/// What a succeeded payment intent received: `amount_received`, else (older
/// API versions) the captured amounts of its succeeded charges, else its
/// `amount` when its status is `succeeded`.
fn amount_received(pi: &At<'_>) -> Result<i64, NormalizeError> {
    let received = pi.get("amount_received");
    if let Some(amount) = received.non_negative()? {
        return Ok(amount);
    }
    if let Some(captured) = succeeded_charges(&pi.get("charges"))? {
        return Ok(captured);
    }
    if pi.get("status").str()? == Some("succeeded")
        && let Some(amount) = pi.get("amount").non_negative()?
    {
        return Ok(amount);
    }
    Err(received.missing())
}

/// The sum of the captured amounts of the succeeded charges in a list
/// (`amount_captured`, which older versions lack, else `amount`); None when
/// the list has none, or is a page of a longer list (`has_more`), which
/// would undercount.
fn succeeded_charges(list: &At<'_>) -> Result<Option<i64>, NormalizeError> {
    if list.value()?.is_none() || list.get("has_more").bool()? == Some(true) {
        return Ok(None);
    }
    let mut total: Option<i64> = None;
    for charge in list.get("data").items()? {
        // Authorised but not captured: nothing received yet.
        if charge.get("status").str()? != Some("succeeded")
            || charge.get("captured").bool()? == Some(false)
        {
            continue;
        }
        let amount_at = charge.get("amount");
        let captured = match charge.get("amount_captured").non_negative()? {
            Some(captured) => captured,
            None => amount_at
                .non_negative()?
                .ok_or_else(|| amount_at.missing())?,
        };
        total = Some(
            total
                .unwrap_or(0)
                .checked_add(captured)
                .ok_or_else(|| amount_at.invalid("the charges add up to too much"))?,
        );
    }
    Ok(total)
}

fn checkout_session(
    ev: &mut PaymentEvent,
    session: &At<'_>,
    order_ref_key: &str,
) -> Result<(), NormalizeError> {
    session.object()?;
    let id = session.get("id").req_str()?;
    // The payment intent is what `payment_intent.*` events report, so using
    // it lets the fulfilment side count the payment once; subscription and
    // free sessions have none.
    ev.payment_ref = session.get("payment_intent").id()?.unwrap_or(id).to_owned();
    ev.order_ref = match order_ref(session, order_ref_key)? {
        found if !found.is_empty() => found,
        _ => session
            .get("client_reference_id")
            .str()?
            .unwrap_or_default()
            .to_owned(),
    };
    // `amount_total` is null on sessions that never had a price yet.
    money(ev, session, "amount_total", false)
}

fn charge_refunded(
    ev: &mut PaymentEvent,
    charge: &At<'_>,
    order_ref_key: &str,
) -> Result<(), NormalizeError> {
    charge.object()?;
    let id = charge.get("id").req_str()?;
    ev.payment_ref = payment_or(charge, id)?;
    ev.refund_ref = format!("{id}{CUMULATIVE_SUFFIX}");
    ev.amount_is_cumulative = true;
    ev.order_ref = order_ref(charge, order_ref_key)?;
    money(ev, charge, "amount_refunded", true)
}

fn refund(
    ev: &mut PaymentEvent,
    refund: &At<'_>,
    order_ref_key: &str,
) -> Result<(), NormalizeError> {
    ev.refund_ref = refund.get("id").req_str()?.to_owned();
    let charge = refund.get("charge").id()?.unwrap_or_default();
    ev.payment_ref = payment_or(refund, charge)?;
    ev.order_ref = order_ref(refund, order_ref_key)?;
    money(ev, refund, "amount", true)
}

fn dispute(
    ev: &mut PaymentEvent,
    dispute: &At<'_>,
    order_ref_key: &str,
) -> Result<(), NormalizeError> {
    dispute.object()?;
    ev.refund_ref = dispute.get("id").req_str()?.to_owned();
    let charge = dispute.get("charge").id()?.unwrap_or_default();
    ev.payment_ref = payment_or(dispute, charge)?;
    ev.order_ref = order_ref(dispute, order_ref_key)?;
    money(ev, dispute, "amount", true)
}

/// The object's payment intent id, else `fallback` (a charge id).
fn payment_or(object: &At<'_>, fallback: &str) -> Result<String, NormalizeError> {
    Ok(object
        .get("payment_intent")
        .id()?
        .unwrap_or(fallback)
        .to_owned())
}

fn order_ref(object: &At<'_>, key: &str) -> Result<String, NormalizeError> {
    Ok(object
        .get("metadata")
        .get(key)
        .str()?
        .unwrap_or_default()
        .to_owned())
}

fn money(
    ev: &mut PaymentEvent,
    object: &At<'_>,
    amount_key: &str,
    required: bool,
) -> Result<(), NormalizeError> {
    let amount_at = object.get(amount_key);
    let amount = match amount_at.non_negative()? {
        Some(amount) => amount,
        None if required => return Err(amount_at.missing()),
        None => 0,
    };
    let currency_at = object.get("currency");
    set_money(ev, amount, currency_at.currency()?, || {
        currency_at.missing()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::Context;
    use super::super::testing::{ctx, fixture, never_panics, remove, run_json, set, ts};
    use super::*;
    use fulfil_proto::Provider;

    const PI: &str = "pi_1PgafyB7WZ01zgkWSjxsAJo3";
    const CH: &str = "ch_1PgafuB7WZ01zgkWXYmPNZs8";
    const CS: &str = "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY";

    /// A Stripe event of `type_` around `object`, from the realistic fixtures.
    fn stripe_event(type_: &str, object: Value) -> Value {
        let mut ev = fixture("stripe/event.json");
        set(&mut ev, "/type", json!(type_));
        set(&mut ev, "/created", json!(1_721_948_600));
        set(&mut ev, "/data/object", object);
        ev
    }

    fn object(name: &str) -> Value {
        fixture(&format!("stripe/{name}.json"))
    }

    fn stripe(body: &Value) -> PaymentEvent {
        run_json(&ctx(Provider::Stripe), body).unwrap()
    }

    fn succeeded_payment_intent() -> Value {
        let mut pi = object("payment_intent");
        set(&mut pi, "/status", json!("succeeded"));
        set(&mut pi, "/amount_received", json!(1099));
        set(&mut pi, "/metadata", json!({"order_id": "ord_42"}));
        pi
    }

    #[test]
    fn payment_intent_succeeded() {
        let ev = stripe(&stripe_event(
            "payment_intent.succeeded",
            succeeded_payment_intent(),
        ));
        assert_eq!(ev.kind(), Kind::PaymentSucceeded);
        assert_eq!(ev.event_id, "evt_1Pgc76B7WZ01zgkWwyRHS12y");
        assert_eq!(ev.event_type, "payment_intent.succeeded");
        assert_eq!(ev.occur_time, Some(ts(1_721_948_600)));
        assert_eq!(ev.payment_ref, PI);
        assert_eq!(ev.order_ref, "ord_42");
        assert_eq!(ev.amount, 1099);
        assert_eq!(ev.currency, "USD");
        assert_eq!(ev.refund_ref, "");
        assert!(!ev.amount_is_cumulative);
    }

    #[test]
    fn payment_intent_succeeded_reports_the_amount_received_not_requested() {
        let mut pi = succeeded_payment_intent();
        set(&mut pi, "/amount", json!(2000));
        set(&mut pi, "/amount_received", json!(1500));
        let ev = stripe(&stripe_event("payment_intent.succeeded", pi));
        assert_eq!(ev.amount, 1500);
    }

    /// A succeeded payment intent as API version 2017-08-15 sends it: no
    /// `amount_received` (nor the later `latest_charge`), its charges
    /// listed under `charges`, which carry no `amount_captured`.
    fn old_version_payment_intent(charges: &[(&str, bool, i64)]) -> Value {
        let mut pi = succeeded_payment_intent();
        remove(&mut pi, "/amount_received");
        remove(&mut pi, "/latest_charge");
        let data: Vec<Value> = charges
            .iter()
            .enumerate()
            .map(|(i, (status, captured, amount))| {
                let mut ch = object("charge");
                set(&mut ch, "/id", json!(format!("ch_old_{i}")));
                set(&mut ch, "/status", json!(status));
                set(&mut ch, "/captured", json!(captured));
                set(&mut ch, "/amount", json!(amount));
                set(&mut ch, "/payment_intent", json!(PI));
                remove(&mut ch, "/amount_captured");
                ch
            })
            .collect();
        set(
            &mut pi,
            "/charges",
            json!({
                "object": "list",
                "data": data,
                "has_more": false,
                "total_count": charges.len(),
                "url": format!("/v1/charges?payment_intent={PI}"),
            }),
        );
        pi
    }

    #[test]
    fn old_api_versions_without_amount_received_use_the_succeeded_charges() {
        let pi = old_version_payment_intent(&[("failed", false, 1099), ("succeeded", true, 1099)]);
        let ev = stripe(&stripe_event("payment_intent.succeeded", pi));
        assert_eq!(ev.kind(), Kind::PaymentSucceeded);
        assert_eq!((ev.amount, ev.currency.as_str()), (1099, "USD"));
        assert_eq!(ev.payment_ref, PI);
        assert_eq!(ev.order_ref, "ord_42");

        // Not the requested amount: what the charges brought in.
        let mut pi =
            old_version_payment_intent(&[("succeeded", true, 600), ("succeeded", true, 400)]);
        set(&mut pi, "/amount", json!(1500));
        assert_eq!(
            stripe(&stripe_event("payment_intent.succeeded", pi)).amount,
            1000
        );

        // Authorised only: not received.
        let pi = old_version_payment_intent(&[("succeeded", false, 700), ("succeeded", true, 300)]);
        assert_eq!(
            stripe(&stripe_event("payment_intent.succeeded", pi)).amount,
            300
        );
    }

    #[test]
    fn a_charge_with_amount_captured_counts_what_was_captured() {
        let mut pi = old_version_payment_intent(&[("succeeded", true, 1099)]);
        set(&mut pi, "/charges/data/0/amount_captured", json!(800));
        assert_eq!(
            stripe(&stripe_event("payment_intent.succeeded", pi)).amount,
            800
        );
    }

    #[test]
    fn without_amount_received_or_charges_a_succeeded_intent_received_its_amount() {
        // No usable charges: none listed, none succeeded, or only a page.
        let empty = old_version_payment_intent(&[]);
        let failed = old_version_payment_intent(&[("failed", false, 1099)]);
        let mut paged = old_version_payment_intent(&[("succeeded", true, 5)]);
        set(&mut paged, "/charges/has_more", json!(true));
        let mut no_list = old_version_payment_intent(&[]);
        remove(&mut no_list, "/charges");
        for pi in [empty, failed, paged, no_list] {
            let ev = stripe(&stripe_event("payment_intent.succeeded", pi));
            assert_eq!((ev.amount, ev.currency.as_str()), (1099, "USD"));
        }
    }

    #[test]
    fn without_any_received_amount_the_event_is_refused_at_amount_received() {
        let mut pi = old_version_payment_intent(&[]);
        set(&mut pi, "/status", json!("processing"));
        assert_eq!(
            error(&stripe_event("payment_intent.succeeded", pi.clone())),
            NormalizeError::MissingField {
                path: "$.data.object.amount_received".into()
            }
        );
        set(&mut pi, "/status", json!("succeeded"));
        remove(&mut pi, "/amount");
        assert_eq!(
            error(&stripe_event("payment_intent.succeeded", pi)).code(),
            "missing_field"
        );
        // A charge without its amount is not guessed at.
        let mut pi = old_version_payment_intent(&[("succeeded", true, 1)]);
        remove(&mut pi, "/charges/data/0/amount");
        assert_eq!(
            error(&stripe_event("payment_intent.succeeded", pi)),
            NormalizeError::MissingField {
                path: "$.data.object.charges.data[0].amount".into()
            }
        );
    }

    #[test]
    fn payment_intent_failed_canceled_processing() {
        for (type_, status, kind) in [
            (
                "payment_intent.payment_failed",
                "requires_payment_method",
                Kind::PaymentFailed,
            ),
            (
                "payment_intent.canceled",
                "canceled",
                Kind::PaymentCancelled,
            ),
            (
                "payment_intent.processing",
                "processing",
                Kind::PaymentProcessing,
            ),
        ] {
            let mut pi = object("payment_intent");
            set(&mut pi, "/status", json!(status));
            set(&mut pi, "/metadata", json!({"order_id": "ord_42"}));
            let ev = stripe(&stripe_event(type_, pi));
            assert_eq!(ev.kind(), kind, "{type_}");
            assert_eq!(ev.payment_ref, PI);
            assert_eq!(ev.order_ref, "ord_42");
            assert_eq!(ev.amount, 1099, "the requested amount");
            assert_eq!(ev.currency, "USD");
        }
    }

    #[test]
    fn order_ref_is_empty_without_metadata() {
        let mut pi = succeeded_payment_intent();
        set(&mut pi, "/metadata", json!({}));
        assert_eq!(
            stripe(&stripe_event("payment_intent.succeeded", pi.clone())).order_ref,
            ""
        );
        set(&mut pi, "/metadata", Value::Null);
        assert_eq!(
            stripe(&stripe_event("payment_intent.succeeded", pi.clone())).order_ref,
            ""
        );
        remove(&mut pi, "/metadata");
        assert_eq!(
            stripe(&stripe_event("payment_intent.succeeded", pi)).order_ref,
            ""
        );
    }

    #[test]
    fn a_custom_order_ref_key() {
        let mut pi = succeeded_payment_intent();
        set(
            &mut pi,
            "/metadata",
            json!({"order_id": "not-this", "fulfil_order": "ord_7"}),
        );
        let body = stripe_event("payment_intent.succeeded", pi);
        let context = Context {
            order_ref_key: "fulfil_order",
            ..ctx(Provider::Stripe)
        };
        assert_eq!(run_json(&context, &body).unwrap().order_ref, "ord_7");
        // An empty key means the default.
        let context = Context {
            order_ref_key: "",
            ..ctx(Provider::Stripe)
        };
        assert_eq!(run_json(&context, &body).unwrap().order_ref, "not-this");
    }

    fn session(payment_status: &str) -> Value {
        let mut cs = object("checkout.session");
        set(&mut cs, "/status", json!("complete"));
        set(&mut cs, "/payment_status", json!(payment_status));
        set(&mut cs, "/amount_total", json!(3000));
        set(&mut cs, "/amount_subtotal", json!(3000));
        set(&mut cs, "/currency", json!("eur"));
        cs
    }

    #[test]
    fn checkout_session_completed_paid_and_free_succeed() {
        for status in ["paid", "no_payment_required"] {
            let mut cs = session(status);
            set(&mut cs, "/metadata", json!({"order_id": "ord_9"}));
            let ev = stripe(&stripe_event("checkout.session.completed", cs));
            assert_eq!(ev.kind(), Kind::PaymentSucceeded, "{status}");
            assert_eq!(ev.payment_ref, PI);
            assert_eq!(ev.order_ref, "ord_9");
            assert_eq!(ev.amount, 3000);
            assert_eq!(ev.currency, "EUR");
        }
    }

    #[test]
    fn checkout_session_completed_unpaid_is_processing() {
        let ev = stripe(&stripe_event(
            "checkout.session.completed",
            session("unpaid"),
        ));
        assert_eq!(ev.kind(), Kind::PaymentProcessing);
    }

    #[test]
    fn checkout_session_async_payment_outcomes() {
        for (type_, kind) in [
            (
                "checkout.session.async_payment_succeeded",
                Kind::PaymentSucceeded,
            ),
            ("checkout.session.async_payment_failed", Kind::PaymentFailed),
        ] {
            let status = if kind == Kind::PaymentSucceeded {
                "paid"
            } else {
                "unpaid"
            };
            let ev = stripe(&stripe_event(type_, session(status)));
            assert_eq!(ev.kind(), kind, "{type_}");
            assert_eq!(ev.amount, 3000);
            assert_eq!(ev.payment_ref, PI);
        }
    }

    #[test]
    fn checkout_session_order_ref_metadata_then_client_reference_id() {
        let mut cs = session("paid");
        set(
            &mut cs,
            "/client_reference_id",
            json!("ord_from_client_ref"),
        );
        let ev = stripe(&stripe_event("checkout.session.completed", cs.clone()));
        assert_eq!(ev.order_ref, "ord_from_client_ref");

        set(
            &mut cs,
            "/metadata",
            json!({"order_id": "ord_from_metadata"}),
        );
        let ev = stripe(&stripe_event("checkout.session.completed", cs.clone()));
        assert_eq!(ev.order_ref, "ord_from_metadata");

        set(&mut cs, "/metadata", json!({}));
        set(&mut cs, "/client_reference_id", Value::Null);
        let ev = stripe(&stripe_event("checkout.session.completed", cs));
        assert_eq!(ev.order_ref, "");
    }

    #[test]
    fn checkout_session_without_payment_intent_uses_the_session_id() {
        let mut cs = session("paid");
        set(&mut cs, "/payment_intent", Value::Null);
        set(&mut cs, "/mode", json!("subscription"));
        let ev = stripe(&stripe_event("checkout.session.completed", cs));
        assert_eq!(ev.payment_ref, CS);
    }

    #[test]
    fn checkout_session_with_an_expanded_payment_intent() {
        let mut cs = session("paid");
        set(&mut cs, "/payment_intent", succeeded_payment_intent());
        let ev = stripe(&stripe_event("checkout.session.completed", cs));
        assert_eq!(ev.payment_ref, PI);
    }

    #[test]
    fn checkout_session_without_a_price_yet_has_no_amount() {
        // The raw fixture: amount_total and currency are null.
        let ev = stripe(&stripe_event(
            "checkout.session.completed",
            object("checkout.session"),
        ));
        assert_eq!(ev.kind(), Kind::PaymentProcessing);
        assert_eq!((ev.amount, ev.currency.as_str()), (0, ""));
    }

    #[test]
    fn setup_mode_sessions_are_other() {
        let mut cs = session("no_payment_required");
        set(&mut cs, "/mode", json!("setup"));
        let ev = stripe(&stripe_event("checkout.session.completed", cs));
        assert_eq!(ev.kind(), Kind::Other);
    }

    /// A charge refunded `refunds` (amounts) in order, newest first in
    /// `refunds.data` as Stripe lists them.
    fn refunded_charge(amount: i64, refunds: &[i64]) -> Value {
        let mut ch = object("charge");
        let refund = object("refund");
        let data: Vec<Value> = refunds
            .iter()
            .enumerate()
            .rev()
            .map(|(i, amount)| {
                let mut r = refund.clone();
                set(&mut r, "/id", json!(format!("re_{i}")));
                set(&mut r, "/amount", json!(amount));
                r
            })
            .collect();
        let total: i64 = refunds.iter().sum();
        set(&mut ch, "/amount", json!(amount));
        set(&mut ch, "/amount_captured", json!(amount));
        set(&mut ch, "/captured", json!(true));
        set(&mut ch, "/amount_refunded", json!(total));
        set(&mut ch, "/refunded", json!(total == amount));
        set(&mut ch, "/payment_intent", json!(PI));
        set(&mut ch, "/metadata", json!({"order_id": "ord_42"}));
        set(&mut ch, "/refunds/data", Value::Array(data));
        ch
    }

    #[test]
    fn charge_refunded_full_reports_the_cumulative_total() {
        let ev = stripe(&stripe_event(
            "charge.refunded",
            refunded_charge(1000, &[1000]),
        ));
        assert_eq!(ev.kind(), Kind::Refunded);
        assert_eq!(ev.amount, 1000);
        assert!(ev.amount_is_cumulative);
        assert_eq!(ev.refund_ref, format!("{CH}#cumulative"));
        assert_eq!(ev.payment_ref, PI);
        assert_eq!(ev.order_ref, "ord_42");
        assert_eq!(ev.currency, "USD");
    }

    #[test]
    fn charge_refunded_partial_twice_reports_running_totals() {
        let first = stripe(&stripe_event(
            "charge.refunded",
            refunded_charge(1000, &[300]),
        ));
        let second = stripe(&stripe_event(
            "charge.refunded",
            refunded_charge(1000, &[300, 200]),
        ));
        assert_eq!((first.amount, second.amount), (300, 500));
        assert_eq!(
            first.refund_ref, second.refund_ref,
            "one reference per charge"
        );
        assert!(first.amount_is_cumulative && second.amount_is_cumulative);
    }

    #[test]
    fn charge_refunded_without_payment_intent_uses_the_charge() {
        let mut ch = refunded_charge(100, &[100]);
        set(&mut ch, "/payment_intent", Value::Null);
        let ev = stripe(&stripe_event("charge.refunded", ch));
        assert_eq!(ev.payment_ref, CH);
    }

    fn refund_object(status: &str, amount: i64) -> Value {
        let mut re = object("refund");
        set(&mut re, "/status", json!(status));
        set(&mut re, "/amount", json!(amount));
        set(&mut re, "/payment_intent", json!(PI));
        re
    }

    #[test]
    fn refund_events_succeeded_are_refunds_of_their_own_amount() {
        for type_ in ["refund.created", "refund.updated", "charge.refund.updated"] {
            let ev = stripe(&stripe_event(type_, refund_object("succeeded", 250)));
            assert_eq!(ev.kind(), Kind::Refunded, "{type_}");
            assert_eq!(ev.refund_ref, "re_1Pgc72B7WZ01zgkWqPvrRrPE");
            assert_eq!(ev.payment_ref, PI);
            assert_eq!(ev.amount, 250);
            assert_eq!(ev.currency, "USD");
            assert!(!ev.amount_is_cumulative);
        }
    }

    #[test]
    fn refunds_not_yet_succeeded_are_other() {
        for status in ["pending", "requires_action", "failed", "canceled"] {
            let ev = stripe(&stripe_event("refund.updated", refund_object(status, 250)));
            assert_eq!(ev.kind(), Kind::Other, "{status}");
            assert_eq!(ev.event_id, "evt_1Pgc76B7WZ01zgkWwyRHS12y");
            assert_eq!(ev.event_type, "refund.updated");
            assert_eq!(ev.amount, 0);
        }
    }

    #[test]
    fn refund_without_payment_intent_uses_the_charge() {
        // The raw fixture has `payment_intent: null` and a charge id.
        let mut re = object("refund");
        set(&mut re, "/metadata", json!({"order_id": "ord_1"}));
        let ev = stripe(&stripe_event("refund.created", re));
        assert_eq!(ev.payment_ref, CH);
        assert_eq!(ev.amount, 100);
        assert_eq!(ev.order_ref, "ord_1");
    }

    #[test]
    fn disputes_opened_and_closed() {
        for (type_, status, kind) in [
            (
                "charge.dispute.created",
                "needs_response",
                Kind::DisputeOpened,
            ),
            ("charge.dispute.closed", "lost", Kind::DisputeClosed),
        ] {
            let mut dp = object("dispute");
            set(&mut dp, "/status", json!(status));
            let ev = stripe(&stripe_event(type_, dp.clone()));
            assert_eq!(ev.kind(), kind, "{type_}");
            assert_eq!(ev.refund_ref, "dp_1Pgc71B7WZ01zgkWMevJiAUx");
            assert_eq!(ev.payment_ref, CH, "no payment intent in the fixture");
            assert_eq!(ev.amount, 1000);
            assert_eq!(ev.currency, "USD");

            set(&mut dp, "/payment_intent", json!(PI));
            assert_eq!(stripe(&stripe_event(type_, dp)).payment_ref, PI);
        }
    }

    #[test]
    fn unknown_types_are_other_with_id_type_and_time() {
        // The fixture as is: a `plan.created` event.
        let ev = stripe(&fixture("stripe/event.json"));
        assert_eq!(ev.kind(), Kind::Other);
        assert_eq!(ev.event_id, "evt_1Pgc76B7WZ01zgkWwyRHS12y");
        assert_eq!(ev.event_type, "plan.created");
        assert_eq!(ev.occur_time, Some(ts(1_234_567_890)));
        assert_eq!(ev.payment_ref, "");
    }

    #[test]
    fn unknown_types_need_no_particular_object_shape() {
        let body = stripe_event("customer.subscription.updated", json!("not an object"));
        assert_eq!(stripe(&body).kind(), Kind::Other);
    }

    fn error(body: &Value) -> NormalizeError {
        run_json(&ctx(Provider::Stripe), body).unwrap_err()
    }

    #[test]
    fn envelope_fields_are_required() {
        let body = stripe_event("payment_intent.succeeded", succeeded_payment_intent());
        for (pointer, path) in [
            ("/id", "$.id"),
            ("/type", "$.type"),
            ("/created", "$.created"),
        ] {
            let mut broken = body.clone();
            remove(&mut broken, pointer);
            assert_eq!(
                error(&broken),
                NormalizeError::MissingField { path: path.into() }
            );
        }
        let mut broken = body.clone();
        remove(&mut broken, "/data/object");
        assert_eq!(
            error(&broken),
            NormalizeError::MissingField {
                path: "$.data.object".into()
            }
        );
    }

    #[test]
    fn wrong_types_are_reported_at_their_path() {
        let mut pi = succeeded_payment_intent();
        set(&mut pi, "/amount_received", json!("1099"));
        let err = error(&stripe_event("payment_intent.succeeded", pi));
        assert_eq!(
            err,
            NormalizeError::WrongType {
                path: "$.data.object.amount_received".into(),
                expected: "integer"
            }
        );

        let mut body = stripe_event("payment_intent.succeeded", succeeded_payment_intent());
        set(&mut body, "/created", json!("1721948600"));
        assert_eq!(error(&body).code(), "wrong_type");

        let mut pi = succeeded_payment_intent();
        set(&mut pi, "/metadata", json!({"order_id": 42}));
        let err = error(&stripe_event("payment_intent.succeeded", pi));
        assert_eq!(err.code(), "wrong_type");
        assert!(
            err.to_string().contains("$.data.object.metadata.order_id"),
            "{err}"
        );

        let mut pi = succeeded_payment_intent();
        set(&mut pi, "/amount_received", json!(10.5));
        assert_eq!(
            error(&stripe_event("payment_intent.succeeded", pi)).code(),
            "wrong_type"
        );
    }

    #[test]
    fn invalid_values_are_refused() {
        let mut pi = succeeded_payment_intent();
        set(&mut pi, "/amount_received", json!(-5));
        assert_eq!(
            error(&stripe_event("payment_intent.succeeded", pi)).code(),
            "invalid_value"
        );

        let mut pi = succeeded_payment_intent();
        set(&mut pi, "/currency", json!("dollars"));
        assert_eq!(
            error(&stripe_event("payment_intent.succeeded", pi)).code(),
            "invalid_value"
        );

        let mut body = stripe_event("payment_intent.succeeded", succeeded_payment_intent());
        set(&mut body, "/created", json!(i64::MAX));
        assert_eq!(error(&body).code(), "invalid_value");
    }

    #[test]
    fn an_amount_without_a_currency_is_missing_the_currency() {
        let mut pi = succeeded_payment_intent();
        set(&mut pi, "/currency", Value::Null);
        assert_eq!(
            error(&stripe_event("payment_intent.succeeded", pi)),
            NormalizeError::MissingField {
                path: "$.data.object.currency".into()
            }
        );
    }

    #[test]
    fn never_panics_on_mutations_of_any_handled_type() {
        let context = ctx(Provider::Stripe);
        never_panics(
            &context,
            &stripe_event("payment_intent.succeeded", succeeded_payment_intent()),
        );
        never_panics(
            &context,
            &stripe_event(
                "payment_intent.succeeded",
                old_version_payment_intent(&[("succeeded", true, 1099)]),
            ),
        );
        never_panics(
            &context,
            &stripe_event("checkout.session.completed", session("paid")),
        );
        never_panics(
            &context,
            &stripe_event("charge.refunded", refunded_charge(1000, &[300])),
        );
        never_panics(
            &context,
            &stripe_event("refund.updated", refund_object("succeeded", 5)),
        );
        never_panics(
            &context,
            &stripe_event("charge.dispute.created", object("dispute")),
        );
    }
}
