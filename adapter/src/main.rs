//! The `adapter` binary.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use adapter::config::{Cli, Command, LogFormat, ServeArgs, SourcesArgs};
use adapter::fulfilment_client::FulfilmentClient;
use adapter::server::{self, AppState};
use adapter::source::Sources;
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::CheckSources(args) => check(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "adapter failed");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_env("FULFIL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,hyper=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn check(args: &SourcesArgs) -> anyhow::Result<()> {
    let sources = Sources::new(args.load()?)?;
    for (name, kind) in sources.summary() {
        println!("{name}\t{kind:?}");
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let sources = Sources::new(args.sources.load()?)?;
    let security = args.fulfilment_security.load()?;
    let (tls, token) = (security.tls.any(), security.token.is_some());
    let fulfilment = FulfilmentClient::with_security(
        &args.fulfilment_url,
        args.fulfilment_timeout(),
        args.fulfilment_retry_budget(),
        security,
    )?;
    let listener = TcpListener::bind(args.addr).await?;
    let addr = listener.local_addr()?;
    let names: Vec<String> = sources
        .summary()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    tracing::info!(%addr, fulfilment = %args.fulfilment_url, fulfilment_tls_files = tls, fulfilment_token = token, sources = %names.join(","), "HTTP server listening");

    let state = AppState {
        sources,
        fulfilment,
        body_limit: args.body_limit_bytes,
        ready: Arc::new(AtomicBool::new(false)),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    server::shutdown_signal().await;
    let _ = stop_tx.send(());
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    match tokio::time::timeout(grace, server).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!(
            ?grace,
            "webhooks still running after the grace period; exiting"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}
