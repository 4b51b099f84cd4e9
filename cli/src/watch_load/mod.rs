//! `fulfil watch-load`: measure order streams against a running fulfilment
//! service. Three scenarios, each printing its figures:
//! - `idle`: many idle `WatchOrder` streams, and what they cost in memory;
//! - `latency`: a steady rate of order changes with one `WatchOrder` per
//!   order plus some `WatchOrders` that see everything, and the
//!   commit-to-subscriber latency;
//! - `catch-up`: how fast one `WatchOrders` subscriber replays the retained
//!   history (after `seed` has made it large).

mod catch_up;
mod idle;
mod latency;
mod seed;

use std::time::Duration;

use clap::{Args, Subcommand};
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use fulfil_proto::v1::{CreateOrderRequest, LineItem};
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

/// Options of `watch-load`.
#[derive(Debug, Args)]
pub struct WatchLoadArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Open many idle WatchOrder streams and report their memory cost.
    Idle(idle::IdleArgs),
    /// Change orders at a fixed rate while they are watched; report latency.
    Latency(latency::LatencyArgs),
    /// Grow the retained change history (for catch-up) by copying changes.
    Seed(seed::SeedArgs),
    /// Replay the whole retained history with one subscriber; report its rate.
    CatchUp(catch_up::CatchUpArgs),
}

/// Runs the chosen scenario.
pub async fn run(args: WatchLoadArgs) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Idle(args) => idle::run(args).await,
        Scenario::Latency(args) => latency::run(args).await,
        Scenario::Seed(args) => seed::run(args).await,
        Scenario::CatchUp(args) => catch_up::run(args).await,
    }
}

/// Where the fulfilment service listens.
#[derive(Debug, Args)]
struct Target {
    /// The fulfilment service.
    #[arg(
        long,
        env = "FULFIL_GRPC_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    grpc_url: String,
}

impl Target {
    /// A new HTTP/2 connection (streams multiplex over it).
    async fn connect(&self) -> anyhow::Result<OrderServiceClient<Channel>> {
        let channel = Endpoint::from_shared(self.grpc_url.clone())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        Ok(OrderServiceClient::new(channel))
    }
}

/// Creates `count` orders, 32 at a time, and returns their ids and totals.
async fn create_orders(
    client: &OrderServiceClient<Channel>,
    count: usize,
    prefix: &str,
) -> anyhow::Result<Vec<(String, i64)>> {
    eprintln!("creating {count} orders...");
    let mut created = Vec::with_capacity(count);
    let mut tasks = JoinSet::new();
    for i in 0..count {
        if tasks.len() >= 32
            && let Some(done) = tasks.join_next().await
        {
            created.push(done??);
        }
        let mut client = client.clone();
        let customer_id = format!("{prefix}_{}", i % 100);
        tasks.spawn(async move {
            let order = client
                .create_order(CreateOrderRequest {
                    customer_id,
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
            anyhow::Ok((order.order_id, order.amount_total))
        });
    }
    while let Some(done) = tasks.join_next().await {
        created.push(done??);
    }
    Ok(created)
}

/// Latency percentiles of a set of samples, in milliseconds.
struct Percentiles {
    count: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let at = |q: f64| {
            if samples.is_empty() {
                return 0.0;
            }
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1000.0
        };
        Self {
            count: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>8} messages  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
            self.count, self.p50, self.p90, self.p99, self.max
        )
    }
}
