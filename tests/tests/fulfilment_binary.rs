//! The `fulfilment` binary as a newcomer uses it: start it, discover the API
//! by reflection, create, list and cancel an order, stop it, start it again.

use std::process::Stdio;

use fulfil_e2e::{binary, start_fulfilment};
use fulfil_proto::v1::order::State;
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::{
    CancelOrderRequest, CreateOrderRequest, GetOrderRequest, LineItem, ListOrdersRequest,
};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn order(customer_id: &str) -> CreateOrderRequest {
    CreateOrderRequest {
        customer_id: customer_id.into(),
        line_items: vec![LineItem {
            sku: "sku-1".into(),
            quantity: 1,
            unit_amount: 1999,
        }],
        currency: "usd".into(),
        ..Default::default()
    }
}

async fn reflected_services(channel: Channel) -> (Vec<String>, Vec<String>) {
    use tonic_reflection::pb::{v1, v1alpha};
    let mut v1_client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = v1_client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection v1 call")
        .into_inner();
    let mut v1_names = Vec::new();
    if let Some(Ok(response)) = responses.next().await
        && let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            response.message_response
    {
        v1_names = list.service.into_iter().map(|s| s.name).collect();
    }

    let mut alpha_client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses = alpha_client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection v1alpha call")
        .into_inner();
    let mut alpha_names = Vec::new();
    if let Some(Ok(response)) = responses.next().await
        && let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(
            list,
        )) = response.message_response
    {
        alpha_names = list.service.into_iter().map(|s| s.name).collect();
    }
    (v1_names, alpha_names)
}

#[tokio::test]
async fn newcomer_session_on_the_default_sqlite_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start_fulfilment(dir.path(), &[]).await;
    let url = format!("http://{}", service.addr);

    let channel = Channel::from_shared(url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel.clone());
    for name in ["", "fulfil.v1.OrderService"] {
        let status = health
            .check(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "health of {name:?}");
    }

    let (v1, v1alpha) = reflected_services(channel.clone()).await;
    for names in [&v1, &v1alpha] {
        assert!(
            names.iter().any(|n| n == "fulfil.v1.OrderService"),
            "reflection lists OrderService: {names:?}"
        );
        assert!(
            names.iter().any(|n| n == "grpc.health.v1.Health"),
            "reflection lists Health: {names:?}"
        );
    }

    let mut client = OrderServiceClient::connect(url.clone())
        .await
        .expect("order client");
    let created = client
        .create_order(order("newcomer"))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.state(), State::PendingPayment);
    assert_eq!(created.currency, "USD");

    let listed = client
        .list_orders(ListOrdersRequest {
            customer_id: "newcomer".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.orders, std::slice::from_ref(&created));

    let cancelled = client
        .cancel_order(CancelOrderRequest {
            order_id: created.order_id.clone(),
            ..Default::default()
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(cancelled.state(), State::Cancelled);

    let bad = client
        .create_order(CreateOrderRequest {
            currency: "xyz".into(),
            ..order("newcomer")
        })
        .await
        .expect_err("bad currency");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("currency"),
        "the message names the field: {}",
        bad.message()
    );

    let status = service.terminate().await;
    assert!(
        status.success(),
        "SIGTERM ends the server cleanly: {status:?}"
    );

    // The default database is a file in the working directory; a restart
    // finds the order where it was.
    assert!(dir.path().join("fulfil.db").exists());
    let service = start_fulfilment(dir.path(), &[]).await;
    let mut client = OrderServiceClient::connect(format!("http://{}", service.addr))
        .await
        .expect("reconnect");
    let after_restart = client
        .get_order(GetOrderRequest {
            order_id: created.order_id.clone(),
        })
        .await
        .expect("get after restart")
        .into_inner();
    assert_eq!(after_restart, cancelled);
    assert!(service.terminate().await.success());
}

#[tokio::test]
async fn migrate_subcommand_and_help() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let status = tokio::process::Command::new(binary("fulfilment"))
        .args(["migrate"])
        .env("FULFIL_DATABASE_URL", &url)
        .stdout(Stdio::null())
        .status()
        .await
        .expect("run migrate");
    assert!(status.success());
    assert!(dir.path().join("m.db").exists());

    let help = tokio::process::Command::new(binary("fulfilment"))
        .args(["serve", "--help"])
        .output()
        .await
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "FULFIL_GRPC_ADDR",
        "FULFIL_DATABASE_URL",
        "FULFIL_DB_MAX_CONNECTIONS",
        "FULFIL_WRITE_BATCH_MAX",
    ] {
        assert!(help.contains(var), "--help documents {var}");
    }

    let bad = tokio::process::Command::new(binary("fulfilment"))
        .args(["migrate"])
        .env("FULFIL_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("FULFIL_DB_ACQUIRE_TIMEOUT_MS", "2000")
        .output()
        .await
        .expect("run migrate");
    assert!(!bad.status.success(), "an unreachable database is an error");
}

