//! RevenueCat webhooks: `{"api_version": "1.0", "event": {…}}`.
//!
//! | `event.type` | kind |
//! |---|---|
//! | `INITIAL_PURCHASE`, `NON_RENEWING_PURCHASE` | PURCHASE |
//! | `RENEWAL` | RENEWAL |
//! | `CANCELLATION` | CANCELLATION |
//! | `UNCANCELLATION` | UNCANCELLATION |
//! | `EXPIRATION` | EXPIRATION |
//! | `BILLING_ISSUE` | BILLING_ISSUE |
//! | `PRODUCT_CHANGE` | PRODUCT_CHANGE |
//! | `TRANSFER` | TRANSFER |
//! | `TEST` | TEST |
//! | anything else (`SUBSCRIPTION_PAUSED`, `SUBSCRIPTION_EXTENDED`, …) | OTHER |
//!
//! Fields (RevenueCat's "Event Types and Fields" and "Sample Events" docs):
//! `event.id` is the dedupe key (retries keep it); `customer_ref` is
//! `app_user_id`, or for TRANSFER the first of `transferred_to`;
//! `product_ref` is `product_id`; `payment_ref` is `transaction_id`;
//! entitlements are `entitlement_ids` (or the older single
//! `entitlement_id`), all expiring at `expiration_at_ms` (null: lifetime);
//! the time is `event_timestamp_ms`, else `purchased_at_ms`.
//!
//! The amount is `price_in_purchased_currency`, a float in major units of
//! `currency`, rounded half away from zero to minor units. RevenueCat
//! reports refunds (CANCELLATION with `cancel_reason` `CUSTOMER_SUPPORT`)
//! with a negative price; Fulfil amounts are never negative, so the
//! magnitude is kept and the kind says what happened.

use fulfil_proto::v1::{Entitlement, PaymentEvent};

use super::amount::float_to_minor;
use super::json::{At, from_unix_millis};
use super::{Kind, NormalizeError, event, set_money};

pub(super) fn normalize(root: &At<'_>) -> Result<PaymentEvent, NormalizeError> {
    let body = root.get("event");
    body.object()?;
    let event_id = body.get("id").req_str()?;
    let event_type = body.get("type").req_str()?;
    let occur_time = occur_time(&body)?;
    let kind = match event_type {
        "INITIAL_PURCHASE" | "NON_RENEWING_PURCHASE" => Kind::Purchase,
        "RENEWAL" => Kind::Renewal,
        "CANCELLATION" => Kind::Cancellation,
        "UNCANCELLATION" => Kind::Uncancellation,
        "EXPIRATION" => Kind::Expiration,
        "BILLING_ISSUE" => Kind::BillingIssue,
        "PRODUCT_CHANGE" => Kind::ProductChange,
        "TRANSFER" => Kind::Transfer,
        "TEST" => Kind::Test,
        _ => Kind::Other,
    };
    let mut ev = event(kind, event_id, event_type, occur_time);
    if kind == Kind::Other {
        return Ok(ev);
    }

    let customer = if kind == Kind::Transfer {
        // The purchases now belong to the receiving user; RevenueCat lists
        // the user and its aliases, the user first.
        body.get("transferred_to").index(0).str()?
    } else {
        body.get("app_user_id").str()?
    };
    ev.customer_ref = customer.unwrap_or_default().to_owned();
    ev.product_ref = body.get("product_id").str()?.unwrap_or_default().to_owned();
    ev.payment_ref = body
        .get("transaction_id")
        .str()?
        .unwrap_or_default()
        .to_owned();
    ev.entitlements = entitlements(&body)?;

    let price_at = body.get("price_in_purchased_currency");
    let currency_at = body.get("currency");
    let currency = currency_at.currency()?;
    // Without a currency only a zero price is usable; `set_money` refuses
    // the rest, so the default exponent used meanwhile does not matter.
    let amount = match price_at.f64()? {
        Some(price) => float_to_minor(price.abs(), currency.as_deref().unwrap_or_default())
            .map_err(|err| price_at.invalid(err.to_string()))?,
        None => 0,
    };
    set_money(&mut ev, amount, currency, || currency_at.missing())?;
    Ok(ev)
}

fn occur_time(body: &At<'_>) -> Result<prost_types::Timestamp, NormalizeError> {
    let primary = body.get("event_timestamp_ms");
    if let Some(ms) = primary.i64()? {
        return from_unix_millis(ms, primary.path());
    }
    let purchased = body.get("purchased_at_ms");
    match purchased.i64()? {
        Some(ms) => from_unix_millis(ms, purchased.path()),
        None => Err(primary.missing()),
    }
}

