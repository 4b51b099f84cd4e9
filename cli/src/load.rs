//! `fulfil load`: send unique, freshly signed, realistic webhooks at a fixed
//! concurrency for a fixed time to a running adapter, optionally with a
//! share of duplicates. Prints one line per window as it goes (requests,
//! throughput, latency percentiles, statuses), then the whole run and how
//! the last window's throughput compares with the first's. Bounded in time
//! and count; loopback use only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Args;
use fulfil_proto::v1::CreateOrderRequest;
use fulfil_proto::v1::LineItem;
use fulfil_proto::v1::order_service_client::OrderServiceClient;
use rand::Rng;

use crate::{dev_sources, events, signing};

/// Shown after the options in `fulfil load --help`.
pub const AFTER_HELP: &str = "\
Sustained runs: with --duration 60 or more, one line per --window shows \
whether throughput and latency hold; the summary ends with the last \
window's throughput as a share of the first's.

From a fresh database, as a new deployment meets it: stop `fulfil up`, \
recreate the database, start `fulfil up` again (it applies the migrations), \
then run load. Do not ANALYZE by hand.
  PostgreSQL:  dropdb --if-exists fulfil_bench; createdb fulfil_bench
               fulfil up --database-url postgres://USER@127.0.0.1/fulfil_bench
  SQLite:      remove fulfil.db, fulfil.db-wal and fulfil.db-shm, then fulfil up";

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
    /// How long to send, in seconds (60 or more for a sustained run).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Length of one reported window, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub window: u64,
    /// Stop after this many requests even if time remains.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_requests: u64,
    /// Share of requests that repeat an earlier event (0.0-1.0).
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Orders to create first and spread events over (0: events name no order).
    #[arg(long, default_value_t = 2000)]
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

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Http(u16),
    Timeout,
    ConnectionError,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Http(code) => write!(f, "{code}"),
            Status::Timeout => f.write_str("timeout"),
            Status::ConnectionError => f.write_str("connection error"),
        }
    }
}

/// Requests completed in one window: what workers push and the reporter
/// takes whole at the window's end.
#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<Status, u64>,
}

impl Window {
    fn with_capacity(capacity: usize) -> Self {
        Window {
            latencies_us: Vec::with_capacity(capacity),
            statuses: BTreeMap::new(),
        }
    }

    fn record(&mut self, latency: Duration, status: Status) {
        self.latencies_us
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        *self.statuses.entry(status).or_default() += 1;
    }

    fn merge(&mut self, other: Window) {
        self.latencies_us.extend(other.latencies_us);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
    }
}

/// The window being filled, shared by every worker. A request belongs to the
/// window that is current when it is recorded, right after its response; the
/// lock is held for one push, so it stays cheap at thousands of requests a
/// second.
#[derive(Clone, Default)]
struct Current(Arc<Mutex<Window>>);

impl Current {
    fn record(&self, latency: Duration, status: Status) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(latency, status);
    }

    /// Ends the current window and starts an empty one, allocated outside
    /// the lock.
    fn take(&self, capacity: usize) -> Window {
        let fresh = Window::with_capacity(capacity);
        std::mem::replace(
            &mut *self.0.lock().unwrap_or_else(PoisonError::into_inner),
            fresh,
        )
    }
}

/// Figures of a set of completed requests.
struct Figures {
    requests: usize,
    per_second: f64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    statuses: String,
}

