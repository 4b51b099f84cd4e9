//! Checkout end to end against localstripe (a stateful fake Stripe, PyPI
//! `localstripe`): the real `fulfilment` and `adapter` binaries, a
//! PaymentSheet checkout, the PaymentIntent confirmed at localstripe, its
//! signed `payment_intent.succeeded` webhook delivered to the adapter, and
//! the order PAID.
//!
//! Runs when `FULFIL_TEST_CLIENTS` is set (CI installs localstripe from
//! tests/clients/requirements.txt); then a missing localstripe fails.
//!
//! localstripe has no ephemeral keys endpoint (nor Checkout Sessions), and
//! refuses `automatic_payment_methods`. A small proxy in this test answers
//! `/v1/ephemeral_keys` itself and forwards everything else; the service
//! offers cards explicitly (`FULFIL_STRIPE_PAYMENT_METHOD_TYPES=card`).
//! Ephemeral keys and Checkout Sessions are covered by the fake Stripe of
//! fulfilment/tests/stripe_client.rs and fulfilment/tests/checkout.rs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use fulfil_e2e::{start_adapter, start_fulfilment};
use fulfil_proto::v1::checkout_service_client::CheckoutServiceClient;
use fulfil_proto::v1::order::State as OrderState;
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::{
    CheckoutFlow, CreateCheckoutRequest, CreateOrderRequest, GetOrderRequest, LineItem,
    create_checkout_request::Target,
};
use serde_json::Value;

const SECRET_KEY: &str = "sk_test_fulfil_e2e";
const WEBHOOK_SECRET: &str = "whsec_localstripe_e2e";
const DEADLINE: Duration = Duration::from_secs(60);

