//! The adapter's HTTP surface against a scripted fulfilment service: what
//! reaches the service, and how its answers become HTTP statuses.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapter::config::parse_sources;
use adapter::fulfilment_client::FulfilmentClient;
use adapter::server::{AppState, HttpLimits, serve};
use adapter::source::Sources;
use adapter::verify::sign;
use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::v1::payment_event_service_server::{
    PaymentEventService, PaymentEventServiceServer,
};
use fulfil_proto::v1::record_payment_event_response::Outcome;
use fulfil_proto::v1::{
    ListPaymentEventsRequest, ListPaymentEventsResponse, PaymentEvent,
    ReapplyUnmatchedEventsRequest, ReapplyUnmatchedEventsResponse, RecordPaymentEventRequest,
    RecordPaymentEventResponse,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::{Request, Response, Status};

const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PADDLE_SECRET: &str = "pdl_test_secret";

/// Answers by event id: "down…" UNAVAILABLE, "bad…" INVALID_ARGUMENT,
/// "cut…" the first time by cutting every connection ([`cutting_proxy`])
/// with the call in flight, "cancel…" the first time CANCELLED (what a call
/// gets when fulfilment is killed under it), anything else APPLIED; keeps
/// what it received.
#[derive(Default, Clone)]
struct Scripted {
    received: Arc<Mutex<Vec<PaymentEvent>>>,
    cut: Arc<tokio::sync::watch::Sender<u64>>,
    attempts: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl PaymentEventService for Scripted {
    async fn record_payment_event(
        &self,
        request: Request<RecordPaymentEventRequest>,
    ) -> Result<Response<RecordPaymentEventResponse>, Status> {
        let event = request.into_inner().event.unwrap_or_default();
        if event.event_id.starts_with("down") {
            return Err(Status::unavailable("database down"));
        }
        if event.event_id.starts_with("bad") {
            return Err(Status::invalid_argument("event.currency: required"));
        }
        let first_attempt = {
            let mut attempts = self.attempts.lock().expect("lock");
            let first = !attempts.contains(&event.event_id);
            attempts.push(event.event_id.clone());
            first
        };
        if event.event_id.starts_with("cut") && first_attempt {
            // As when fulfilment is killed mid-call: the connection goes,
            // and this call never answers.
            self.cut.send_modify(|generation| *generation += 1);
            std::future::pending::<()>().await;
        }
        if event.event_id.starts_with("cancel") && first_attempt {
            return Err(Status::cancelled("operation was canceled"));
        }
        self.received.lock().expect("lock").push(event);
        Ok(Response::new(RecordPaymentEventResponse {
            outcome: Outcome::Applied.into(),
            first_outcome: Outcome::Applied.into(),
            order: None,
        }))
    }

    async fn list_payment_events(
        &self,
        _: Request<ListPaymentEventsRequest>,
    ) -> Result<Response<ListPaymentEventsResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn reapply_unmatched_events(
        &self,
        _: Request<ReapplyUnmatchedEventsRequest>,
    ) -> Result<Response<ReapplyUnmatchedEventsResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }
}

struct Harness {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<PaymentEvent>>>,
    http: reqwest::Client,
}

async fn start() -> Harness {
    start_with(HttpLimits {
        body_limit: 64 * 1024,
        ..HttpLimits::default()
    })
    .await
}

async fn start_with(limits: HttpLimits) -> Harness {
    start_full(limits, false, Duration::from_millis(300)).await
}

/// Forwards TCP to `to`, and drops every connection it carries whenever
/// `cuts` changes.
async fn cutting_proxy(to: SocketAddr, cuts: tokio::sync::watch::Receiver<u64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let mut cuts = cuts.clone();
            cuts.mark_unchanged();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(to).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = cuts.changed() => {}
                }
            });
        }
    });
    addr
}

async fn start_full(limits: HttpLimits, through_proxy: bool, retry_budget: Duration) -> Harness {
    let scripted = Scripted::default();
    let received = scripted.received.clone();
    let cuts = scripted.cut.subscribe();
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut grpc_addr = grpc.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PaymentEventServiceServer::new(scripted))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(grpc)),
    );
    if through_proxy {
        grpc_addr = cutting_proxy(grpc_addr, cuts).await;
    }

    let sources = format!(
        r#"
        [sources.acme]
        kind = "standard"
        secrets = ["{STANDARD_SECRET}"]
        [sources.acme.mapping]
        event_type = "/type"
        order_ref = "/data/order"
        amount = "/data/amount"
        currency = "/data/currency"
        succeeded = ["charge.paid"]

        [sources.paddle]
        kind = "paddle"
        secrets = ["{PADDLE_SECRET}"]
        "#
    );
    let state = AppState::new(
        Sources::new(parse_sources(&sources, &|_| None).expect("sources")).expect("keys"),
        FulfilmentClient::new(
            &format!("http://{grpc_addr}"),
            Duration::from_secs(2),
            retry_budget,
        )
        .expect("client"),
        limits,
        adapter::metrics::Metrics::default(),
    );
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = http.local_addr().expect("addr");
    tokio::spawn(serve(http, state, std::future::pending()));
    let _ = rustls::crypto::ring::default_provider().install_default();
    Harness {
        addr,
        received,
        http: reqwest::Client::new(),
    }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("time")
}

