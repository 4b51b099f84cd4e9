//! `watch-load latency`: change orders at a fixed rate while each one is
//! watched by its own `WatchOrder` stream and a few `WatchOrders` streams see
//! every change; report the commit-to-subscriber latency of each kind.
//!
//! Changes are payment events recorded straight over gRPC (each a new
//! payment of an existing order), so the adapter is not in the measurement.
//! Latency is the subscriber's receive time minus the change's
//! `commit_time`, which the server stamps when the write batch starts; the
//! figure therefore also includes the batch's own database time. Client and
//! server must share a clock (run both on one machine).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::v1::payment_event_service_client::PaymentEventServiceClient;
use fulfil_proto::v1::record_payment_event_response::Outcome;
use fulfil_proto::v1::watch_orders_request::Start;
use fulfil_proto::v1::{
    OrderChange, PaymentEvent, RecordPaymentEventRequest, WatchOrderRequest, WatchOrdersRequest,
    watch_order_response, watch_orders_response,
};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tonic::transport::Endpoint;

use super::{Percentiles, Target, create_orders};

/// Options of `watch-load latency`.
#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Orders to change (each watched by one WatchOrder stream).
    #[arg(long, default_value_t = 1000)]
    orders: usize,
    /// WatchOrders streams that see every change.
    #[arg(long, default_value_t = 10)]
    watch_all: usize,
    /// Order changes per second, spread evenly over the orders.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// How long to change orders, in seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Subscriber streams per HTTP/2 connection.
    #[arg(long, default_value_t = 100)]
    per_connection: usize,
    #[command(flatten)]
    target: Target,
}

/// Messages received by each kind of subscriber.
#[derive(Default)]
struct Received {
    watch_order: AtomicU64,
    watch_orders: AtomicU64,
}

/// One change as a subscriber saw it.
struct Seen {
    order_id: String,
    version: i64,
    received: Instant,
    /// Receive time minus the change's `commit_time`.
    since_commit: Duration,
}

fn seen(change: OrderChange) -> Option<Seen> {
    let commit = change.commit_time?;
    let commit = SystemTime::UNIX_EPOCH + Duration::new(commit.seconds as u64, commit.nanos as u32);
    let order = change.order?;
    Some(Seen {
        order_id: order.order_id,
        version: order.version,
        received: Instant::now(),
        since_commit: SystemTime::now().duration_since(commit).unwrap_or_default(),
    })
}

/// When the writer's answer for each (order, version) reached the client.
type Answers = HashMap<(String, i64), Instant>;

/// Prints both views of one subscriber kind's samples.
fn report(label: &str, seen: &[Seen], answers: &Answers, expected: u64) {
    let mut since_commit: Vec<Duration> = seen.iter().map(|s| s.since_commit).collect();
    println!(
        "{label:<12} since commit_time   {}  ({} of {expected} expected)",
        Percentiles::of(&mut since_commit),
        seen.len()
    );
    let mut since_answer: Vec<Duration> = seen
        .iter()
        .filter_map(|s| {
            let answered = answers.get(&(s.order_id.clone(), s.version))?;
            Some(s.received.saturating_duration_since(*answered))
        })
        .collect();
    println!(
        "{label:<12} since the answer    {}",
        Percentiles::of(&mut since_answer)
    );
}

