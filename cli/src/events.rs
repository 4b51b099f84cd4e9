//! Realistic provider payloads for test webhooks and load, built from real
//! object shapes (the Stripe fixtures, documented RevenueCat and Glassfy
//! events) with the fields that matter patched in.

use serde_json::{Value, json};

use fulfil_proto::Provider;

const STRIPE_EVENT: &str = include_str!("../../adapter/testdata/stripe/event.json");
const STRIPE_PAYMENT_INTENT: &str =
    include_str!("../../adapter/testdata/stripe/payment_intent.json");
const STRIPE_CHARGE: &str = include_str!("../../adapter/testdata/stripe/charge.json");
const STRIPE_CHECKOUT_SESSION: &str =
    include_str!("../../adapter/testdata/stripe/checkout.session.json");
const STRIPE_REFUND: &str = include_str!("../../adapter/testdata/stripe/refund.json");
const STRIPE_DISPUTE: &str = include_str!("../../adapter/testdata/stripe/dispute.json");
const REVENUECAT_EVENT: &str =
    include_str!("../../adapter/testdata/normalize/revenuecat-initial-purchase.json");
const GLASSFY_EVENT: &str =
    include_str!("../../adapter/testdata/normalize/glassfy-in-app-purchase.json");

/// What a test event is about.
#[derive(Debug, Clone)]
pub struct Params {
    /// Event id; random when empty.
    pub event_id: String,
    /// The order it names (may be empty).
    pub order_id: String,
    /// Minor units.
    pub amount: i64,
    /// ISO 4217, any case.
    pub currency: String,
    /// Provider payment id; derived from the order when empty.
    pub payment_ref: String,
    /// App user (in-app purchases).
    pub customer: String,
    /// Product (in-app purchases).
    pub product: String,
    /// Entitlement granted (in-app purchases).
    pub entitlement: String,
    /// Unix seconds of the event.
    pub now: i64,
}

/// The event types each kind can build, for `--help` and errors.
pub fn supported(kind: Provider) -> &'static [&'static str] {
    match kind {
        Provider::Stripe => &[
            "payment_intent.succeeded",
            "payment_intent.payment_failed",
            "payment_intent.processing",
            "payment_intent.canceled",
            "checkout.session.completed",
            "charge.refunded",
            "refund.created",
            "charge.dispute.created",
            "charge.dispute.closed",
        ],
        Provider::Standard => &[
            "payment.succeeded",
            "payment.failed",
            "payment.processing",
            "payment.refunded",
        ],
        Provider::Paddle => &["transaction.completed", "transaction.payment_failed"],
        Provider::Revenuecat => &[
            "INITIAL_PURCHASE",
            "RENEWAL",
            "NON_RENEWING_PURCHASE",
            "CANCELLATION",
            "UNCANCELLATION",
            "EXPIRATION",
            "BILLING_ISSUE",
            "TEST",
        ],
        Provider::Glassfy => &["5001", "5003", "5004", "5008"],
        Provider::Paypal => &[],
    }
}

fn parse(text: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(text)?)
}

fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

impl Params {
    fn event_id_or(&self, prefix: &str) -> String {
        if self.event_id.is_empty() {
            random_id(prefix)
        } else {
            self.event_id.clone()
        }
    }

    fn payment_ref_or(&self, prefix: &str) -> String {
        match (self.payment_ref.is_empty(), self.order_id.is_empty()) {
            (false, _) => self.payment_ref.clone(),
            (true, false) => format!("{prefix}{}", self.order_id),
            (true, true) => random_id(prefix),
        }
    }
}

/// Builds the body of `event_type` for a source of `kind`.
pub fn build(kind: Provider, event_type: &str, p: &Params) -> anyhow::Result<Vec<u8>> {
    if !supported(kind).contains(&event_type) {
        anyhow::bail!(
            "{kind:?} sources can send: {}",
            if supported(kind).is_empty() {
                "nothing (PayPal signs with its own private key)".to_owned()
            } else {
                supported(kind).join(", ")
            }
        );
    }
    let body = match kind {
        Provider::Stripe => stripe(event_type, p)?,
        Provider::Standard => standard(event_type, p),
        Provider::Paddle => paddle(event_type, p),
        Provider::Revenuecat => revenuecat(event_type, p)?,
        Provider::Glassfy => glassfy(event_type, p)?,
        // `supported` lists nothing for PayPal, so the check above refused it.
        Provider::Paypal => anyhow::bail!("PayPal webhooks are signed with PayPal's private key"),
    };
    Ok(serde_json::to_vec(&body)?)
}

