//! Glassfy webhooks.
//!
//! Assumed shape, from Glassfy's docs ("Webhooks" connector page, "Glassfy
//! Events Data" field table, and the event type table on the "Connectors" /
//! "Triggers" pages, docs.glassfy.io): one flat JSON object per event with
//! `id` (unique event id, the dedupe key), `type` (a numeric event code),
//! `event_date` (unix seconds), `date_ms` (purchase or event time, ms),
//! `expire_date_ms`, `subscriberid` (Glassfy's user id), `customid` (the
//! app's own user id, when the app set one), `productid`, `transaction_id`,
//! `original_transaction_id`, `price` (major units of `currency_code`) and
//! `auto_renew_status`. Older doc samples quote numbers (`"price": "1.99"`,
//! `"event_date": "1608726707"`), so numeric strings are accepted too.
//!
//! | `type` | Glassfy name | kind |
//! |---|---|---|
//! | 5001 | SubscriptionInitialBuy | PURCHASE |
//! | 5002 | SubscriptionRestarted | RENEWAL (as RevenueCat reports a lapsed user resubscribing) |
//! | 5003 | SubscriptionRenewed | RENEWAL |
//! | 5004 | SubscriptionExpired | EXPIRATION |
//! | 5005 | SubscriptionDidChangeRenewalStatus | CANCELLATION if `auto_renew_status` is false, UNCANCELLATION if true |
//! | 5006 | IsInBillingRetryPeriod | BILLING_ISSUE |
//! | 5007 | SubscriptionProductChange | PRODUCT_CHANGE |
//! | 5008 | InAppPurchase | PURCHASE |
//! | 5009 | SubscriptionRefund | EXPIRATION, effective at the refund |
//! | 5010–5013, others | paused, resumed, license codes | OTHER |
//!
//! The documented names are accepted in place of the codes (one early doc
//! sample sends `"type": "SubscriptionStarted"`, read as 5001).
//!
//! A refund revokes access at once (the stores revoke refunded purchases),
//! so it is an EXPIRATION dated at the refund rather than RevenueCat's
//! CANCELLATION, which leaves access until the period ends.
//!
//! Glassfy's webhook carries no permission (entitlement) ids — permissions
//! are mapped to SKUs in its dashboard — so the product id stands in as the
//! entitlement id, expiring at `expire_date_ms` (0 or absent: lifetime, as
//! for non-consumable in-app purchases).

use fulfil_proto::v1::{Entitlement, PaymentEvent};
use serde_json::Value;

use super::amount::{AmountError, float_to_minor};
use super::json::{At, from_unix_millis, from_unix_seconds};
use super::{Kind, NormalizeError, event, set_money};

const REFUND: u64 = 5009;

pub(super) fn normalize(root: &At<'_>) -> Result<PaymentEvent, NormalizeError> {
    let event_id = root.get("id").req_str()?;
    let type_at = root.get("type");
    let (event_type, code) = event_type(&type_at)?;
    let occur_time = occur_time(root)?;
    let kind = match code {
        Some(5001 | 5008) => Kind::Purchase,
        Some(5002 | 5003) => Kind::Renewal,
        Some(5004 | REFUND) => Kind::Expiration,
        Some(5005) => match root.get("auto_renew_status").bool()? {
            Some(false) => Kind::Cancellation,
            Some(true) => Kind::Uncancellation,
            None => Kind::Other,
        },
        Some(5006) => Kind::BillingIssue,
        Some(5007) => Kind::ProductChange,
        _ => Kind::Other,
    };
    let mut ev = event(kind, event_id, &event_type, occur_time);
    if kind == Kind::Other {
        return Ok(ev);
    }

    ev.customer_ref = match root.get("customid").str()? {
        Some(custom) => custom,
        None => root.get("subscriberid").str()?.unwrap_or_default(),
    }
    .to_owned();
    ev.payment_ref = match root.get("transaction_id").str()? {
        Some(transaction) => transaction,
        None => root
            .get("original_transaction_id")
            .str()?
            .unwrap_or_default(),
    }
    .to_owned();
    let product = root.get("productid").str()?;
    ev.product_ref = product.unwrap_or_default().to_owned();

    if let Some(product) = product {
        let expire_time = if code == Some(REFUND) {
            // Access ends with the refund: at `date_ms`, the event's own time.
            let date = root.get("date_ms");
            match date.i64_lenient()? {
                Some(ms) => Some(from_unix_millis(ms, date.path())?),
                None => Some(occur_time),
            }
        } else {
            let expire = root.get("expire_date_ms");
            match expire.i64_lenient()? {
                Some(ms) if ms > 0 => Some(from_unix_millis(ms, expire.path())?),
                _ => None,
            }
        };
        ev.entitlements = vec![Entitlement {
            entitlement_id: product.to_owned(),
            expire_time,
        }];
    }

    let currency_at = root.get("currency_code");
    let currency = currency_at.currency()?;
    // Without a currency only a zero price is usable; `set_money` refuses
    // the rest, so the default exponent used meanwhile does not matter.
    let amount = price(&root.get("price"), currency.as_deref().unwrap_or_default())?;
    set_money(&mut ev, amount, currency, || currency_at.missing())?;
    Ok(ev)
}

