//! A fake Stripe API on port 0, inside the test: the endpoints checkout
//! calls, with Stripe's idempotency (a key seen before returns the first
//! answer), and knobs for failures and slowness. It records every request
//! so tests can look at keys, versions and form fields.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fulfilment::checkout::stripe::{SecretKey, StripeClient, StripeConfig};
use serde_json::{Value, json};

pub const SECRET_KEY: &str = "sk_test_fake_hunter2";
pub const PUBLISHABLE_KEY: &str = "pk_test_fake";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub stripe_version: Option<String>,
    pub form: Vec<(String, String)>,
}

impl Seen {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inner {
    seen: Vec<Seen>,
    /// Idempotency key -> (status, body) of the first answer.
    answers: HashMap<String, (u16, Value)>,
    customers: HashMap<String, Value>,
    intents: HashMap<String, Value>,
    sessions: HashMap<String, Value>,
    /// Answered (status, body) before handling, one per request.
    failures: Vec<(u16, Value)>,
    /// Fail every request with this status.
    down: Option<u16>,
    delay: Option<Duration>,
    next_id: u64,
}

#[derive(Clone, Default)]
pub struct FakeStripe {
    inner: Arc<Mutex<Inner>>,
    pub addr: Option<SocketAddr>,
}

impl FakeStripe {
    pub async fn start() -> FakeStripe {
        let mut fake = FakeStripe::default();
        let app = Router::new()
            .route("/v1/customers", post(handle))
            .route("/v1/payment_intents", post(handle))
            .route("/v1/payment_intents/{id}", get(handle_id))
            .route("/v1/payment_intents/{id}/cancel", post(handle_id))
            .route("/v1/ephemeral_keys", post(handle))
            .route("/v1/checkout/sessions", post(handle))
            .route("/v1/checkout/sessions/{id}", get(handle_id))
            .route("/v1/checkout/sessions/{id}/expire", post(handle_id))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake stripe");
        fake.addr = Some(listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr.expect("started"))
    }

    /// A client for this fake with short timeouts and quick retries.
    pub fn client(&self) -> StripeClient {
        StripeClient::new(self.config()).expect("client")
    }

    pub fn config(&self) -> StripeConfig {
        let mut config = StripeConfig::new(SecretKey::new(SECRET_KEY), PUBLISHABLE_KEY.into());
        config.base_url = self.base_url();
        config.request_timeout = Duration::from_secs(2);
        config.connect_timeout = Duration::from_secs(1);
        config.backoff = Duration::from_millis(20);
        config.max_retries = 2;
        config
    }

