//! `fulfil trigger`: send one correctly signed test webhook to a running
//! adapter, like `stripe trigger`.

use std::path::PathBuf;

use clap::Args;

use crate::{dev_sources, events, signing};

/// Options of `trigger`.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The source to send to (a name in the sources file, e.g. "stripe").
    pub source: String,
    /// The provider's event type (e.g. payment_intent.succeeded, INITIAL_PURCHASE).
    pub event_type: String,
    /// Order the event names.
    #[arg(long, default_value = "")]
    pub order_id: String,
    /// Amount in minor units.
    #[arg(long, default_value_t = 1000)]
    pub amount: i64,
    /// Currency (ISO 4217).
    #[arg(long, default_value = "eur")]
    pub currency: String,
    /// Provider payment id (default: derived from the order id).
    #[arg(long, default_value = "")]
    pub payment_ref: String,
    /// Event id (default: random). Repeat one to test duplicates.
    #[arg(long, default_value = "")]
    pub event_id: String,
    /// App user, for in-app purchases.
    #[arg(long, default_value = "app_user_1")]
    pub customer: String,
    /// Product, for in-app purchases.
    #[arg(long, default_value = "pro_monthly")]
    pub product: String,
    /// Entitlement, for in-app purchases.
    #[arg(long, default_value = "pro")]
    pub entitlement: String,
    /// The adapter.
    #[arg(
        long,
        env = "FULFIL_ADAPTER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub adapter_url: String,
    /// The sources file holding the secrets.
    #[arg(long, env = "FULFIL_SOURCES", default_value = dev_sources::DEFAULT_PATH)]
    pub sources: PathBuf,
}

/// Sends the webhook and prints the adapter's answer; fails on non-2xx.
pub async fn run(args: TriggerArgs) -> anyhow::Result<()> {
    let text = dev_sources::load(&args.sources)?;
    let sources = adapter::config::parse_sources(&text, &|var| std::env::var(var).ok())?;
    let source = sources
        .iter()
        .find(|s| s.name == args.source)
        .ok_or_else(|| {
            anyhow::anyhow!("no source {:?} in {}", args.source, args.sources.display())
        })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let now = i64::try_from(now)?;
    let params = events::Params {
        event_id: args.event_id,
        order_id: args.order_id,
        amount: args.amount,
        currency: args.currency,
        payment_ref: args.payment_ref,
        customer: args.customer,
        product: args.product,
        entitlement: args.entitlement,
        now,
    };
    let body = events::build(source.file.kind, &args.event_type, &params)?;
    let headers = signing::headers(source, &body, now)?;
    let url = format!(
        "{}/webhooks/{}",
        args.adapter_url.trim_end_matches('/'),
        source.name
    );
    let mut request = reqwest::Client::new().post(&url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    println!("{} {status} {text}", args.event_type);
    if !status.is_success() {
        anyhow::bail!("the adapter answered {status}");
    }
    Ok(())
}