/// The type as recorded (`"5003"`) and its numeric code, if it has one.
fn event_type(at: &At<'_>) -> Result<(String, Option<u64>), NormalizeError> {
    match at.value()? {
        Some(Value::Number(n)) => Ok((n.to_string(), n.as_u64())),
        Some(Value::String(s)) if !s.is_empty() => {
            let code = s.parse().ok().or_else(|| code_of(s));
            Ok((s.clone(), code))
        }
        Some(Value::String(_)) | None => Err(at.missing()),
        Some(_) => Err(at.wrong_type("integer or string")),
    }
}

fn code_of(name: &str) -> Option<u64> {
    Some(match name {
        "SubscriptionInitialBuy" | "SubscriptionStarted" => 5001,
        "SubscriptionRestarted" => 5002,
        "SubscriptionRenewed" => 5003,
        "SubscriptionExpired" => 5004,
        "SubscriptionDidChangeRenewalStatus" => 5005,
        "IsInBillingRetryPeriod" => 5006,
        "SubscriptionProductChange" => 5007,
        "InAppPurchase" => 5008,
        "SubscriptionRefund" => REFUND,
        _ => return None,
    })
}

fn occur_time(root: &At<'_>) -> Result<prost_types::Timestamp, NormalizeError> {
    let event_date = root.get("event_date");
    if let Some(seconds) = event_date.i64_lenient()? {
        return from_unix_seconds(seconds, event_date.path());
    }
    let date = root.get("date_ms");
    match date.i64_lenient()? {
        Some(ms) => from_unix_millis(ms, date.path()),
        None => Err(event_date.missing()),
    }
}

/// `price` (a number, or a numeric string in older payloads) in minor units
/// of `currency`, rounded half away from zero; the magnitude of a negative
/// price, as amounts are never negative.
fn price(at: &At<'_>, currency: &str) -> Result<i64, NormalizeError> {
    let value = match at.value()? {
        None => return Ok(0),
        Some(Value::String(s)) if s.is_empty() => return Ok(0),
        Some(Value::String(s)) => s
            .parse::<f64>()
            .map_err(|_| at.invalid(AmountError::Syntax.to_string()))?,
        Some(_) => at.f64()?.unwrap_or_default(),
    };
    float_to_minor(value.abs(), currency).map_err(|err| at.invalid(err.to_string()))
}

#[cfg(test)]
mod tests {
    //! Payloads under `testdata/normalize/glassfy-*.json` are the samples of
    //! Glassfy's "Webhooks" doc page (the renewal) and its blog post on
    //! webhooks (the in-app purchase, with the sample's typos fixed).

    use serde_json::json;

    use super::super::testing::{ctx, fixture, never_panics, remove, run_json, set, ts};
    use super::*;
    use fulfil_proto::Provider;

    fn glassfy(body: &Value) -> Result<PaymentEvent, NormalizeError> {
        run_json(&ctx(Provider::Glassfy), body)
    }

    fn renewal() -> Value {
        fixture("normalize/glassfy-subscription-renewed.json")
    }