/// A Python grpcio client with no .proto files, through reflection. Runs when
/// `FULFIL_TEST_CLIENTS` is set (CI sets it after installing
/// tests/clients/requirements.txt); fails, not skips, if Python or grpcio is
/// then missing.
#[tokio::test]
async fn python_grpcio_client_works_through_reflection() {
    if std::env::var_os("FULFIL_TEST_CLIENTS").is_none() {
        eprintln!("skipped: FULFIL_TEST_CLIENTS is not set");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start_fulfilment(dir.path(), &[]).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/grpcio_reflection.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg(service.addr.to_string())
        .output()
        .await
        .expect("run python3");
    assert!(
        output.status.success(),
        "python client failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let order: serde_json::Value = serde_json::from_slice(&output.stdout).expect("order JSON");
    assert_eq!(order["currency"], "GBP");
    assert_eq!(order["amount_total"], "2500");
    assert_eq!(order["state"], "PENDING_PAYMENT");
    assert!(service.terminate().await.success());
}

/// A gRPC-Web client (@connectrpc/connect-web under Node, as a browser app
/// would use it) creates, watches and cancels an order over HTTP/1.1; CORS
/// answers preflights for the configured origin only. Runs with
/// `FULFIL_TEST_CLIENTS` (CI installs tests/clients with npm).
#[tokio::test]
async fn grpc_web_client_creates_and_watches_an_order() {
    if std::env::var_os("FULFIL_TEST_CLIENTS").is_none() {
        eprintln!("skipped: FULFIL_TEST_CLIENTS is not set");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let service = start_fulfilment(
        dir.path(),
        &[("FULFIL_CORS_ORIGINS", "http://app.example".to_owned())],
    )
    .await;
    let base_url = format!("http://{}", service.addr);

    let http = fulfil_e2e::http();
    let preflight = |origin: &'static str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{base_url}/fulfil.v1.OrderService/CreateOrder"),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web")
        .send()
    };
    let allowed = preflight("http://app.example").await.expect("preflight");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://app.example")
    );
    let refused = preflight("http://evil.example").await.expect("preflight");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let descriptors = dir.path().join("fulfil.binpb");
    std::fs::write(&descriptors, fulfil_proto::FILE_DESCRIPTOR_SET).expect("write descriptors");
    let clients = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients");
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::process::Command::new("node")
            .arg(clients.join("grpc_web_client.mjs"))
            .arg(&base_url)
            .arg(&descriptors)
            .current_dir(&clients)
            .output(),
    )
    .await
    .expect("node finishes in time")
    .expect("run node");
    assert!(
        output.status.success(),
        "gRPC-Web client failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let seen: Vec<(i64, i64)> = result["seen"]
        .as_array()
        .expect("seen")
        .iter()
        .map(|c| {
            (
                c["version"].as_i64().unwrap_or(0),
                c["state"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let pending = State::PendingPayment as i64;
    let cancelled = State::Cancelled as i64;
    assert_eq!(
        seen,
        [(1, pending), (2, cancelled)],
        "the current order, then its cancellation"
    );
    assert!(service.terminate().await.success());
}

/// Two `fulfilment` processes on one PostgreSQL database (polling set to an
/// hour, so only LISTEN/NOTIFY can wake them): a subscriber of process A
/// sees an order created through process B. Runs when
/// `FULFIL_TEST_POSTGRES_URL` is set.
#[tokio::test]
async fn two_replica_processes_share_one_change_feed() {
    let Ok(url) = std::env::var("FULFIL_TEST_POSTGRES_URL") else {
        eprintln!("skipped: FULFIL_TEST_POSTGRES_URL is not set (`cargo test-pg` sets it)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let envs = [
        ("FULFIL_DATABASE_URL", url),
        ("FULFIL_FEED_POLL_MS", "3600000".to_owned()),
    ];
    let a = start_fulfilment(dir.path(), &envs).await;
    let b = start_fulfilment(dir.path(), &envs).await;
    let customer = format!("replica_{}", std::process::id());

    let mut on_a = OrderServiceClient::connect(format!("http://{}", a.addr))
        .await
        .expect("connect A");
    let mut stream = on_a
        .watch_orders(fulfil_proto::v1::WatchOrdersRequest {
            customer_id: customer.clone(),
            start: Some(fulfil_proto::v1::watch_orders_request::Start::FromNow(true)),
            ..Default::default()
        })
        .await
        .expect("watch on A")
        .into_inner();
    let mut on_b = OrderServiceClient::connect(format!("http://{}", b.addr))
        .await
        .expect("connect B");
    let created = on_b
        .create_order(order(&customer))
        .await
        .expect("create on B")
        .into_inner();

    let change = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let message = stream.next().await.expect("open").expect("message");
            if let Some(fulfil_proto::v1::watch_orders_response::Event::Change(change)) =
                message.event
            {
                return change;
            }
        }
    })
    .await
    .expect("the change reaches A in time");
    assert_eq!(change.order.map(|o| o.order_id), Some(created.order_id));
    assert!(a.terminate().await.success());
    assert!(b.terminate().await.success());
}