/// Runs the scenario and prints the figures.
pub async fn run(args: LatencyArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.orders > 0 && args.rate > 0,
        "orders and rate must be positive"
    );
    let client = args.target.connect().await?;
    let orders = create_orders(&client, args.orders, "watch_latency").await?;
    let received = Arc::new(Received::default());
    let (stop_tx, stop) = watch::channel(false);
    let mut subscribers: JoinSet<anyhow::Result<(bool, Vec<Seen>)>> = JoinSet::new();

    eprintln!(
        "opening {} WatchOrder and {} WatchOrders streams...",
        orders.len(),
        args.watch_all
    );
    for chunk in orders.chunks(args.per_connection.max(1)) {
        let mut client = args.target.connect().await?;
        for (order_id, _) in chunk {
            let mut stream = client
                .watch_order(WatchOrderRequest {
                    order_id: order_id.clone(),
                })
                .await?
                .into_inner();
            // The first message is the order as it is now, not a change.
            stream
                .message()
                .await?
                .ok_or_else(|| anyhow::anyhow!("stream ended"))?;
            let (mut stop, received) = (stop.clone(), received.clone());
            subscribers.spawn(async move {
                let mut samples = Vec::new();
                loop {
                    tokio::select! {
                        _ = stop.changed() => return Ok((false, samples)),
                        message = stream.message() => match message?.and_then(|m| m.event) {
                            Some(watch_order_response::Event::Change(change)) => {
                                samples.extend(seen(change));
                                received.watch_order.fetch_add(1, Ordering::Relaxed);
                            }
                            Some(watch_order_response::Event::Progress(_)) => {}
                            None => anyhow::bail!("WatchOrder stream ended"),
                        },
                    }
                }
            });
        }
    }
    for _ in 0..args.watch_all {
        let mut client = args.target.connect().await?;
        let mut stream = client
            .watch_orders(WatchOrdersRequest {
                start: Some(Start::FromNow(true)),
                ..Default::default()
            })
            .await?
            .into_inner();
        let (mut stop, received) = (stop.clone(), received.clone());
        subscribers.spawn(async move {
            let mut samples = Vec::new();
            loop {
                tokio::select! {
                    _ = stop.changed() => return Ok((true, samples)),
                    message = stream.message() => match message?.and_then(|m| m.event) {
                        Some(watch_orders_response::Event::Change(change)) => {
                            samples.extend(seen(change));
                            received.watch_orders.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(watch_orders_response::Event::Progress(_)) => {}
                        None => anyhow::bail!("WatchOrders stream ended"),
                    },
                }
            }
        });
    }

    let total = u64::from(args.rate) * args.duration;
    eprintln!(
        "changing orders: {} per second for {} s ({total} changes)...",
        args.rate, args.duration
    );
    let answers = drive(&args, &orders, total).await?;
    let applied = answers.len() as u64;

    // Wait (with a deadline) for every subscriber to see every change.
    let expected_one = applied;
    let expected_all = applied * args.watch_all as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (received.watch_order.load(Ordering::Relaxed) < expected_one
        || received.watch_orders.load(Ordering::Relaxed) < expected_all)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let (mut one, mut all) = (Vec::new(), Vec::new());
    while let Some(done) = subscribers.join_next().await {
        let (is_all, samples) = done??;
        if is_all { &mut all } else { &mut one }.extend(samples);
    }
    println!("changes      {applied} applied of {total} sent");
    report("WatchOrder", &one, &answers, expected_one);
    report("WatchOrders", &all, &answers, expected_all);
    Ok(())
}

/// Records `total` payment events at `args.rate` per second, round-robin over
/// the orders; returns when each resulting order version was answered.
async fn drive(
    args: &LatencyArgs,
    orders: &[(String, i64)],
    total: u64,
) -> anyhow::Result<Answers> {
    let channel = Endpoint::from_shared(args.target.grpc_url.clone())?
        .tcp_nodelay(true)
        .connect()
        .await?;
    let client = PaymentEventServiceClient::new(channel);
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let in_flight = Arc::new(Semaphore::new(512));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = JoinSet::new();
    let mut applied = Answers::new();
    let mut took_all = Vec::with_capacity(total as usize);
    let started = Instant::now();
    for i in 0..total {
        ticker.tick().await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (order_id, amount) = &orders[i as usize % orders.len()];
        let event = PaymentEvent {
            source: "watch-load".into(),
            provider: "stripe".into(),
            event_id: format!("evt_{run_id}_{i}"),
            kind: Kind::PaymentSucceeded.into(),
            event_type: "payment_intent.succeeded".into(),
            order_ref: order_id.clone(),
            payment_ref: format!("pi_{run_id}_{i}"),
            amount: *amount,
            currency: "EUR".into(),
            occur_time: Some(prost_types::Timestamp {
                seconds: 1_800_000_000 + i as i64,
                nanos: 0,
            }),
            ..Default::default()
        };
        let mut client = client.clone();
        calls.spawn(async move {
            let sent = Instant::now();
            let response = client
                .record_payment_event(RecordPaymentEventRequest { event: Some(event) })
                .await;
            drop(permit);
            let response = response?.into_inner();
            let answered = Instant::now();
            let changed = (response.outcome() == Outcome::Applied)
                .then(|| response.order.map(|o| (o.order_id, o.version)))
                .flatten();
            anyhow::Ok((changed, answered, answered - sent))
        });
        while let Some(done) = calls.try_join_next() {
            let (changed, answered, took) = done??;
            applied.extend(changed.map(|key| (key, answered)));
            took_all.push(took);
        }
    }
    let sent = started.elapsed().as_secs_f64();
    while let Some(done) = calls.join_next().await {
        let (changed, answered, took) = done??;
        applied.extend(changed.map(|key| (key, answered)));
        took_all.push(took);
    }
    eprintln!(
        "sent in {sent:.1} s ({:.0} per second)",
        total as f64 / sent
    );
    println!(
        "recorded     {}  (answer to RecordPaymentEvent, i.e. after commit)",
        Percentiles::of(&mut took_all)
    );
    Ok(applied)
}