fn stripe(event_type: &str, p: &Params) -> anyhow::Result<Value> {
    let currency = p.currency.to_ascii_lowercase();
    let pi = p.payment_ref_or("pi_");
    let metadata = if p.order_id.is_empty() {
        json!({})
    } else {
        json!({ "order_id": p.order_id })
    };
    let object = match event_type {
        t if t.starts_with("payment_intent.") => {
            let mut o = parse(STRIPE_PAYMENT_INTENT)?;
            let status = match t {
                "payment_intent.succeeded" => "succeeded",
                "payment_intent.processing" => "processing",
                "payment_intent.canceled" => "canceled",
                _ => "requires_payment_method",
            };
            o["id"] = json!(pi);
            o["amount"] = json!(p.amount);
            o["amount_received"] = json!(if status == "succeeded" { p.amount } else { 0 });
            o["currency"] = json!(currency);
            o["metadata"] = metadata;
            o["status"] = json!(status);
            o
        }
        "checkout.session.completed" => {
            let mut o = parse(STRIPE_CHECKOUT_SESSION)?;
            o["id"] = json!(random_id("cs_"));
            o["payment_intent"] = json!(pi);
            o["amount_total"] = json!(p.amount);
            o["currency"] = json!(currency);
            o["client_reference_id"] = json!(p.order_id);
            o["metadata"] = metadata;
            o["payment_status"] = json!("paid");
            o["status"] = json!("complete");
            o["mode"] = json!("payment");
            o
        }
        "charge.refunded" => {
            let mut o = parse(STRIPE_CHARGE)?;
            o["id"] = json!(random_id("ch_"));
            o["payment_intent"] = json!(pi);
            o["amount"] = json!(p.amount);
            o["amount_captured"] = json!(p.amount);
            o["amount_refunded"] = json!(p.amount);
            o["refunded"] = json!(true);
            o["currency"] = json!(currency);
            o["metadata"] = metadata;
            o
        }
        "refund.created" => {
            let mut o = parse(STRIPE_REFUND)?;
            o["id"] = json!(random_id("re_"));
            o["payment_intent"] = json!(pi);
            o["amount"] = json!(p.amount);
            o["currency"] = json!(currency);
            o["status"] = json!("succeeded");
            o["metadata"] = metadata;
            o
        }
        _ => {
            let mut o = parse(STRIPE_DISPUTE)?;
            o["id"] = json!(random_id("dp_"));
            o["payment_intent"] = json!(pi);
            o["amount"] = json!(p.amount);
            o["currency"] = json!(currency);
            o["status"] = json!(if event_type.ends_with("closed") {
                "won"
            } else {
                "needs_response"
            });
            o["metadata"] = metadata;
            o
        }
    };
    let mut event = parse(STRIPE_EVENT)?;
    event["id"] = json!(p.event_id_or("evt_"));
    event["type"] = json!(event_type);
    event["created"] = json!(p.now);
    event["data"] = json!({ "object": object });
    Ok(event)
}

fn standard(event_type: &str, p: &Params) -> Value {
    json!({
        "type": event_type,
        "timestamp": p.now,
        "data": {
            "order_id": p.order_id,
            "payment_id": p.payment_ref_or("pay_"),
            "refund_id": if event_type == "payment.refunded" { random_id("rf_") } else { String::new() },
            "amount": p.amount,
            "currency": p.currency.to_ascii_uppercase(),
        }
    })
}

fn paddle(event_type: &str, p: &Params) -> Value {
    json!({
        "event_id": p.event_id_or("evt_"),
        "event_type": event_type,
        "occurred_at": format!("{}", p.now),
        "notification_id": random_id("ntf_"),
        "data": {
            "id": p.payment_ref_or("txn_"),
            "status": if event_type == "transaction.completed" { "completed" } else { "past_due" },
            "currency_code": p.currency.to_ascii_uppercase(),
            "custom_data": { "order_id": p.order_id },
            "details": { "totals": { "grand_total": p.amount.to_string(), "currency_code": p.currency.to_ascii_uppercase() } },
        }
    })
}

fn major_units(amount: i64) -> f64 {
    // Display only: providers of in-app purchases send prices as floats.
    amount as f64 / 100.0
}

fn revenuecat(event_type: &str, p: &Params) -> anyhow::Result<Value> {
    let mut body = parse(REVENUECAT_EVENT)?;
    let e = &mut body["event"];
    e["id"] = json!(p.event_id_or(""));
    e["type"] = json!(event_type);
    e["app_user_id"] = json!(p.customer);
    e["product_id"] = json!(p.product);
    e["entitlement_ids"] = json!([p.entitlement]);
    e["transaction_id"] = json!(p.payment_ref_or("txn_"));
    e["price"] = json!(major_units(p.amount));
    e["price_in_purchased_currency"] = json!(major_units(p.amount));
    e["currency"] = json!(p.currency.to_ascii_uppercase());
    e["event_timestamp_ms"] = json!(p.now * 1000);
    e["purchased_at_ms"] = json!(p.now * 1000);
    e["expiration_at_ms"] = json!((p.now + 30 * 86_400) * 1000);
    Ok(body)
}

fn glassfy(event_type: &str, p: &Params) -> anyhow::Result<Value> {
    let mut body = parse(GLASSFY_EVENT)?;
    body["id"] = json!(p.event_id_or(""));
    body["type"] = json!(event_type.parse::<i64>()?);
    body["customid"] = json!(p.customer);
    body["subscriberid"] = json!(p.customer);
    body["productid"] = json!(p.product);
    body["original_transaction_id"] = json!(p.payment_ref_or("gtx_"));
    body["price"] = json!(major_units(p.amount));
    body["currency_code"] = json!(p.currency.to_ascii_uppercase());
    body["date_ms"] = json!(p.now * 1000);
    body["event_date"] = json!(p.now);
    body["expire_date_ms"] = json!((p.now + 30 * 86_400) * 1000);
    Ok(body)
}