impl Harness {
    async fn post_standard(
        &self,
        id: &str,
        body: &[u8],
    ) -> (u16, serde_json::Value, Option<String>) {
        let mut request = self
            .http
            .post(format!("http://{}/webhooks/acme", self.addr))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in sign::standard_headers(STANDARD_SECRET, id, now(), body).expect("sign")
        {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("post");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body =
            serde_json::from_slice(&response.bytes().await.expect("body")).unwrap_or_default();
        (status, body, retry_after)
    }
}

#[tokio::test]
async fn a_mapped_standard_webhook_reaches_the_service_whole() {
    let h = start().await;
    let body = br#"{"type":"charge.paid","data":{"order":"o-1","amount":1250,"currency":"usd"}}"#;
    let (status, answer, _) = h.post_standard("msg_1", body).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    let received = h.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 1);
    let event = &received[0];
    assert_eq!(
        (event.source.as_str(), event.provider.as_str()),
        ("acme", "standard")
    );
    assert_eq!(
        event.event_id, "msg_1",
        "the signed webhook-id is the dedupe key"
    );
    assert_eq!(event.kind(), Kind::PaymentSucceeded);
    assert_eq!(
        (
            event.order_ref.as_str(),
            event.amount,
            event.currency.as_str()
        ),
        ("o-1", 1250, "USD")
    );
    assert_eq!(
        event.payload,
        body.to_vec(),
        "the raw body travels byte for byte"
    );
}

#[tokio::test]
async fn an_unavailable_service_is_a_503_with_retry_after() {
    let h = start().await;
    let (status, answer, retry_after) = h
        .post_standard("down_1", br#"{"type":"charge.paid","data":{}}"#)
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["code"], "temporarily_unavailable");
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert!(
        !answer.to_string().contains("database down"),
        "internal errors stay internal"
    );
}

#[tokio::test]
async fn an_event_the_service_refuses_is_a_400() {
    let h = start().await;
    let (status, answer, _) = h
        .post_standard("bad_1", br#"{"type":"charge.paid","data":{}}"#)
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("event_refused")),
        "{answer}"
    );
}

#[tokio::test]
async fn paddle_uses_its_default_mapping_and_5_second_tolerance() {
    let h = start().await;
    let body = br#"{"event_id":"evt_p1","event_type":"transaction.completed","occurred_at":"2026-11-29T10:00:00Z",
        "data":{"id":"txn_1","currency_code":"EUR","custom_data":{"order_id":"o-9"},
        "details":{"totals":{"grand_total":"3900"}}}}"#;
    let send = |ts: i64| {
        h.http
            .post(format!("http://{}/webhooks/paddle", h.addr))
            .header("content-type", "application/json")
            .header(
                "paddle-signature",
                sign::paddle_header(PADDLE_SECRET, ts, body),
            )
            .body(body.to_vec())
            .send()
    };
    assert_eq!(
        send(now() - 60).await.expect("post").status().as_u16(),
        400,
        "a minute old is stale for Paddle"
    );
    assert_eq!(send(now()).await.expect("post").status().as_u16(), 200);
    let received = h.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 1);
    assert_eq!(
        (
            received[0].kind(),
            received[0].amount,
            received[0].order_ref.as_str()
        ),
        (Kind::PaymentSucceeded, 3900, "o-9")
    );
}

#[tokio::test]
async fn health_endpoints_answer() {
    let h = start().await;
    for path in ["healthz", "readyz"] {
        let response = h
            .http
            .get(format!("http://{}/{path}", h.addr))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    let response = h
        .http
        .get(format!("http://{}/nowhere", h.addr))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 404);
}

/// Everything the server sends until it closes the connection (a reset
/// counts as closed), within a deadline far beyond the configured timeouts.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
    received
}

/// Short timeouts for the one being tested, long ones for the others.
fn limits(f: impl FnOnce(&mut HttpLimits)) -> HttpLimits {
    let mut limits = HttpLimits {
        header_timeout: Duration::from_secs(600),
        body_timeout: Duration::from_secs(600),
        keep_alive_timeout: Duration::from_secs(600),
        ..HttpLimits::default()
    };
    f(&mut limits);
    limits
}

