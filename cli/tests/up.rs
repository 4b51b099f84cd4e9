//! `fulfil up` and `fulfil trigger` as a newcomer uses them: start the whole
//! stack, create an order, send signed test webhooks, see the order paid.

use std::process::Stdio;
use std::time::Duration;

use fulfil_proto::v1::order::State;
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::{CreateOrderRequest, GetOrderRequest, LineItem};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const FULFIL: &str = env!("CARGO_BIN_EXE_fulfil");

/// The URL that follows `label` on a banner line.
fn url_after(line: &str, label: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix(label)?;
    rest.split_whitespace()
        .next()
        .map(|url| url.trim_end_matches("/webhooks/SOURCE").to_owned())
}

async fn trigger(dir: &std::path::Path, adapter: &str, args: &[&str]) -> std::process::Output {
    Command::new(FULFIL)
        .arg("trigger")
        .args(args)
        .args(["--adapter-url", adapter])
        .current_dir(dir)
        .output()
        .await
        .expect("run trigger")
}

#[tokio::test]
async fn up_then_trigger_pays_an_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut up = Command::new(FULFIL)
        .args([
            "up",
            "--grpc-addr",
            "127.0.0.1:0",
            "--adapter-addr",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start fulfil up");
    let mut lines = BufReader::new(up.stdout.take().expect("stdout")).lines();
    let (grpc, adapter) = tokio::time::timeout(Duration::from_secs(30), async {
        let (mut grpc, mut adapter) = (None, None);
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[up] {line}");
            grpc = grpc.or_else(|| url_after(&line, "gRPC"));
            adapter = adapter.or_else(|| url_after(&line, "webhooks"));
            if line.contains("stop: Ctrl-C") {
                break;
            }
        }
        (grpc, adapter)
    })
    .await
    .expect("banner in time");
    let (grpc, adapter) = (
        grpc.expect("gRPC URL printed"),
        adapter.expect("webhook URL printed"),
    );
    let sources = std::fs::read_to_string(dir.path().join("fulfil-sources.toml"))
        .expect("sources file written");
    assert!(sources.contains("whsec_"), "secrets generated");

    let grpc_url = grpc.clone();
    let mut orders = OrderServiceClient::connect(grpc).await.expect("connect");
    let order = orders
        .create_order(CreateOrderRequest {
            customer_id: "newcomer".into(),
            line_items: vec![LineItem {
                sku: "tee".into(),
                quantity: 1,
                unit_amount: 3900,
            }],
            currency: "eur".into(),
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner();

    let sent = trigger(
        dir.path(),
        &adapter,
        &[
            "stripe",
            "payment_intent.succeeded",
            "--order-id",
            &order.order_id,
            "--amount",
            "3900",
            "--currency",
            "eur",
        ],
    )
    .await;
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(String::from_utf8_lossy(&sent.stdout).contains("applied"));
    let paid = orders
        .get_order(GetOrderRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(paid.state(), State::Paid);

    // `fulfil watch` prints the order's current state first.
    let mut watch = Command::new(FULFIL)
        .args([
            "watch",
            "--order-id",
            &order.order_id,
            "--grpc-url",
            &grpc_url,
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start fulfil watch");
    let mut watched = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), watched.next_line())
        .await
        .expect("a line in time")
        .expect("read")
        .expect("a line");
    assert!(
        first.contains(&order.order_id) && first.contains("PAID"),
        "{first}"
    );
    drop(watch);

    for (source, kind) in [
        ("revenuecat", "INITIAL_PURCHASE"),
        ("glassfy", "5001"),
        ("standard", "payment.failed"),
        ("paddle", "transaction.completed"),
    ] {
        let sent = trigger(dir.path(), &adapter, &[source, kind]).await;
        assert!(
            sent.status.success(),
            "{source} {kind}: {}{}",
            String::from_utf8_lossy(&sent.stdout),
            String::from_utf8_lossy(&sent.stderr)
        );
    }
    let unsupported = trigger(dir.path(), &adapter, &["stripe", "no.such.type"]).await;
    assert!(!unsupported.status.success());

    let pid = up.id().expect("running");
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    let status = tokio::time::timeout(Duration::from_secs(30), up.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert!(status.success());
}
