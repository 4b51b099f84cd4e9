//! `fulfil load`: send unique, freshly signed, realistic webhooks at a fixed
//! concurrency for a fixed time to a running adapter, optionally with a
//! share of duplicates, and print throughput, latency percentiles and the
//! count of each status. Bounded in time and count; loopback use only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use fulfil_proto::v1::CreateOrderRequest;
use fulfil_proto::v1::LineItem;
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use rand::Rng;

use crate::{dev_sources, events, signing};

/// Options of `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Source to send to (stripe, standard, paddle, revenuecat, glassfy).
    #[arg(long, default_value = "stripe")]
    pub source: String,
    /// Event type to send (default: the kind's payment success).
    #[arg(long)]
    pub event_type: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Stop after this many requests even if time remains.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_requests: u64,
    /// Share of requests that repeat an earlier event (0.0-1.0).
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Orders to create first and spread events over (0: events name no order).
    #[arg(long, default_value_t = 1000)]
    pub orders: usize,
    /// The adapter.
    #[arg(
        long,
        env = "FULFIL_ADAPTER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub adapter_url: String,
    /// The fulfilment service (to create the orders).
    #[arg(
        long,
        env = "FULFIL_GRPC_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub grpc_url: String,
    /// The sources file holding the secrets.
    #[arg(long, env = "FULFIL_SOURCES", default_value = dev_sources::DEFAULT_PATH)]
    pub sources: PathBuf,
}

const AMOUNT: i64 = 1099;

// Markers in a body built once, replaced per request: rebuilding realistic
// JSON for every request would make the load tool, not the server, the
// bottleneck on a shared machine.
const EVENT_MARK: &str = "EVENTMARKER7Q";
const ORDER_MARK: &str = "ORDERMARKER7Q";
const PAYMENT_MARK: &str = "PAYMENTMARKER7Q";
const TIME_MARK: i64 = 4_102_444_799;

/// A body with markers for the per-request fields.
struct Template(String);

impl Template {
    fn new(kind: fulfil_proto::Provider, event_type: &str) -> anyhow::Result<Self> {
        let params = events::Params {
            event_id: EVENT_MARK.into(),
            order_id: ORDER_MARK.into(),
            amount: AMOUNT,
            currency: "eur".into(),
            payment_ref: PAYMENT_MARK.into(),
            customer: "load_user".into(),
            product: "pro_monthly".into(),
            entitlement: "pro".into(),
            now: TIME_MARK,
        };
        Ok(Template(String::from_utf8(events::build(
            kind, event_type, &params,
        )?)?))
    }

    fn render(&self, event_id: &str, order_id: &str, payment_ref: &str, now: i64) -> Vec<u8> {
        self.0
            .replace(EVENT_MARK, event_id)
            .replace(ORDER_MARK, order_id)
            .replace(PAYMENT_MARK, payment_ref)
            .replace(&TIME_MARK.to_string(), &now.to_string())
            .into_bytes()
    }
}

struct WorkerResult {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<String, u64>,
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    Duration::from_micros(sorted[rank.min(sorted.len() - 1)])
}

async fn create_orders(url: &str, count: usize, currency: &str) -> anyhow::Result<Vec<String>> {
    let mut client = OrderServiceClient::connect(url.to_owned()).await?;
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let order = client
            .create_order(CreateOrderRequest {
                customer_id: format!("load_customer_{}", i % 100),
                line_items: vec![LineItem {
                    sku: "load-sku".into(),
                    quantity: 1,
                    unit_amount: AMOUNT,
                }],
                currency: currency.into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        ids.push(order.order_id);
    }
    Ok(ids)
}

/// Runs the load and prints the report.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let text = dev_sources::load(&args.sources)?;
    let sources = adapter::config::parse_sources(&text, &|var| std::env::var(var).ok())?;
    let source = sources
        .into_iter()
        .find(|s| s.name == args.source)
        .ok_or_else(|| anyhow::anyhow!("no source {:?}", args.source))?;
    let kind = source.file.kind;
    let event_type = args
        .event_type
        .clone()
        .or_else(|| events::supported(kind).first().map(|t| (*t).to_owned()))
        .ok_or_else(|| anyhow::anyhow!("source kind {kind:?} cannot be load-tested"))?;
    let currency = "eur".to_owned();

    let orders = if args.orders > 0 {
        eprintln!("creating {} orders...", args.orders);
        create_orders(&args.grpc_url, args.orders, &currency).await?
    } else {
        Vec::new()
    };
    let url = format!(
        "{}/webhooks/{}",
        args.adapter_url.trim_end_matches('/'),
        source.name
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let per_worker = args.max_requests.div_ceil(args.concurrency.max(1) as u64);
    eprintln!(
        "sending {event_type} to {url}: concurrency {}, {} s, {:.0}% duplicates",
        args.concurrency,
        args.duration,
        args.duplicates * 100.0
    );

    let template = std::sync::Arc::new(Template::new(kind, &event_type)?);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency.max(1) {
        let client = client.clone();
        let url = url.clone();
        let source = source.clone();
        let template = template.clone();
        let orders = orders.clone();
        let duplicates = args.duplicates;
        workers.push(tokio::spawn(async move {
            let mut result = WorkerResult {
                latencies_us: Vec::new(),
                statuses: BTreeMap::new(),
            };
            let mut sent_ids: Vec<(String, String)> = Vec::new();
            let mut n: u64 = 0;
            while Instant::now() < deadline && n < per_worker {
                let now = i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_secs(),
                )?;
                let repeat =
                    !sent_ids.is_empty() && rand::rng().random_bool(duplicates.clamp(0.0, 1.0));
                let (event_id, order_id) = if repeat {
                    sent_ids[rand::rng().random_range(0..sent_ids.len())].clone()
                } else {
                    let order_id = if orders.is_empty() {
                        String::new()
                    } else {
                        orders[(worker + n as usize * 7919) % orders.len()].clone()
                    };
                    (
                        format!("evt_load_{worker}_{n}_{}", uuid::Uuid::new_v4().simple()),
                        order_id,
                    )
                };
                // One payment per event: every event changes its order.
                let body = template.render(&event_id, &order_id, &format!("pi_{event_id}"), now);
                let headers = signing::headers(&source, &body, now)?;
                let mut request = client.post(&url).body(body);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let sent = Instant::now();
                let status = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16().to_string();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(err) if err.is_timeout() => "timeout".into(),
                    Err(_) => "connection error".into(),
                };
                result
                    .latencies_us
                    .push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                *result.statuses.entry(status).or_default() += 1;
                if !repeat {
                    sent_ids.push((event_id, order_id));
                }
                n += 1;
            }
            anyhow::Ok(result)
        }));
    }
    let mut latencies = Vec::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for worker in workers {
        let result = worker.await??;
        latencies.extend(result.latencies_us);
        for (status, count) in result.statuses {
            *statuses.entry(status).or_default() += count;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let total = latencies.len();
    println!("requests    {total} in {:.2} s", elapsed.as_secs_f64());
    println!(
        "throughput  {:.0} webhooks/s",
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency     p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 50.0).as_secs_f64() * 1e3,
        percentile(&latencies, 90.0).as_secs_f64() * 1e3,
        percentile(&latencies, 99.0).as_secs_f64() * 1e3,
        percentile(&latencies, 100.0).as_secs_f64() * 1e3,
    );
    let statuses: Vec<String> = statuses.iter().map(|(s, c)| format!("{s}: {c}")).collect();
    println!("statuses    {}", statuses.join(", "));
    Ok(())
}
