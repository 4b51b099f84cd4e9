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

/// A running `fulfil up`: its URLs, and its log lines (stderr) as they come.
struct Up {
    process: tokio::process::Child,
    grpc: String,
    adapter: String,
    log: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Up {
    /// Starts `fulfil up` on free ports in `dir` and waits for its banner.
    async fn start(dir: &std::path::Path) -> Up {
        let mut process = Command::new(FULFIL)
            .args([
                "up",
                "--grpc-addr",
                "127.0.0.1:0",
                "--adapter-addr",
                "127.0.0.1:0",
            ])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start fulfil up");
        // Read on, so a chatty log never fills the pipe and stalls it.
        let (log_tx, log) = tokio::sync::mpsc::unbounded_channel();
        let mut stderr = BufReader::new(process.stderr.take().expect("stderr")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                eprintln!("[up log] {line}");
                let _ = log_tx.send(line);
            }
        });
        let mut lines = BufReader::new(process.stdout.take().expect("stdout")).lines();
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
        Up {
            process,
            grpc: grpc.expect("gRPC URL printed"),
            adapter: adapter.expect("webhook URL printed"),
            log,
        }
    }

    /// SIGTERM, then a clean exit.
    async fn stop(mut self) {
        let pid = self.process.id().expect("running");
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        let status = tokio::time::timeout(Duration::from_secs(30), self.process.wait())
            .await
            .expect("exits")
            .expect("wait");
        assert!(status.success());
    }
}

#[tokio::test]
async fn up_then_trigger_pays_an_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let up = Up::start(dir.path()).await;
    let (grpc, adapter) = (up.grpc.clone(), up.adapter.clone());
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

    up.stop().await;
}

/// POSTs `body` as JSON to `url` (`http://host:port/path`) without any
/// signature; the status and the JSON answer.
async fn post_unsigned(url: &str, body: &str) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let (_, json) = answer.split_once("\r\n\r\n").expect("a body");
    (status, serde_json::from_str(json).expect("a JSON answer"))
}

#[tokio::test]
async fn a_refused_webhook_is_printed_with_its_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut up = Up::start(dir.path()).await;
    let (status, answer) = post_unsigned(
        &format!("{}/webhooks/stripe", up.adapter),
        r#"{"id": "evt_unsigned", "type": "payment_intent.succeeded"}"#,
    )
    .await;
    assert!((400..500).contains(&status), "{status} {answer}");
    let code = answer["code"].as_str().expect("an error code").to_owned();
    let line = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = up.log.recv().await.expect("log open");
            if line.contains("webhook refused") {
                return line;
            }
        }
    })
    .await
    .expect("a refusal line");
    assert!(
        line.contains(&format!("status={status}")) && line.contains(&format!("code={code}")),
        "{line}"
    );
    up.stop().await;
}
