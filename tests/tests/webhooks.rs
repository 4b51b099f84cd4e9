//! Webhooks end to end: the real `adapter` and `fulfilment` binaries as
//! separate processes, a provider's signed delivery in, an order out.

use adapter::verify::sign;
use fulfil_e2e::{Process, start_adapter, start_fulfilment};
use fulfil_proto::v1::order::State;
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::payment_event_service_client::PaymentEventServiceClient;
use fulfil_proto::v1::{
    CreateOrderRequest, GetOrderRequest, LineItem, ListPaymentEventsRequest, RecordedPaymentEvent,
};
use serde_json::Value;

const STRIPE_SECRET: &str = "whsec_e2e_test_secret";
const RC_TOKEN: &str = "Bearer rc_e2e_token";

fn sources() -> String {
    format!(
        r#"
        [sources.stripe]
        kind = "stripe"
        secrets = ["{STRIPE_SECRET}"]

        [sources.revenuecat]
        kind = "revenuecat"
        secrets = ["{RC_TOKEN}"]
        "#
    )
}

fn now() -> i64 {
    fulfil_e2e::unix_now()
}

/// A realistic `payment_intent.succeeded` built from Stripe's fixture.
fn payment_intent_succeeded(event_id: &str, order_id: &str, amount: i64) -> Vec<u8> {
    serde_json::to_vec(&fulfil_e2e::stripe_payment_succeeded(
        event_id, order_id, amount,
    ))
    .expect("json")
}

struct Stack {
    fulfilment: Process,
    adapter: Process,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Stack {
    async fn start(adapter_env: &[(&str, String)]) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let fulfilment = start_fulfilment(dir.path(), &[]).await;
        let adapter = start_adapter(dir.path(), fulfilment.addr, &sources(), adapter_env).await;
        Stack {
            fulfilment,
            adapter,
            dir,
            http: fulfil_e2e::http(),
        }
    }

    fn grpc(&self) -> String {
        format!("http://{}", self.fulfilment.addr)
    }

    async fn create_order(&self, order_id: &str) {
        let mut client = OrderServiceClient::connect(self.grpc())
            .await
            .expect("connect");
        client
            .create_order(CreateOrderRequest {
                order_id: order_id.into(),
                customer_id: "cus_e2e".into(),
                line_items: vec![LineItem {
                    sku: "tee".into(),
                    quantity: 2,
                    unit_amount: 1950,
                }],
                currency: "eur".into(),
                ..Default::default()
            })
            .await
            .expect("create order");
    }

    async fn order(&self, order_id: &str) -> fulfil_proto::v1::Order {
        let mut client = OrderServiceClient::connect(self.grpc())
            .await
            .expect("connect");
        client
            .get_order(GetOrderRequest {
                order_id: order_id.into(),
            })
            .await
            .expect("get")
            .into_inner()
    }

    /// The recorded events, newest first, with their payloads.
    async fn ledger(&self) -> Vec<RecordedPaymentEvent> {
        let mut client = PaymentEventServiceClient::connect(self.grpc())
            .await
            .expect("connect");
        client
            .list_payment_events(ListPaymentEventsRequest {
                page_size: 500,
                include_payload: true,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner()
            .events
    }

    async fn ledger_size(&self) -> usize {
        self.ledger().await.len()
    }

    async fn post(&self, source: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("http://{}/webhooks/{source}", self.adapter.addr))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("post");
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        (status, body)
    }

    async fn post_stripe(&self, body: Vec<u8>) -> (u16, Value) {
        let header = sign::stripe_header(STRIPE_SECRET, now(), &body);
        self.post(
            "stripe",
            &[
                ("content-type", "application/json".into()),
                ("stripe-signature", header),
            ],
            body,
        )
        .await
    }
}

#[tokio::test]
async fn signed_stripe_payment_marks_the_order_paid_exactly_once() {
    let stack = Stack::start(&[]).await;
    stack.create_order("e2e-order-1").await;
    let body = payment_intent_succeeded("evt_e2e_1", "e2e-order-1", 3900);

    let (status, answer) = stack.post_stripe(body.clone()).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    let paid = stack.order("e2e-order-1").await;
    assert_eq!((paid.state(), paid.amount_paid), (State::Paid, 3900));

    // Stripe retries re-sign the same body with a new timestamp.
    let (status, answer) = stack.post_stripe(body.clone()).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("duplicate")),
        "{answer}"
    );
    assert_eq!(
        stack.order("e2e-order-1").await.version,
        paid.version,
        "no new version"
    );

    let forged = sign::stripe_header("whsec_not_the_secret", now(), &body);
    let (status, answer) = stack
        .post(
            "stripe",
            &[
                ("content-type", "application/json".into()),
                ("stripe-signature", forged),
            ],
            body,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "signature_mismatch");
    assert_eq!(
        stack.ledger_size().await,
        1,
        "a forged delivery records nothing"
    );
    drop(stack.dir);
}

