//! Observability of the real binaries: one webhook is one trace across the
//! adapter and the fulfilment service (exported over OTLP to a receiver
//! inside this test), metrics count what happened, and logs carry one line
//! per webhook but never a secret or a payload.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use adapter::verify::sign;
use fulfil_e2e::{Process, start_adapter, start_fulfilment};
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::{CreateOrderRequest, LineItem};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const STRIPE_SECRET: &str = "whsec_observability_e2e_7Hq2";
const ORDER_ID: &str = "order-traced-1";
/// A value that appears only inside the webhook payload.
const PAYLOAD_MARKER: &str = "payload-marker-b71c";

/// One exported span, flattened with its service's name.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    kind: i32,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

/// An OTLP/gRPC trace receiver that keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().expect("spans");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Span {
                        service: service.clone(),
                        name: span.name,
                        kind: span.kind,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_receiver() -> (SocketAddr, Receiver) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let receiver = Receiver::default();
    let service = TraceServiceServer::new(receiver.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .expect("OTLP receiver");
    });
    (addr, receiver)
}

fn now() -> i64 {
    fulfil_e2e::unix_now()
}

fn payment_intent_succeeded(event_id: &str) -> Vec<u8> {
    let mut event = fulfil_e2e::stripe_payment_succeeded(event_id, ORDER_ID, 3900);
    event["data"]["object"]["description"] = json!(PAYLOAD_MARKER);
    serde_json::to_vec(&event).expect("json")
}

struct Stack {
    fulfilment: Process,
    adapter: Process,
    _dir: tempfile::TempDir,
}

async fn start_stack(otlp: Option<SocketAddr>) -> Stack {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env = vec![
        ("FULFIL_OPS_ADDR", "127.0.0.1:0".to_owned()),
        // Export promptly rather than every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    if let Some(otlp) = otlp {
        env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}")));
    }
    let fulfilment = start_fulfilment(dir.path(), &env).await;
    let sources = format!("[sources.stripe]\nkind = \"stripe\"\nsecrets = [\"{STRIPE_SECRET}\"]\n");
    let adapter = start_adapter(dir.path(), fulfilment.addr, &sources, &env).await;
    let mut orders = OrderServiceClient::connect(format!("http://{}", fulfilment.addr))
        .await
        .expect("connect");
    orders
        .create_order(CreateOrderRequest {
            order_id: ORDER_ID.into(),
            customer_id: "cus_traced".into(),
            currency: "eur".into(),
            line_items: vec![LineItem {
                sku: "tee".into(),
                quantity: 2,
                unit_amount: 1950,
            }],
            ..Default::default()
        })
        .await
        .expect("create order");
    Stack {
        fulfilment,
        adapter,
        _dir: dir,
    }
}

async fn post(adapter: &Process, source: &str, secret: &str, body: Vec<u8>) -> u16 {
    let header = sign::stripe_header(secret, now(), &body);
    fulfil_e2e::http()
        .post(format!("http://{}/webhooks/{source}", adapter.addr))
        .header("content-type", "application/json")
        .header("stripe-signature", header)
        .body(body)
        .send()
        .await
        .expect("post webhook")
        .status()
        .as_u16()
}

#[tokio::test]
async fn one_webhook_is_one_trace_across_both_services() {
    let (otlp, receiver) = start_receiver().await;
    let mut stack = start_stack(Some(otlp)).await;
    let status = post(
        &stack.adapter,
        "stripe",
        STRIPE_SECRET,
        payment_intent_succeeded("evt_traced_1"),
    )
    .await;
    assert_eq!(status, 200);
    // Stopping flushes what each process still buffers.
    assert!(stack.adapter.stop().await.success());
    assert!(stack.fulfilment.stop().await.success());

    let spans = receiver.0.lock().expect("spans").clone();
    let find = |service: &str, name: &str, kind: SpanKind| {
        spans
            .iter()
            .find(|s| s.service == service && s.name == name && s.kind == kind as i32)
            .unwrap_or_else(|| panic!("no {kind:?} span {name:?} from {service}: {spans:#?}"))
            .clone()
    };
    let webhook = find("adapter", "POST /webhooks/{source}", SpanKind::Server);
    let client = find(
        "adapter",
        "fulfil.v1.PaymentEventService/RecordPaymentEvent",
        SpanKind::Client,
    );
    let server = find(
        "fulfilment",
        "fulfil.v1.PaymentEventService/RecordPaymentEvent",
        SpanKind::Server,
    );
    assert!(
        webhook.parent_span_id.is_empty(),
        "the webhook starts the trace"
    );
    assert_eq!(client.parent_span_id, webhook.span_id);
    assert_eq!(
        server.parent_span_id, client.span_id,
        "linked by traceparent"
    );
    let trace: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == webhook.trace_id)
        .collect();
    // The database work is in the same trace, below the server span.
    let db = trace
        .iter()
        .find(|s| s.service == "fulfilment" && s.name == "db transaction")
        .unwrap_or_else(|| panic!("no database span in the trace: {trace:#?}"));
    let mut ancestor = db.parent_span_id.clone();
    let mut reached_server = false;
    while let Some(parent) = trace.iter().find(|s| s.span_id == ancestor) {
        if parent.span_id == server.span_id {
            reached_server = true;
            break;
        }
        ancestor = parent.parent_span_id.clone();
    }
    assert!(
        reached_server,
        "the database span descends from the server span"
    );
    // Nothing of this webhook went into another trace.
    let mut services: Vec<&str> = trace.iter().map(|s| s.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    assert_eq!(services, ["adapter", "fulfilment"]);
}