fn enabled() -> bool {
    let on = std::env::var_os("FULFIL_TEST_CLIENTS").is_some();
    if !on {
        eprintln!("skipped: FULFIL_TEST_CLIENTS is not set");
    }
    on
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// localstripe on a free port, stopped when dropped.
async fn start_localstripe(http: &reqwest::Client) -> (tokio::process::Child, String) {
    let port = free_port();
    let child = tokio::process::Command::new("python3")
        .args([
            "-m",
            "localstripe",
            "--port",
            &port.to_string(),
            "--from-scratch",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run python3 -m localstripe (pip install -r tests/clients/requirements.txt)");
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let ready = http
            .get(format!("{base}/v1/customers"))
            .bearer_auth(SECRET_KEY)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return (child, base);
        }
        assert!(
            started.elapsed() < DEADLINE,
            "localstripe did not answer on {base}: is it installed (pip install -r tests/clients/requirements.txt)?"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Clone)]
struct Proxy {
    http: reqwest::Client,
    upstream: String,
}

/// Forwards to localstripe, answering what it lacks.
async fn forward(
    State(proxy): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if uri.path() == "/v1/ephemeral_keys" {
        let secret = format!("ek_test_{}", rand::random::<u64>());
        let body =
            serde_json::json!({"id": "ephkey_e2e", "object": "ephemeral_key", "secret": secret});
        return (StatusCode::OK, body.to_string()).into_response();
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = proxy
        .http
        .request(method, format!("{}{path}", proxy.upstream))
        .body(body);
    for name in [
        "authorization",
        "content-type",
        "idempotency-key",
        "stripe-version",
    ] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let body = response.bytes().await.unwrap_or_default();
            (status, body).into_response()
        }
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

async fn start_proxy(http: reqwest::Client, upstream: String) -> SocketAddr {
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(Proxy { http, upstream });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

async fn post_form(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Value {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let response = http
        .post(url)
        .bearer_auth(SECRET_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("localstripe answers");
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {value}");
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_sheet_checkout_paid_through_localstripe_webhook() {
    if !enabled() {
        return;
    }
    let http = fulfil_e2e::http();
    let (_localstripe, stripe) = start_localstripe(&http).await;
    let proxy = start_proxy(http.clone(), stripe.clone()).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let fulfilment = start_fulfilment(
        dir.path(),
        &[
            ("FULFIL_STRIPE_SECRET_KEY", SECRET_KEY.to_owned()),
            ("FULFIL_STRIPE_PUBLISHABLE_KEY", "pk_test_e2e".to_owned()),
            ("FULFIL_STRIPE_API_BASE", format!("http://{proxy}")),
            ("FULFIL_STRIPE_PAYMENT_METHOD_TYPES", "card".to_owned()),
        ],
    )
    .await;
    let sources =
        format!("[sources.stripe]\nkind = \"stripe\"\nsecrets = [\"{WEBHOOK_SECRET}\"]\n");
    let adapter = start_adapter(dir.path(), fulfilment.addr, &sources, &[]).await;
    // localstripe signs and sends its events to the adapter.
    post_form(
        &http,
        &format!("{stripe}/_config/webhooks/fulfil"),
        &[
            ("url", &format!("http://{}/webhooks/stripe", adapter.addr)),
            ("secret", WEBHOOK_SECRET),
        ],
    )
    .await;

    let grpc = format!("http://{}", fulfilment.addr);
    let mut orders = OrderServiceClient::connect(grpc.clone())
        .await
        .expect("connect");
    let order = orders
        .create_order(CreateOrderRequest {
            customer_id: "user_e2e".into(),
            currency: "eur".into(),
            line_items: vec![LineItem {
                sku: "tee".into(),
                quantity: 2,
                unit_amount: 1950,
            }],
            ..Default::default()
        })
        .await
        .expect("create order")
        .into_inner();
    let mut checkouts = CheckoutServiceClient::connect(grpc).await.expect("connect");
    let checkout = checkouts
        .create_checkout(CreateCheckoutRequest {
            target: Some(Target::OrderId(order.order_id.clone())),
            flow: CheckoutFlow::StripePaymentSheet.into(),
            ..Default::default()
        })
        .await
        .expect("checkout")
        .into_inner();
    assert!(checkout.provider_payment_id.starts_with("pi_"));
    assert!(
        checkout
            .client_secret
            .starts_with(&checkout.provider_payment_id)
    );
    assert!(checkout.provider_customer_id.starts_with("cus_"));
    assert_eq!(checkout.publishable_key, "pk_test_e2e");

    // What the app's PaymentSheet does: attach a card and confirm.
    let intent = http
        .get(format!(
            "{stripe}/v1/payment_intents/{}",
            checkout.provider_payment_id
        ))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .expect("read intent")
        .bytes()
        .await
        .expect("body");
    let intent: Value = serde_json::from_slice(&intent).expect("json");
    assert_eq!(intent["amount"], 3900);
    assert_eq!(intent["metadata"]["order_id"], order.order_id.as_str());
    let method = post_form(
        &http,
        &format!("{stripe}/v1/payment_methods"),
        &[
            ("type", "card"),
            ("card[number]", "4242424242424242"),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2040"),
            ("card[cvc]", "123"),
        ],
    )
    .await;
    let method_id = method["id"].as_str().expect("payment method id");
    let pi_url = format!(
        "{stripe}/v1/payment_intents/{}",
        checkout.provider_payment_id
    );
    post_form(&http, &pi_url, &[("payment_method", method_id)]).await;
    post_form(&http, &format!("{pi_url}/confirm"), &[]).await;

    // The webhook arrives on its own; wait for its effect.
    let started = Instant::now();
    loop {
        let now = orders
            .get_order(GetOrderRequest {
                order_id: order.order_id.clone(),
            })
            .await
            .expect("get order")
            .into_inner();
        if now.state() == OrderState::Paid {
            assert_eq!(now.amount_paid, 3900);
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "order not paid in time: {:?}; adapter log: {:?}",
            now.state(),
            adapter.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Checking out the paid order again is refused.
    let err = checkouts
        .create_checkout(CreateCheckoutRequest {
            target: Some(Target::OrderId(order.order_id.clone())),
            flow: CheckoutFlow::StripePaymentSheet.into(),
            ..Default::default()
        })
        .await
        .expect_err("paid");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}