fn entitlements(body: &At<'_>) -> Result<Vec<Entitlement>, NormalizeError> {
    let expiration = body.get("expiration_at_ms");
    let expire_time = match expiration.i64()? {
        Some(ms) => Some(from_unix_millis(ms, expiration.path())?),
        None => None,
    };
    let mut ids = Vec::new();
    for item in body.get("entitlement_ids").items()? {
        if let Some(id) = item.str()? {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        // Deprecated by RevenueCat but still sent; null when the array is set.
        ids.extend(body.get("entitlement_id").str()?);
    }
    Ok(ids
        .into_iter()
        .map(|id| Entitlement {
            entitlement_id: id.to_owned(),
            expire_time,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    //! Payloads under `testdata/normalize/revenuecat-*.json` follow
    //! RevenueCat's "Sample Events" documentation page.

    use serde_json::{Value, json};

    use super::super::testing::{ctx, fixture, never_panics, remove, run_json, set};
    use super::*;
    use fulfil_proto::Provider;

    fn revenuecat(body: &Value) -> Result<PaymentEvent, NormalizeError> {
        run_json(&ctx(Provider::Revenuecat), body)
    }

    fn payload(name: &str) -> Value {
        fixture(&format!("normalize/revenuecat-{name}.json"))
    }

    fn millis(ms: i64) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: ms / 1000,
            nanos: i32::try_from(ms % 1000).unwrap() * 1_000_000,
        }
    }

    #[test]
    fn initial_purchase() {
        let ev = revenuecat(&payload("initial-purchase")).unwrap();
        assert_eq!(ev.kind(), Kind::Purchase);
        assert_eq!(ev.event_id, "12345678-1234-1234-1234-123456789012");
        assert_eq!(ev.event_type, "INITIAL_PURCHASE");
        assert_eq!(ev.occur_time, Some(millis(1_658_726_378_679)));
        assert_eq!(ev.customer_ref, "1234567890");
        assert_eq!(ev.product_ref, "com.subscription.weekly");
        assert_eq!(ev.payment_ref, "123456789012345");
        assert_eq!((ev.amount, ev.currency.as_str()), (499, "USD"));
        assert_eq!(
            ev.entitlements,
            vec![Entitlement {
                entitlement_id: "pro".into(),
                expire_time: Some(millis(1_659_331_174_000)),
            }]
        );
        assert_eq!(ev.order_ref, "");
    }

    #[test]
    fn non_renewing_purchase_grants_lifetime_entitlements() {
        let ev = revenuecat(&payload("non-renewing-purchase")).unwrap();
        assert_eq!(ev.kind(), Kind::Purchase);
        assert_eq!((ev.amount, ev.currency.as_str()), (4800, "JPY"));
        let ids: Vec<_> = ev
            .entitlements
            .iter()
            .map(|e| e.entitlement_id.as_str())
            .collect();
        assert_eq!(ids, ["pro", "themes"]);
        assert!(
            ev.entitlements.iter().all(|e| e.expire_time.is_none()),
            "lifetime"
        );
    }

    #[test]
    fn each_subscription_type_maps_to_its_kind() {
        for (type_, kind) in [
            ("RENEWAL", Kind::Renewal),
            ("CANCELLATION", Kind::Cancellation),
            ("UNCANCELLATION", Kind::Uncancellation),
            ("EXPIRATION", Kind::Expiration),
            ("BILLING_ISSUE", Kind::BillingIssue),
            ("PRODUCT_CHANGE", Kind::ProductChange),
            ("TEST", Kind::Test),
        ] {
            let mut body = payload("initial-purchase");
            set(&mut body, "/event/type", json!(type_));
            let ev = revenuecat(&body).unwrap();
            assert_eq!(ev.kind(), kind, "{type_}");
            assert_eq!(ev.event_type, type_);
            assert_eq!(ev.customer_ref, "1234567890", "{type_}");
            assert_eq!(ev.product_ref, "com.subscription.weekly", "{type_}");
            assert_eq!(ev.entitlements.len(), 1, "{type_}");
        }
    }

    #[test]
    fn expiration_with_the_single_entitlement_field() {
        let ev = revenuecat(&payload("expiration")).unwrap();
        assert_eq!(ev.kind(), Kind::Expiration);
        assert_eq!(
            ev.entitlements,
            vec![Entitlement {
                entitlement_id: "pro".into(),
                expire_time: Some(millis(1_659_331_174_000)),
            }]
        );
        assert_eq!((ev.amount, ev.currency.as_str()), (0, "USD"));
    }

    #[test]
    fn a_refund_cancellation_keeps_the_magnitude_of_its_negative_price() {
        let mut body = payload("initial-purchase");
        set(&mut body, "/event/type", json!("CANCELLATION"));
        set(&mut body, "/event/cancel_reason", json!("CUSTOMER_SUPPORT"));
        set(
            &mut body,
            "/event/price_in_purchased_currency",
            json!(-4.99),
        );
        let ev = revenuecat(&body).unwrap();
        assert_eq!(ev.kind(), Kind::Cancellation);
        assert_eq!(ev.amount, 499);
    }

    #[test]
    fn transfer_names_the_receiving_user() {
        let ev = revenuecat(&payload("transfer")).unwrap();
        assert_eq!(ev.kind(), Kind::Transfer);
        assert_eq!(ev.customer_ref, "user_9f2c");
        assert_eq!(ev.event_id, "9E1E5F6A-3C2B-4F43-8B7C-2D0C6E9F1A10");
        assert!(ev.entitlements.is_empty());
        assert_eq!((ev.amount, ev.currency.as_str()), (0, ""));
    }

    #[test]
    fn prices_round_half_away_from_zero() {
        for (price, currency, minor) in [
            (json!(9.99), "EUR", 999),
            (json!(1.005), "USD", 101),
            (json!(149.5), "JPY", 150),
            (json!(2.2345), "KWD", 2235),
            (json!(3), "GBP", 300),
        ] {
            let mut body = payload("initial-purchase");
            set(
                &mut body,
                "/event/price_in_purchased_currency",
                price.clone(),
            );
            set(&mut body, "/event/currency", json!(currency));
            assert_eq!(
                revenuecat(&body).unwrap().amount,
                minor,
                "{price} {currency}"
            );
        }
    }

    #[test]
    fn a_price_without_a_currency_is_missing_the_currency() {
        let mut body = payload("initial-purchase");
        set(&mut body, "/event/currency", Value::Null);
        assert_eq!(
            revenuecat(&body).unwrap_err(),
            NormalizeError::MissingField {
                path: "$.event.currency".into()
            }
        );
        // No price at all is fine: free trials and promotional grants.
        set(&mut body, "/event/price_in_purchased_currency", Value::Null);
        assert_eq!(revenuecat(&body).unwrap().amount, 0);
    }

    #[test]
    fn the_time_falls_back_to_the_purchase_time() {
        let mut body = payload("initial-purchase");
        remove(&mut body, "/event/event_timestamp_ms");
        assert_eq!(
            revenuecat(&body).unwrap().occur_time,
            Some(millis(1_658_726_374_000))
        );
        remove(&mut body, "/event/purchased_at_ms");
        assert_eq!(
            revenuecat(&body).unwrap_err(),
            NormalizeError::MissingField {
                path: "$.event.event_timestamp_ms".into()
            }
        );
    }

    #[test]
    fn unknown_types_are_other() {
        for type_ in [
            "SUBSCRIPTION_PAUSED",
            "SUBSCRIPTION_EXTENDED",
            "SOMETHING_NEW",
        ] {
            let mut body = payload("initial-purchase");
            set(&mut body, "/event/type", json!(type_));
            // Other events are not read past the envelope.
            set(
                &mut body,
                "/event/price_in_purchased_currency",
                json!("n/a"),
            );
            let ev = revenuecat(&body).unwrap();
            assert_eq!(ev.kind(), Kind::Other, "{type_}");
            assert_eq!(ev.event_id, "12345678-1234-1234-1234-123456789012");
            assert!(ev.entitlements.is_empty());
        }
    }

    #[test]
    fn wrong_types_and_missing_fields() {
        let cases = [
            (
                "/event/price_in_purchased_currency",
                json!("4.99"),
                "wrong_type",
            ),
            ("/event/entitlement_ids", json!("pro"), "wrong_type"),
            ("/event/expiration_at_ms", json!(1.5), "wrong_type"),
            (
                "/event/event_timestamp_ms",
                json!("1658726378679"),
                "wrong_type",
            ),
            ("/event/app_user_id", json!(42), "wrong_type"),
            ("/event/currency", json!("US"), "invalid_value"),
            ("/event/id", Value::Null, "missing_field"),
            ("/event/type", json!(""), "missing_field"),
            ("/event", json!([]), "wrong_type"),
        ];
        for (pointer, value, code) in cases {
            let mut body = payload("initial-purchase");
            set(&mut body, pointer, value);
            assert_eq!(revenuecat(&body).unwrap_err().code(), code, "{pointer}");
        }
        assert_eq!(
            revenuecat(&json!({"api_version": "1.0"})).unwrap_err(),
            NormalizeError::MissingField {
                path: "$.event".into()
            }
        );
    }

    #[test]
    fn never_panics_on_mutations() {
        let context = ctx(Provider::Revenuecat);
        for name in [
            "initial-purchase",
            "non-renewing-purchase",
            "transfer",
            "expiration",
        ] {
            never_panics(&context, &payload(name));
        }
    }
}