    fn millis(ms: i64) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: ms / 1000,
            nanos: i32::try_from(ms % 1000).unwrap() * 1_000_000,
        }
    }

    #[test]
    fn subscription_renewed() {
        let ev = glassfy(&renewal()).unwrap();
        assert_eq!(ev.kind(), Kind::Renewal);
        assert_eq!(ev.event_id, "657a8b24a4a44ae3a0220382af5f302b");
        assert_eq!(ev.event_type, "5003");
        assert_eq!(ev.occur_time, Some(ts(1_659_112_457)));
        assert_eq!(ev.customer_ref, "customer_133", "the app's own id first");
        assert_eq!(ev.product_ref, "ios_premium_weekly_1_99");
        assert_eq!(ev.payment_ref, "2000000118352789");
        assert_eq!((ev.amount, ev.currency.as_str()), (199, "EUR"));
        assert_eq!(
            ev.entitlements,
            vec![Entitlement {
                entitlement_id: "ios_premium_weekly_1_99".into(),
                expire_time: Some(millis(1_659_112_677_000)),
            }]
        );
    }

    #[test]
    fn in_app_purchase_is_a_lifetime_purchase_by_the_subscriber() {
        let ev = glassfy(&fixture("normalize/glassfy-in-app-purchase.json")).unwrap();
        assert_eq!(ev.kind(), Kind::Purchase);
        assert_eq!(
            ev.customer_ref, "dfd29763e530470688a5741f419e7c07",
            "no custom id"
        );
        assert_eq!(ev.payment_ref, "2000000033202384", "original transaction");
        assert_eq!((ev.amount, ev.currency.as_str()), (99, "GBP"));
        assert_eq!(ev.entitlements.len(), 1);
        assert_eq!(ev.entitlements[0].expire_time, None);
    }

    #[test]
    fn each_type_maps_to_its_kind() {
        for (code, kind) in [
            (5001, Kind::Purchase),
            (5002, Kind::Renewal),
            (5003, Kind::Renewal),
            (5004, Kind::Expiration),
            (5006, Kind::BillingIssue),
            (5007, Kind::ProductChange),
            (5008, Kind::Purchase),
            (5009, Kind::Expiration),
            (5010, Kind::Other),
            (5011, Kind::Other),
            (5012, Kind::Other),
            (9999, Kind::Other),
        ] {
            let mut body = renewal();
            set(&mut body, "/type", json!(code));
            let ev = glassfy(&body).unwrap();
            assert_eq!(ev.kind(), kind, "{code}");
            assert_eq!(ev.event_type, code.to_string());
            assert_eq!(ev.event_id, "657a8b24a4a44ae3a0220382af5f302b");
        }
    }

    #[test]
    fn renewal_status_changes_are_cancellation_or_uncancellation() {
        let mut body = renewal();
        set(&mut body, "/type", json!(5005));
        set(&mut body, "/auto_renew_status", json!(false));
        assert_eq!(glassfy(&body).unwrap().kind(), Kind::Cancellation);
        set(&mut body, "/auto_renew_status", json!(true));
        assert_eq!(glassfy(&body).unwrap().kind(), Kind::Uncancellation);
        remove(&mut body, "/auto_renew_status");
        assert_eq!(glassfy(&body).unwrap().kind(), Kind::Other);
    }

    #[test]
    fn a_refund_ends_access_at_the_refund() {
        let mut body = renewal();
        set(&mut body, "/type", json!(5009));
        let ev = glassfy(&body).unwrap();
        assert_eq!(ev.kind(), Kind::Expiration);
        assert_eq!(
            ev.entitlements[0].expire_time,
            Some(millis(1_659_112_497_000))
        );
        assert_eq!(ev.amount, 199);
    }

    #[test]
    fn names_and_quoted_numbers_of_older_payloads() {
        let mut body = renewal();
        set(&mut body, "/type", json!("SubscriptionStarted"));
        set(&mut body, "/price", json!("1.99"));
        set(&mut body, "/event_date", json!("1608726707"));
        set(&mut body, "/expire_date_ms", json!("1609331507000"));
        let ev = glassfy(&body).unwrap();
        assert_eq!(ev.kind(), Kind::Purchase);
        assert_eq!(ev.event_type, "SubscriptionStarted");
        assert_eq!(ev.amount, 199);
        assert_eq!(ev.occur_time, Some(ts(1_608_726_707)));
        assert_eq!(
            ev.entitlements[0].expire_time,
            Some(millis(1_609_331_507_000))
        );

        set(&mut body, "/type", json!("5004"));
        assert_eq!(glassfy(&body).unwrap().kind(), Kind::Expiration);
        set(&mut body, "/type", json!("SubscriptionPaused"));
        assert_eq!(glassfy(&body).unwrap().kind(), Kind::Other);
    }

    #[test]
    fn time_falls_back_to_date_ms() {
        let mut body = renewal();
        remove(&mut body, "/event_date");
        assert_eq!(
            glassfy(&body).unwrap().occur_time,
            Some(millis(1_659_112_497_000))
        );
        remove(&mut body, "/date_ms");
        assert_eq!(
            glassfy(&body).unwrap_err(),
            NormalizeError::MissingField {
                path: "$.event_date".into()
            }
        );
    }

    #[test]
    fn errors() {
        let cases = [
            ("/id", Value::Null, "missing_field"),
            ("/type", json!(""), "missing_field"),
            ("/type", json!(true), "wrong_type"),
            ("/price", json!("a lot"), "invalid_value"),
            ("/price", json!([1.99]), "wrong_type"),
            ("/currency_code", json!("EURO"), "invalid_value"),
            ("/currency_code", Value::Null, "missing_field"),
            ("/expire_date_ms", json!("soon"), "invalid_value"),
            ("/customid", json!(133), "wrong_type"),
        ];
        for (pointer, value, code) in cases {
            let mut body = renewal();
            set(&mut body, pointer, value);
            assert_eq!(glassfy(&body).unwrap_err().code(), code, "{pointer}");
        }
        // A zero price needs no currency.
        let mut body = renewal();
        set(&mut body, "/price", json!(0));
        set(&mut body, "/currency_code", Value::Null);
        assert_eq!(glassfy(&body).unwrap().amount, 0);
    }

    #[test]
    fn never_panics_on_mutations() {
        let context = ctx(Provider::Glassfy);
        never_panics(&context, &renewal());
        never_panics(&context, &fixture("normalize/glassfy-in-app-purchase.json"));
    }
}