#[tokio::test]
async fn ids_with_nul_get_a_400_at_once_and_free_text_is_kept_exactly() {
    let stack = Stack::start(&[]).await;
    stack.create_order("e2e-nul").await;
    // Each place the adversarial run put U+0000 into a signed event. The
    // adapter refuses it before the fulfilment service (PostgreSQL refuses
    // U+0000 in text) sees it: a 400 the provider does not retry, on the
    // first delivery and on every later one, instead of a 503.
    let good = || fulfil_e2e::stripe_payment_succeeded("evt_e2e_nul", "e2e-nul", 3900);
    type Poison = fn(&mut Value);
    let cases: [(&str, Poison); 4] = [
        ("id", |e| e["id"] = "evt_\u{0}1".into()),
        ("type", |e| {
            e["type"] = "payment_intent.succeeded\u{0}".into()
        }),
        ("metadata.order_id", |e| {
            e["data"]["object"]["metadata"]["order_id"] = "e2e-nul\u{0}x".into()
        }),
        ("payment intent id", |e| {
            e["data"]["object"]["id"] = "pi_\u{0}".into()
        }),
    ];
    for (what, poison) in cases {
        let mut event = good();
        poison(&mut event);
        let body = serde_json::to_vec(&event).expect("json");
        for delivery in 0..2 {
            let (status, answer) = stack.post_stripe(body.clone()).await;
            assert_eq!(status, 400, "{what}, delivery {delivery}: {answer}");
            assert_eq!(answer["code"], "invalid_identifier", "{what}: {answer}");
            assert!(!answer["message"].as_str().unwrap_or("").contains('\0'));
        }
    }
    assert_eq!(stack.ledger_size().await, 0, "nothing was recorded");
    assert_eq!(stack.order("e2e-nul").await.state(), State::PendingPayment);

    // U+0000 in free text is the provider's business: recorded, and the
    // verified body comes back byte for byte.
    let mut event = good();
    event["data"]["object"]["description"] = "a\u{0}b".into();
    let body = serde_json::to_vec(&event).expect("json");
    assert!(body.windows(6).any(|w| w == b"\\u0000"), "JSON escapes NUL");
    let (status, answer) = stack.post_stripe(body.clone()).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    let events = stack.ledger().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event.as_ref().map(|e| e.payload.as_slice()),
        Some(body.as_slice())
    );
}