const SHORT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn idle_connections_are_closed_after_the_keep_alive_timeout() {
    let h = start_with(limits(|l| l.keep_alive_timeout = SHORT)).await;
    let mut silent = TcpStream::connect(h.addr).await.expect("connect");
    assert!(until_closed(&mut silent).await.is_empty());

    // After a response, a kept-alive connection gets the same time.
    let mut kept = TcpStream::connect(h.addr).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: adapter\r\n\r\n")
        .await
        .expect("write");
    let answer = String::from_utf8_lossy(&until_closed(&mut kept).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn half_a_request_head_is_closed_after_the_header_timeout() {
    let h = start_with(limits(|l| l.header_timeout = SHORT)).await;
    let mut slow = TcpStream::connect(h.addr).await.expect("connect");
    slow.write_all(b"POST /webhooks/acme HTTP/1.1\r\nHost: adapter\r\nContent-Ty")
        .await
        .expect("write");
    until_closed(&mut slow).await;
}

#[tokio::test]
async fn half_a_body_is_answered_408_and_closed() {
    let h = start_with(limits(|l| l.body_timeout = SHORT)).await;
    let mut slow = TcpStream::connect(h.addr).await.expect("connect");
    slow.write_all(
        b"POST /webhooks/acme HTTP/1.1\r\nHost: adapter\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":",
    )
    .await
    .expect("write");
    let answer = String::from_utf8_lossy(&until_closed(&mut slow).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(h.received.lock().expect("lock").is_empty());
}

async fn healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: adapter\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_connection_bound_holds_and_health_answers_once_a_place_is_free() {
    let h = start_with(limits(|l| l.max_connections = 2)).await;
    let held = [
        TcpStream::connect(h.addr).await.expect("connect"),
        TcpStream::connect(h.addr).await.expect("connect"),
    ];
    let mut third = TcpStream::connect(h.addr).await.expect("connect");
    let waiting = tokio::time::timeout(Duration::from_millis(500), healthz(&mut third)).await;
    assert!(
        waiting.is_err(),
        "a third connection is not served while two are open"
    );
    drop(held);
    let mut fourth = TcpStream::connect(h.addr).await.expect("connect");
    let answer = tokio::time::timeout(Duration::from_secs(20), healthz(&mut fourth))
        .await
        .expect("served once places are free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn bodies_beyond_the_memory_budget_get_503_and_health_still_answers() {
    let h = start_with(limits(|l| {
        l.body_limit = 1000;
        l.body_bytes_in_flight = 1000;
    }))
    .await;
    // One slow client reserves the whole budget with its declared length.
    let mut slow = TcpStream::connect(h.addr).await.expect("connect");
    slow.write_all(
        b"POST /webhooks/acme HTTP/1.1\r\nHost: adapter\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .expect("write");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (status, answer, retry_after) = loop {
        let answer = h
            .post_standard("msg_budget", br#"{"type":"charge.paid","data":{}}"#)
            .await;
        if answer.0 == 503 || tokio::time::Instant::now() > deadline {
            break answer;
        }
    };
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["code"], "overloaded");
    assert_eq!(retry_after.as_deref(), Some("5"));
    let mut probe = TcpStream::connect(h.addr).await.expect("connect");
    assert!(healthz(&mut probe).await.starts_with("HTTP/1.1 200"));
    drop(slow);
}

#[tokio::test]
async fn a_declared_length_above_the_limit_is_refused_before_the_body_arrives() {
    // The body timeout is long: an answer now can only come from the header.
    let h = start_with(limits(|l| l.body_limit = 1024 * 1024)).await;
    let mut client = TcpStream::connect(h.addr).await.expect("connect");
    client
        .write_all(
            b"POST /webhooks/acme HTTP/1.1\r\nHost: adapter\r\nContent-Type: application/json\r\nContent-Length: 5242880\r\n\r\n{",
        )
        .await
        .expect("write");
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(20), client.read(&mut answer))
        .await
        .expect("answered at once")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    // The unread body makes the connection unusable: a pooling client must
    // be told, or it sends its next request into our close.
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

#[tokio::test]
async fn calls_cut_off_or_cancelled_in_flight_are_retried_and_recorded_once() {
    let h = start_full(HttpLimits::default(), true, Duration::from_secs(8)).await;
    for id in ["cut_1", "cancel_1"] {
        let body =
            br#"{"type":"charge.paid","data":{"order":"o-cut","amount":500,"currency":"eur"}}"#;
        let (status, answer, _) = h.post_standard(id, body).await;
        assert_eq!(
            (status, answer["outcome"].as_str()),
            (200, Some("applied")),
            "{id}: {answer}"
        );
    }
    let received: Vec<String> = h
        .received
        .lock()
        .expect("lock")
        .iter()
        .map(|event| event.event_id.clone())
        .collect();
    assert_eq!(received, ["cut_1", "cancel_1"]);
}