impl Figures {
    /// Sorts `window`'s latencies in place.
    fn of(window: &mut Window, elapsed: Duration) -> Self {
        let sorted = &mut window.latencies_us;
        sorted.sort_unstable();
        let statuses: Vec<String> = window
            .statuses
            .iter()
            .map(|(s, c)| format!("{s}: {c}"))
            .collect();
        Figures {
            requests: sorted.len(),
            per_second: sorted.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            p50: percentile(sorted, 50.0),
            p90: percentile(sorted, 90.0),
            p99: percentile(sorted, 99.0),
            max: percentile(sorted, 100.0),
            statuses: statuses.join(", "),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One window's line: `  10.0-20.0 s  48210 req  4821/s  p50 …  200: 48210`.
fn print_window(start: Duration, end: Duration, figures: &Figures) {
    let span = format!("{:.1}-{:.1} s", start.as_secs_f64(), end.as_secs_f64());
    println!(
        "{span:>14}  {:>8} req  {:>6.0}/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  {}",
        figures.requests,
        figures.per_second,
        ms(figures.p50),
        ms(figures.p90),
        ms(figures.p99),
        ms(figures.max),
        figures.statuses,
    );
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
        .ok_or_else(|| anyhow::anyhow!("source kind {kind} cannot be load-tested"))?;
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
    let per_worker = args.max_requests.div_ceil(args.concurrency.max(1) as u64);
    eprintln!(
        "sending {event_type} to {url}: concurrency {}, {} s, {:.0}% duplicates",
        args.concurrency,
        args.duration,
        args.duplicates * 100.0
    );

    let template = Arc::new(Template::new(kind, &event_type)?);
    let current = Current::default();
    let duration = Duration::from_secs(args.duration);
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..args.concurrency.max(1) {
        let client = client.clone();
        let url = url.clone();
        let source = source.clone();
        let template = template.clone();
        let orders = orders.clone();
        let current = current.clone();
        let duplicates = args.duplicates;
        workers.spawn(async move {
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
                        let status = Status::Http(response.status().as_u16());
                        let _ = response.bytes().await;
                        status
                    }
                    Err(err) if err.is_timeout() => Status::Timeout,
                    Err(_) => Status::ConnectionError,
                };
                current.record(sent.elapsed(), status);
                if !repeat {
                    sent_ids.push((event_id, order_id));
                }
                n += 1;
            }
            anyhow::Ok(())
        });
    }

    // Report each window as it ends, until every worker is done (time is up
    // or the request budget is spent); the last window ends with the run.
    let window = Duration::from_secs(args.window);
    let mut windows: Vec<(Duration, Duration, Figures)> = Vec::new();
    let mut whole = Window::default();
    let mut window_start = Duration::ZERO;
    let mut take_window = |end: Duration, last: bool| {
        // Room for about as many requests as the window before.
        let capacity = match windows.last() {
            Some((_, _, figures)) if !last => figures.requests + figures.requests / 8,
            _ => 0,
        };
        let mut taken = current.take(capacity);
        let figures = Figures::of(&mut taken, end.saturating_sub(window_start));
        print_window(window_start, end, &figures);
        windows.push((window_start, end, figures));
        whole.merge(taken);
        window_start = end;
    };
    let mut boundary = window;
    let finished = loop {
        // No boundary at or after the deadline: requests still in flight then
        // belong to the last window.
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(result) => result??,
                None => break started.elapsed(),
            },
            () = tokio::time::sleep_until((started + boundary).into()), if boundary < duration => {
                // The window ends when it is taken, a little after the tick.
                take_window(started.elapsed(), false);
                boundary += window;
            }
        }
    };
    take_window(finished, true);

    let figures = Figures::of(&mut whole, finished);
    println!(
        "requests    {} in {:.2} s",
        figures.requests,
        finished.as_secs_f64()
    );
    println!("throughput  {:.0} webhooks/s", figures.per_second);
    println!(
        "latency     p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(figures.p50),
        ms(figures.p90),
        ms(figures.p99),
        ms(figures.max),
    );
    println!("statuses    {}", figures.statuses);
    if let (Some((_, _, first)), Some((_, _, last))) = (windows.first(), windows.last())
        && windows.len() > 1
        && first.per_second > 0.0
    {
        println!(
            "last window vs first window: {:.0} %",
            last.per_second / first.per_second * 100.0
        );
    }
    Ok(())
}
