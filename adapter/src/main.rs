//! The `adapter` binary.

use std::process::ExitCode;
use std::time::Duration;

use adapter::config::{Cli, Command, ServeArgs, SourcesArgs};
use adapter::fulfilment_client::FulfilmentClient;
use adapter::metrics::Metrics;
use adapter::server::{self, AppState};
use adapter::source::Sources;
use clap::Parser;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = match fulfil_telemetry::init("adapter", cli.log_format) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("adapter: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::CheckSources(args) => check(&args),
    };
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "adapter failed");
            ExitCode::FAILURE
        }
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
    let limits = args.http_limits()?;
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

    let metrics = Metrics::default();
    let ops = match args.ops_addr {
        Some(at) => {
            let ops = TcpListener::bind(at).await?;
            tracing::info!(addr = %ops.local_addr()?, "ops listening (/metrics)");
            Some(ops)
        }
        None => None,
    };
    let state = AppState::new(sources, fulfilment, limits, metrics.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    // The ops port stays up until the process exits, through the drain.
    let (ops_stop, ops_stopped) = tokio::sync::oneshot::channel::<()>();
    let ops = ops.map(|listener| {
        tokio::spawn(server::serve_ops(listener, metrics, async move {
            let _ = ops_stopped.await;
        }))
    });
    fulfil_telemetry::shutdown_signal().await;
    let _ = stop_tx.send(());
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    match tokio::time::timeout(grace, server).await {
        Ok(joined) => joined??,
        Err(_) => tracing::warn!(
            ?grace,
            "webhooks still running after the grace period; exiting"
        ),
    }
    let _ = ops_stop.send(());
    if let Some(ops) = ops {
        ops.await??;
    }
    tracing::info!("stopped");
    Ok(())
}
