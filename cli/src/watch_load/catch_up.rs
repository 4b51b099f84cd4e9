//! `watch-load catch-up`: one `WatchOrders` subscriber replays the whole
//! retained history from the beginning; report how fast it arrives.

use std::time::{Duration, Instant};

use clap::Args;
use fulfil_proto::v1::watch_orders_request::Start;
use fulfil_proto::v1::{WatchOrdersRequest, watch_orders_response};
use prost::Message;

use super::Target;

/// Options of `watch-load catch-up`.
#[derive(Debug, Args)]
pub struct CatchUpArgs {
    /// Stop after this many changes (default: when the stream goes quiet).
    #[arg(long)]
    expect: Option<u64>,
    /// The stream counts as caught up after this long without a change, in ms.
    #[arg(long, default_value_t = 2000)]
    quiet_ms: u64,
    #[command(flatten)]
    target: Target,
}

/// Replays and prints the rate.
pub async fn run(args: CatchUpArgs) -> anyhow::Result<()> {
    let mut client = args.target.connect().await?;
    let started = Instant::now();
    let mut stream = client
        .watch_orders(WatchOrdersRequest {
            start: Some(Start::FromBeginning(true)),
            ..Default::default()
        })
        .await?
        .into_inner();
    let (mut changes, mut bytes) = (0u64, 0usize);
    let mut last = started;
    let mut first: Option<Duration> = None;
    let quiet = Duration::from_millis(args.quiet_ms);
    loop {
        if args.expect.is_some_and(|n| changes >= n) {
            break;
        }
        let message = match tokio::time::timeout(quiet, stream.message()).await {
            Ok(message) => message?,
            Err(_) => break,
        };
        let Some(message) = message else { break };
        bytes += message.encoded_len();
        if let Some(watch_orders_response::Event::Change(_)) = message.event {
            changes += 1;
            last = Instant::now();
            first.get_or_insert_with(|| started.elapsed());
            if changes % 100_000 == 0 {
                eprintln!(
                    "{changes} changes after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let elapsed = last.duration_since(started).as_secs_f64();
    println!(
        "replayed    {changes} changes ({:.1} MiB of messages) in {elapsed:.2} s",
        bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "first       after {:.1} ms",
        first.unwrap_or_default().as_secs_f64() * 1000.0
    );
    println!(
        "rate        {:.0} changes per second",
        changes as f64 / elapsed.max(1e-9)
    );
    Ok(())
}
