//! `fulfil up`: the whole stack in one process on the embedded SQLite
//! database: the fulfilment gRPC service and the webhook adapter, with a
//! local sources file of random secrets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use adapter::fulfilment_client::FulfilmentClient;
use adapter::source::Sources;
use clap::Args;
use fulfilment::storage::{DatabaseConfig, WriterConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

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
}

/// Runs both services until Ctrl-C or SIGTERM.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let text = dev_sources::load_or_create(&args.sources)?;
    let configs = adapter::config::parse_sources(&text, &|var| std::env::var(var).ok())?;
    let sources = Sources::new(configs.clone())?;

    let db_config = DatabaseConfig {
        url: args.database_url.clone(),
        max_connections: 8,
        acquire_timeout: Duration::from_secs(5),
    };
    let db = fulfilment::server::open_database(&db_config, WriterConfig::default()).await?;
    let grpc = TcpListener::bind(args.grpc_addr).await?;
    let grpc_addr = grpc.local_addr()?;
    let http = TcpListener::bind(args.adapter_addr).await?;
    let http_addr = http.local_addr()?;

    let (stop, stopped) = watch::channel(false);
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let fulfilment_server = tokio::spawn(fulfilment::server::serve(
        fulfilment::server::Listeners::api_only(grpc),
        db,
        fulfilment::server::ServeOptions {
            // Local only: any page on this machine may call over gRPC-Web.
            cors_origins: vec!["*".to_owned()],
            ..Default::default()
        },
        wait(stopped.clone()),
    ));
    let state = adapter::server::AppState::new(
        sources,
        FulfilmentClient::new(
            &format!("http://{grpc_addr}"),
            Duration::from_secs(3),
            Duration::from_secs(8),
        )?,
        adapter::server::HttpLimits::default(),
        adapter::metrics::Metrics::default(),
    );
    let adapter_server = tokio::spawn(adapter::server::serve(http, state, wait(stopped)));

    println!(
        "Fulfil is running (database: {})",
        fulfilment::config::redacted_url(&args.database_url)
    );
    println!();
    println!("  gRPC      http://{grpc_addr}   (grpcurl -plaintext {grpc_addr} list)");
    println!("  webhooks  http://{http_addr}/webhooks/SOURCE");
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

    fulfil_telemetry::shutdown_signal().await;
    let _ = stop.send(true);
    fulfilment_server.await??;
    adapter_server.await??;
    Ok(())
}