#[tokio::test]
async fn unavailable_fulfilment_gives_503_and_the_retry_applies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fulfilment = start_fulfilment(dir.path(), &[]).await;
    let addr = fulfilment.addr;
    let mut client = OrderServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    client
        .create_order(CreateOrderRequest {
            order_id: "e2e-retry".into(),
            customer_id: "cus".into(),
            line_items: vec![LineItem {
                sku: "a".into(),
                quantity: 1,
                unit_amount: 3900,
            }],
            currency: "eur".into(),
            ..Default::default()
        })
        .await
        .expect("create");
    drop(client);
    assert!(fulfilment.terminate().await.success());

    let adapter = start_adapter(
        dir.path(),
        addr,
        &sources(),
        &[("FULFIL_FULFILMENT_RETRY_BUDGET_MS", "300".to_owned())],
    )
    .await;
    let http = fulfil_e2e::http();
    let body = payment_intent_succeeded("evt_e2e_retry", "e2e-retry", 3900);
    let send = |body: Vec<u8>| {
        let http = http.clone();
        async move {
            http.post(format!("http://{}/webhooks/stripe", adapter.addr))
                .header("content-type", "application/json")
                .header(
                    "stripe-signature",
                    sign::stripe_header(STRIPE_SECRET, now(), &body),
                )
                .body(body)
                .send()
                .await
                .expect("post")
        }
    };
    let down = send(body.clone()).await;
    assert_eq!(down.status().as_u16(), 503);
    assert!(down.headers().contains_key("retry-after"));
    let answer: Value = serde_json::from_slice(&down.bytes().await.expect("body")).expect("json");
    assert_eq!(answer["code"], "temporarily_unavailable");

    // The fulfilment service comes back on the same address and database;
    // the provider's retry is applied.
    let back = Process::start(
        &fulfil_e2e::binary("fulfilment"),
        &["serve"],
        &[("FULFIL_GRPC_ADDR", addr.to_string())],
        dir.path(),
        "gRPC server listening",
    )
    .await;
    let retried = send(body).await;
    assert_eq!(retried.status().as_u16(), 200);
    let mut client = OrderServiceClient::connect(format!("http://{}", back.addr))
        .await
        .expect("connect");
    let order = client
        .get_order(GetOrderRequest {
            order_id: "e2e-retry".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(order.state(), State::Paid);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_records_nothing() {
    let stack = Stack::start(&[("FULFIL_BODY_LIMIT_BYTES", "65536".to_owned())]).await;
    let json_type = ("content-type", "application/json".to_owned());
    let signed = |body: &[u8]| {
        (
            "stripe-signature",
            sign::stripe_header(STRIPE_SECRET, now(), body),
        )
    };

    // (what, headers, body, expected status, expected code)
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            vec![json_type.clone(), signed(b"{not json")],
            b"{not json".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "missing signature",
            vec![json_type.clone()],
            payment_intent_succeeded("evt_x", "o", 1),
            400,
            "missing_signature",
        ),
        (
            "not JSON",
            vec![("content-type", "text/plain".into())],
            b"hello".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "too large",
            vec![json_type.clone()],
            vec![b' '; 70_000],
            413,
            "payload_too_large",
        ),
        (
            "deep nesting",
            vec![json_type.clone(), signed(&[b'['; 5000])],
            vec![b'['; 5000],
            400,
            "malformed_json",
        ),
        (
            "invalid UTF-8",
            vec![json_type.clone(), signed(b"{\"id\": \"\xff\xfe\"}")],
            b"{\"id\": \"\xff\xfe\"}".to_vec(),
            400,
            "malformed_json",
        ),
        (
            "wrong types",
            vec![
                json_type.clone(),
                signed(br#"{"id": 5, "type": ["x"], "created": "soon"}"#),
            ],
            br#"{"id": 5, "type": ["x"], "created": "soon"}"#.to_vec(),
            400,
            "wrong_type",
        ),
    ];
    for (name, headers, body, status, code) in cases {
        let (got, answer) = stack.post("stripe", &headers, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["code"], code, "{name}: {answer}");
        assert!(answer["message"].is_string(), "{name}: a human message too");
    }

    let body = payment_intent_succeeded("evt_rep", "o", 1);
    let (status, answer) = stack
        .post(
            "stripe",
            &[
                json_type.clone(),
                signed(&body),
                ("stripe-signature", "t=1,v1=00".into()),
            ],
            body,
        )
        .await;
    assert_eq!(
        status, 400,
        "a repeated signature header is refused: {answer}"
    );

    let (status, answer) = stack
        .post("nope", std::slice::from_ref(&json_type), b"{}".to_vec())
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("unknown_source"))
    );
    let (status, answer) = stack
        .post(
            "revenuecat",
            &[json_type.clone(), ("authorization", "Bearer wrong".into())],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("unauthorized"))
    );

    assert_eq!(stack.ledger_size().await, 0, "nothing was recorded");
    for secret in [STRIPE_SECRET, RC_TOKEN] {
        assert!(!answer.to_string().contains(secret));
    }
}

/// A mapping that could never read a webhook stops `check-sources` and
/// `serve` at once, naming the source and the problem, instead of turning
/// every delivery of that source into a 400.
#[tokio::test]
async fn a_mapping_that_cannot_work_stops_check_sources_and_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sources = r#"
        [sources.acme]
        kind = "standard"
        secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
        [sources.acme.mapping]
        event_type = "/type"
        amount = "/data/amount"
        amount_format = "decimal"
        succeeded = ["payment.succeeded"]
        "#;
    for command in ["check-sources", "serve"] {
        let output = tokio::process::Command::new(fulfil_e2e::binary("adapter"))
            .arg(command)
            .env("FULFIL_ADAPTER_ADDR", "127.0.0.1:0")
            .env("FULFIL_SOURCES_TOML", sources)
            .current_dir(dir.path())
            .output()
            .await
            .expect("run adapter");
        assert!(!output.status.success(), "{command} refuses");
        let log = String::from_utf8_lossy(&output.stdout);
        assert!(
            log.contains("source acme: invalid mapping: decimal amounts need a currency"),
            "{command}: {log}"
        );
    }
}
