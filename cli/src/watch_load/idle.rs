//! `fulfil watch-load`: open many idle `WatchOrder` streams against a
//! running fulfilment service and report what they cost it in memory.

use std::time::{Duration, Instant};

use clap::Args;
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::{CreateOrderRequest, LineItem, WatchOrderRequest};
use tonic::transport::Endpoint;

/// Options of `watch-load`.
#[derive(Debug, Args)]
pub struct WatchLoadArgs {
    /// Streams to open (one per order).
    #[arg(long, default_value_t = 10_000)]
    pub streams: usize,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    pub per_connection: usize,
    /// Process id of the fulfilment service, to read its memory.
    #[arg(long)]
    pub server_pid: u32,
    /// How long to hold the streams open before measuring, in seconds.
    #[arg(long, default_value_t = 5)]
    pub hold: u64,
    /// The fulfilment service.
    #[arg(
        long,
        env = "FULFIL_GRPC_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub grpc_url: String,
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))
}

/// Opens the streams, waits for each one's first message, holds, measures.
pub async fn run(args: WatchLoadArgs) -> anyhow::Result<()> {
    let mut client = OrderServiceClient::connect(args.grpc_url.clone()).await?;
    eprintln!("creating {} orders...", args.streams);
    let mut ids = Vec::with_capacity(args.streams);
    for i in 0..args.streams {
        let order = client
            .create_order(CreateOrderRequest {
                customer_id: format!("watch_load_{}", i % 100),
                line_items: vec![LineItem {
                    sku: "w".into(),
                    quantity: 1,
                    unit_amount: 100,
                }],
                currency: "eur".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        ids.push(order.order_id);
    }
    let before = rss_kib(args.server_pid)?;
    let started = Instant::now();
    let mut streams = Vec::with_capacity(args.streams);
    for chunk in ids.chunks(args.per_connection.max(1)) {
        let channel = Endpoint::from_shared(args.grpc_url.clone())?
            .connect()
            .await?;
        let mut client = OrderServiceClient::new(channel);
        for order_id in chunk {
            let mut stream = client
                .watch_order(WatchOrderRequest {
                    order_id: order_id.clone(),
                })
                .await?
                .into_inner();
            stream
                .message()
                .await?
                .ok_or_else(|| anyhow::anyhow!("stream ended"))?;
            streams.push(stream);
        }
    }
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let after = rss_kib(args.server_pid)?;
    let per_stream = after.saturating_sub(before) as f64 * 1024.0 / streams.len().max(1) as f64;
    println!(
        "streams     {} open ({} per connection), opened in {:.2} s",
        streams.len(),
        args.per_connection,
        opened.as_secs_f64()
    );
    println!("server RSS  {before} KiB before, {after} KiB with the streams open");
    println!(
        "per stream  {:.0} bytes ({:.2} KiB)",
        per_stream,
        per_stream / 1024.0
    );
    drop(streams);
    Ok(())
}