    /// Checkout configured against this fake.
    pub fn setup(&self) -> fulfilment::checkout::CheckoutSetup {
        fulfilment::checkout::CheckoutSetup {
            stripe: Some(self.client()),
            ..Default::default()
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    pub fn seen_at(&self, method: &str, path: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method && s.path == path)
            .collect()
    }

    pub fn customer_count(&self) -> usize {
        self.lock().customers.len()
    }

    pub fn intent_count(&self) -> usize {
        self.lock().intents.len()
    }

    pub fn intent(&self, id: &str) -> Option<Value> {
        self.lock().intents.get(id).cloned()
    }

    /// Sets a PaymentIntent's status, as if it changed at Stripe.
    pub fn set_intent_status(&self, id: &str, status: &str) {
        if let Some(pi) = self.lock().intents.get_mut(id) {
            pi["status"] = status.into();
        }
    }

    /// The next requests get these answers instead of being handled.
    pub fn fail_next(&self, status: u16, body: Value, times: usize) {
        let mut inner = self.lock();
        for _ in 0..times {
            inner.failures.push((status, body.clone()));
        }
    }

    /// Every request fails with `status` (None: back up).
    pub fn set_down(&self, status: Option<u16>) {
        self.lock().down = status;
    }

    pub fn set_delay(&self, delay: Option<Duration>) {
        self.lock().delay = delay;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake stripe lock")
    }
}

async fn handle(
    State(fake): State<FakeStripe>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(fake, method, uri, headers, body, None).await
}

async fn handle_id(
    State(fake): State<FakeStripe>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(fake, method, uri, headers, body, Some(id)).await
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> (u16, Value) {
    (
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

async fn respond(
    fake: FakeStripe,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    id: Option<String>,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        idempotency_key: header("idempotency-key"),
        stripe_version: header("stripe-version"),
        form: form_urlencoded::parse(&body).into_owned().collect(),
    };
    let delay = {
        let mut inner = fake.lock();
        inner.seen.push(seen.clone());
        inner.delay
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let (status, value) = {
        let mut inner = fake.lock();
        if header("authorization").as_deref() != Some(&format!("Bearer {SECRET_KEY}")) {
            error(401, "invalid_request_error", "", "Invalid API Key provided")
        } else if let Some(status) = inner.down {
            error(status, "api_error", "", "down")
        } else if !inner.failures.is_empty() {
            inner.failures.remove(0)
        } else if let Some(answer) = seen
            .idempotency_key
            .as_ref()
            .and_then(|k| inner.answers.get(k))
        {
            answer.clone()
        } else {
            let answer = handle_fresh(&mut inner, &seen, id.as_deref());
            if let Some(key) = &seen.idempotency_key
                && answer.0 < 500
            {
                inner.answers.insert(key.clone(), answer.clone());
            }
            answer
        }
    };
    (
        StatusCode::from_u16(status).expect("status"),
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn handle_fresh(inner: &mut Inner, seen: &Seen, id: Option<&str>) -> (u16, Value) {
    inner.next_id += 1;
    let n = inner.next_id;
    let metadata = |prefix: &str| -> Value {
        let mut map = serde_json::Map::new();
        for (k, v) in &seen.form {
            if let Some(rest) = k.strip_prefix(prefix).and_then(|r| r.strip_suffix(']')) {
                map.insert(rest.to_owned(), v.clone().into());
            }
        }
        Value::Object(map)
    };
    match (seen.method.as_str(), seen.path.as_str(), id) {
        ("POST", "/v1/customers", None) => {
            let customer = json!({"id": format!("cus_{n}"), "object": "customer", "metadata": metadata("metadata[")});
            inner.customers.insert(format!("cus_{n}"), customer.clone());
            (200, customer)
        }
        ("POST", "/v1/payment_intents", None) => {
            let Some(amount) = seen.field("amount").and_then(|a| a.parse::<i64>().ok()) else {
                return error(
                    400,
                    "invalid_request_error",
                    "parameter_missing",
                    "Missing required param: amount.",
                );
            };
            let id = format!("pi_{n}");
            let pi = json!({
                "id": id, "object": "payment_intent", "amount": amount,
                "currency": seen.field("currency"), "customer": seen.field("customer"),
                "client_secret": format!("{id}_secret_{n}"), "status": "requires_payment_method",
                "metadata": metadata("metadata["),
            });
            inner.intents.insert(id, pi.clone());
            (200, pi)
        }
        ("GET", _, Some(id)) if seen.path.starts_with("/v1/payment_intents/") => {
            match inner.intents.get(id) {
                Some(pi) => (200, pi.clone()),
                None => error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    "No such payment_intent",
                ),
            }
        }
        ("POST", _, Some(id)) if seen.path.starts_with("/v1/payment_intents/") => {
            match inner.intents.get_mut(id) {
                Some(pi) if pi["status"] == "succeeded" || pi["status"] == "canceled" => error(
                    400,
                    "invalid_request_error",
                    "payment_intent_unexpected_state",
                    "You cannot cancel this PaymentIntent because it has a status of succeeded.",
                ),
                Some(pi) => {
                    pi["status"] = "canceled".into();
                    (200, pi.clone())
                }
                None => error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    "No such payment_intent",
                ),
            }
        }
        ("POST", "/v1/ephemeral_keys", None) => {
            if seen.stripe_version.is_none() {
                return error(
                    400,
                    "invalid_request_error",
                    "",
                    "Stripe-Version header required",
                );
            }
            (
                200,
                json!({"id": format!("ephkey_{n}"), "secret": format!("ek_test_{n}")}),
            )
        }
        ("POST", "/v1/checkout/sessions", None) => {
            let id = format!("cs_test_{n}");
            let session = json!({
                "id": id, "object": "checkout.session", "status": "open",
                "url": format!("https://checkout.stripe.test/c/pay/{id}"),
                "client_reference_id": seen.field("client_reference_id"),
                "metadata": metadata("metadata["), "payment_intent": null,
            });
            inner.sessions.insert(id, session.clone());
            (200, session)
        }
        ("GET", _, Some(id)) => match inner.sessions.get(id) {
            Some(s) => (200, s.clone()),
            None => error(
                404,
                "invalid_request_error",
                "resource_missing",
                "No such checkout.session",
            ),
        },
        ("POST", _, Some(id)) => match inner.sessions.get_mut(id) {
            Some(s) if s["status"] == "open" => {
                s["status"] = "expired".into();
                s["url"] = Value::Null;
                (200, s.clone())
            }
            Some(_) => error(
                400,
                "invalid_request_error",
                "checkout_session_unexpected_state",
                "not open",
            ),
            None => error(
                404,
                "invalid_request_error",
                "resource_missing",
                "No such checkout.session",
            ),
        },
        _ => error(404, "invalid_request_error", "", "Unrecognized request URL"),
    }
}
