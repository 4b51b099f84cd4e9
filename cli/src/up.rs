//! `fulfil up`: the whole stack in one process on the embedded SQLite
//! database: the fulfilment gRPC service and the webhook adapter, with a
//! local sources file of random secrets. Each starts as its own binary
//! does, with the same defaults; only what makes it local is set here.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, FromArgMatches};

use crate::dev_sources;

/// Options of `up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// gRPC address of the fulfilment service.
    #[arg(long, env = "FULFIL_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// HTTP address of the webhook adapter.
    #[arg(long, env = "FULFIL_ADAPTER_ADDR", default_value = "127.0.0.1:8080")]
    pub adapter_addr: SocketAddr,
    /// Database (default: SQLite file in the working directory).
    #[arg(long, env = "FULFIL_DATABASE_URL", default_value = fulfilment::config::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Sources file; created with random secrets if missing.
    #[arg(long, env = "FULFIL_SOURCES", default_value = dev_sources::DEFAULT_PATH)]
    pub sources: PathBuf,
    /// Checkout: the Stripe API to call (e.g. a local fake such as
    /// localstripe). Also FULFIL_STRIPE_API_BASE, like every other
    /// FULFIL_STRIPE_* and FULFIL_CATALOGUE variable of `fulfilment serve`.
    #[arg(long)]
    pub stripe_api_base: Option<String>,
    /// Checkout: a file holding the Stripe secret key (or
    /// FULFIL_STRIPE_SECRET_KEY). Without a key, checkout is off.
    #[arg(long)]
    pub stripe_secret_key_file: Option<PathBuf>,
    /// Checkout: the product catalogue (TOML).
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
}

/// A service's options as its binary would take them with no flags: the
/// defaults, and the environment's `FULFIL_*` variables.
fn binary_defaults<A: Args + FromArgMatches>(name: &'static str) -> anyhow::Result<A> {
    let matches = A::augment_args(clap::Command::new(name)).try_get_matches_from([name])?;
    Ok(A::from_arg_matches(&matches)?)
}

/// Runs both services until Ctrl-C or SIGTERM.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let text = dev_sources::load_or_create(&args.sources)?;
    let configs = adapter::config::parse_sources(&text, &|var| std::env::var(var).ok())?;

    let mut fulfilment_args: fulfilment::config::ServeArgs = binary_defaults("fulfilment")?;
    fulfilment_args.grpc_addr = args.grpc_addr;
    fulfilment_args.database.database_url = args.database_url.clone();
    // Local only: one port, plaintext, no tokens, and any page on this
    // machine may call over gRPC-Web.
    fulfilment_args.ingest_addr = None;
    fulfilment_args.ops_addr = None;
    fulfilment_args.tls = Default::default();
    fulfilment_args.auth = Default::default();
    fulfilment_args.cors_origins = vec!["*".to_owned()];
    if let Some(base) = &args.stripe_api_base {
        fulfilment_args.checkout.stripe_api_base = base.clone();
    }
    if let Some(file) = &args.stripe_secret_key_file {
        fulfilment_args.checkout.stripe_secret_key = None;
        fulfilment_args.checkout.stripe_secret_key_file = Some(file.clone());
    }
    if let Some(catalogue) = &args.catalogue {
        fulfilment_args.checkout.catalogue = Some(catalogue.clone());
    }
    let checkout_on = fulfilment_args.checkout.stripe_secret_key.is_some()
        || fulfilment_args.checkout.stripe_secret_key_file.is_some();
    let fulfilment = fulfilment::service::Fulfilment::bind(&fulfilment_args).await?;
    let grpc_addr = fulfilment.local_addr();

    let mut adapter_args: adapter::config::ServeArgs = binary_defaults("adapter")?;
    adapter_args.addr = args.adapter_addr;
    adapter_args.ops_addr = None;
    adapter_args.fulfilment_url = format!("http://{grpc_addr}");
    adapter_args.fulfilment_security = Default::default();
    adapter_args.sources = adapter::config::SourcesArgs {
        sources: None,
        sources_toml: Some(text),
    };
    let adapter = adapter::service::Adapter::bind(&adapter_args).await?;
    let http_addr = adapter.local_addr()?;

    // The adapter stops first, so its in-flight webhooks can still reach
    // fulfilment; fulfilment stops once the adapter is done.
    let stop = fulfil_telemetry::stop_on_signal();
    let fulfilment_stop = tokio_util::sync::CancellationToken::new();
    let fulfilment = tokio::spawn(fulfilment.run(fulfilment_stop.clone()));
    let adapter = tokio::spawn(adapter.run(stop));

    println!(
        "Fulfil is running (database: {})",
        fulfilment::config::redacted_url(&args.database_url)
    );
    println!();
    println!("  gRPC      http://{grpc_addr}   (grpcurl -plaintext {grpc_addr} list)");
    println!("  webhooks  http://{http_addr}/webhooks/SOURCE");
    if checkout_on {
        println!(
            "  checkout  Stripe at {}   (fulfil checkout --order-id ORDER_ID)",
            fulfilment_args.checkout.stripe_api_base
        );
    } else {
        println!("  checkout  off (set FULFIL_STRIPE_SECRET_KEY or --stripe-secret-key-file)");
    }
    println!();
    println!("  sources ({}):", args.sources.display());
    for source in &configs {
        let secret = source.secrets.first().map(|s| s.expose()).unwrap_or("");
        println!(
            "    {:<11} {:<10} secret {secret}",
            source.name, source.file.kind
        );
    }
    println!();
    println!(
        "  try:  fulfil trigger stripe payment_intent.succeeded --order-id ORDER_ID --amount 3900 --currency eur"
    );
    println!("  stop: Ctrl-C");

    let adapter = adapter.await;
    fulfilment_stop.cancel();
    fulfilment.await??;
    adapter??;
    Ok(())
}
