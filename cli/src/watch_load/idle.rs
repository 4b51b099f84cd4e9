//! `watch-load idle`: open many idle `WatchOrder` streams and report what
//! they cost the server in resident memory.

use std::time::{Duration, Instant};

use clap::Args;
use fulfil_proto::v1::WatchOrderRequest;

use super::{Target, create_orders};

/// Options of `watch-load idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Streams to open (one per order).
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    per_connection: usize,
    /// Process id of the fulfilment service, to read its memory.
    #[arg(long)]
    server_pid: u32,
    /// How long to hold the streams open before measuring, in seconds.
    #[arg(long, default_value_t = 5)]
    hold: u64,
    #[command(flatten)]
    target: Target,
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
pub async fn run(args: IdleArgs) -> anyhow::Result<()> {
    let client = args.target.connect().await?;
    let orders = create_orders(&client, args.streams, "watch_idle").await?;
    let before = rss_kib(args.server_pid)?;
    let started = Instant::now();
    let mut streams = Vec::with_capacity(args.streams);
    for chunk in orders.chunks(args.per_connection.max(1)) {
        let mut client = args.target.connect().await?;
        for (order_id, _) in chunk {
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