/// The value of one sample line in a Prometheus text page.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

async fn metrics(ops: SocketAddr) -> String {
    fulfil_e2e::http()
        .get(format!("http://{ops}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text")
}

#[tokio::test]
async fn metrics_and_logs_describe_each_webhook_without_secrets() {
    // Tracing off: the services must run the same without a collector.
    let mut stack = start_stack(None).await;
    let adapter_ops = stack
        .adapter
        .logged_addr("ops listening (/metrics)", "addr")
        .expect("adapter ops address");
    let fulfilment_ops = stack
        .fulfilment
        .logged_addr("gRPC server listening", "ops_addr")
        .expect("fulfilment ops address");

    let ok = payment_intent_succeeded("evt_logged_1");
    assert_eq!(
        post(&stack.adapter, "stripe", STRIPE_SECRET, ok.clone()).await,
        200
    );
    assert_eq!(post(&stack.adapter, "stripe", STRIPE_SECRET, ok).await, 200);
    let forged = payment_intent_succeeded("evt_forged_1");
    assert_eq!(
        post(&stack.adapter, "stripe", "whsec_wrong", forged).await,
        400
    );
    let nowhere = payment_intent_succeeded("evt_nowhere_1");
    assert_eq!(
        post(&stack.adapter, "no-such-source-91", STRIPE_SECRET, nowhere).await,
        404
    );

    let text = metrics(adapter_ops).await;
    for (series, value) in [
        (
            r#"fulfil_webhooks_total{source="stripe",outcome="applied",status="200"}"#,
            1.0,
        ),
        (
            r#"fulfil_webhooks_total{source="stripe",outcome="duplicate",status="200"}"#,
            1.0,
        ),
        (
            r#"fulfil_webhooks_total{source="stripe",outcome="signature_mismatch",status="400"}"#,
            1.0,
        ),
        (
            r#"fulfil_webhook_verification_failures_total{source="stripe",reason="signature_mismatch"}"#,
            1.0,
        ),
        (
            r#"fulfil_webhooks_total{source="unknown",outcome="unknown_source",status="404"}"#,
            1.0,
        ),
        (
            r#"fulfil_webhook_duration_seconds_count{source="stripe"}"#,
            3.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    assert!(
        !text.contains("no-such-source-91"),
        "unknown sources share one label"
    );
    let text = metrics(fulfilment_ops).await;
    assert_eq!(
        sample(
            &text,
            r#"fulfil_payment_events_recorded_total{provider="stripe",outcome="APPLIED"}"#
        ),
        Some(1.0),
        "{text}"
    );

    assert!(stack.adapter.stop().await.success());
    assert!(stack.fulfilment.stop().await.success());
    let adapter_log = stack.adapter.log();
    // One line per webhook, with source, event id, outcome and latency.
    let accepted: Vec<Value> = adapter_log
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "webhook accepted")
        .collect();
    assert_eq!(accepted.len(), 2, "{adapter_log:#?}");
    let first = &accepted[0];
    assert_eq!(first["span"]["source"], "stripe");
    assert_eq!(first["span"]["event_id"], "evt_logged_1");
    assert_eq!(first["span"]["outcome"], "applied");
    assert!(first["latency_ms"].as_f64().is_some(), "{first}");
    let refused = adapter_log
        .iter()
        .filter(|l| l.contains("webhook refused"))
        .count();
    assert_eq!(refused, 2, "{adapter_log:#?}");
    // Neither the secret nor the payload ever reaches a log line.
    for line in adapter_log.iter().chain(stack.fulfilment.log().iter()) {
        assert!(!line.contains(STRIPE_SECRET), "secret in log: {line}");
        assert!(!line.contains("whsec_wrong"), "tried secret in log: {line}");
        assert!(!line.contains(PAYLOAD_MARKER), "payload in log: {line}");
    }
}
