//! The ingest and ops listeners: PaymentEventService only where the adapter
//! reaches it, health for Kubernetes probes, and Prometheus metrics that
//! count what the API did.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::v1::payment_event_service_client::PaymentEventServiceClient;
use fulfil_proto::v1::{
    CreateOrderRequest, GetOrderRequest, LineItem, PaymentEvent, RecordPaymentEventRequest,
    WatchOrderRequest,
};
use fulfilment::server::{self, Listeners, ServeOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

struct Ops {
    api: SocketAddr,
    ingest: SocketAddr,
    ops: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Ops {
    async fn start() -> Self {
        let (db, dir) = common::sqlite_database().await;
        let bind = || TcpListener::bind("127.0.0.1:0");
        let (api, ingest, ops) = (
            bind().await.expect("bind"),
            bind().await.expect("bind"),
            bind().await.expect("bind"),
        );
        let addrs = (
            api.local_addr().expect("addr"),
            ingest.local_addr().expect("addr"),
            ops.local_addr().expect("addr"),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            server::serve(
                Listeners {
                    api,
                    ingest: Some(ingest),
                    ops: Some(ops),
                },
                db,
                ServeOptions::default(),
                async move {
                    let _ = stopped.await;
                },
            )
            .await
            .expect("server failed");
        });
        Ops {
            api: addrs.0,
            ingest: addrs.1,
            ops: addrs.2,
            stop: Some(stop),
            server,
            _dir: dir,
        }
    }

    async fn channel(addr: SocketAddr) -> Channel {
        Channel::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }

    async fn get(&self, path: &str) -> (u16, String) {
        // reqwest is built without a default TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::get(format!("http://{}{path}", self.ops))
            .await
            .expect("ops request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// The value of one sample line (`name{labels} value`), if present.
    async fn sample(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    /// Waits (with a deadline) until `series` has `value`.
    async fn wait_for_sample(&self, series: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.sample(series).await;
            if now == Some(value) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} is {now:?}, expected {value}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.await.expect("server task");
    }
}

fn unmatched_event(event_id: &str) -> PaymentEvent {
    PaymentEvent {
        source: "stripe".into(),
        provider: "stripe".into(),
        event_id: event_id.into(),
        kind: Kind::PaymentSucceeded.into(),
        event_type: "payment_intent.succeeded".into(),
        order_ref: "no-such-order-yet".into(),
        payment_ref: "pi_ops".into(),
        amount: 100,
        currency: "EUR".into(),
        occur_time: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn payment_events_are_served_only_on_the_ingest_port() {
    let ops = Ops::start().await;
    let request = || RecordPaymentEventRequest {
        event: Some(unmatched_event("evt_ingest_1")),
    };
    let on_api = PaymentEventServiceClient::new(Ops::channel(ops.api).await)
        .record_payment_event(request())
        .await
        .expect_err("the API port must not serve PaymentEventService");
    assert_eq!(on_api.code(), Code::Unimplemented);
    PaymentEventServiceClient::new(Ops::channel(ops.ingest).await)
        .record_payment_event(request())
        .await
        .expect("the ingest port records events");
    let on_ingest = OrderServiceClient::new(Ops::channel(ops.ingest).await)
        .get_order(GetOrderRequest {
            order_id: "x".into(),
        })
        .await
        .expect_err("the ingest port must not serve OrderService");
    assert_eq!(on_ingest.code(), Code::Unimplemented);
    ops.stop().await;
}

#[tokio::test]
async fn ops_port_answers_kubernetes_probes() {
    let ops = Ops::start().await;
    let mut health = HealthClient::new(Ops::channel(ops.ops).await);
    for service in ["liveness", "", "fulfil.v1.OrderService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "service {service:?}");
    }
    assert_eq!(ops.get("/livez").await.0, 200);
    assert_eq!(ops.get("/readyz").await.0, 200);
    ops.stop().await;
}

#[tokio::test]
async fn metrics_count_calls_events_and_open_streams() {
    let ops = Ops::start().await;
    let mut orders = OrderServiceClient::new(Ops::channel(ops.api).await);
    let order = orders
        .create_order(CreateOrderRequest {
            customer_id: "user_ops".into(),
            currency: "eur".into(),
            line_items: vec![LineItem {
                sku: "tee".into(),
                quantity: 1,
                unit_amount: 100,
            }],
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner();
    let missing = orders
        .get_order(GetOrderRequest {
            order_id: "missing".into(),
        })
        .await
        .expect_err("no such order");
    assert_eq!(missing.code(), Code::NotFound);
    PaymentEventServiceClient::new(Ops::channel(ops.ingest).await)
        .record_payment_event(RecordPaymentEventRequest {
            event: Some(unmatched_event("evt_ops_1")),
        })
        .await
        .expect("record");

    ops.wait_for_sample(
        r#"fulfil_grpc_requests_total{service="fulfil.v1.OrderService",method="CreateOrder",code="OK"}"#,
        1.0,
    )
    .await;
    ops.wait_for_sample(
        r#"fulfil_grpc_requests_total{service="fulfil.v1.OrderService",method="GetOrder",code="NOT_FOUND"}"#,
        1.0,
    )
    .await;
    ops.wait_for_sample(
        r#"fulfil_payment_events_recorded_total{provider="stripe",outcome="UNMATCHED"}"#,
        1.0,
    )
    .await;
    ops.wait_for_sample("fulfil_unmatched_payment_events", 1.0)
        .await;
    let (_, text) = ops.get("/metrics").await;
    assert!(
        text.contains(r#"fulfil_grpc_request_duration_seconds_count{service="fulfil.v1.OrderService",method="CreateOrder"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"fulfil_db_connections{state="open"}"#),
        "{text}"
    );

    // An open stream counts while it is open, and stops counting when the
    // client goes away.
    let in_flight =
        r#"fulfil_grpc_calls_in_flight{service="fulfil.v1.OrderService",method="WatchOrder"}"#;
    let mut stream = orders
        .watch_order(WatchOrderRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .expect("watch")
        .into_inner();
    stream.message().await.expect("first message");
    ops.wait_for_sample(in_flight, 1.0).await;
    drop(stream);
    ops.wait_for_sample(in_flight, 0.0).await;
    ops.wait_for_sample(
        r#"fulfil_grpc_requests_total{service="fulfil.v1.OrderService",method="WatchOrder",code="CANCELLED"}"#,
        1.0,
    )
    .await;

    // Made-up methods share one label instead of growing the label set.
    let mut made_up = tonic::client::Grpc::new(Ops::channel(ops.api).await);
    made_up.ready().await.expect("ready");
    let codec = fulfil_proto::codec::CompactCodec::<GetOrderRequest, GetOrderRequest>::default();
    let unknown = made_up
        .unary(
            tonic::Request::new(GetOrderRequest::default()),
            "/fulfil.v1.OrderService/NoSuchMethod4711"
                .parse()
                .expect("path"),
            codec,
        )
        .await
        .expect_err("no such method");
    assert_eq!(unknown.code(), Code::Unimplemented);
    let (_, text) = ops.get("/metrics").await;
    assert!(!text.contains("NoSuchMethod4711"), "{text}");
    assert!(
        text.contains(r#"fulfil_grpc_requests_total{service="unknown",method="unknown",code="UNIMPLEMENTED"} 1"#),
        "{text}"
    );
    ops.stop().await;
}
