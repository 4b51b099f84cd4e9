//! `fulfil`: Fulfil's local tools.
//!
//! - `fulfil up`: the whole stack locally on SQLite.
//! - `fulfil trigger SOURCE TYPE`: one correctly signed test webhook.
//! - `fulfil load`: load generator with throughput and latency figures.
//! - `fulfil watch`: order changes as they happen.
//! - `fulfil token`: a dev HS256 token for an authorized fulfilment service.
//! - `fulfil checkout`: a Stripe checkout of an order or catalogue items.

mod checkout;
mod dev_sources;
mod events;
mod load;
mod signing;
mod token;
mod trigger;
mod up;
mod watch;
mod watch_load;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Fulfil's local tools.
#[derive(Debug, Parser)]
#[command(name = "fulfil", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the fulfilment service and the webhook adapter together on SQLite.
    Up(up::UpArgs),
    /// Send one correctly signed test webhook to a running adapter.
    Trigger(trigger::TriggerArgs),
    /// Send signed webhooks at a fixed concurrency and report throughput and latency.
    #[command(after_help = load::AFTER_HELP)]
    Load(load::LoadArgs),
    /// Print order changes as they happen (resumable with --after CURSOR).
    Watch(watch::WatchArgs),
    /// Measure order streams: idle memory, latency under load, catch-up rate.
    WatchLoad(watch_load::WatchLoadArgs),
    /// Mint an HS256 JWT for local testing of authorization; prints only the token.
    Token(token::TokenArgs),
    /// Start (or fetch the open) Stripe checkout of an order or catalogue items.
    Checkout(checkout::CheckoutArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest is built without a default TLS provider (one crypto library,
    // ring, for the whole workspace); install it before any client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_env("FULFIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: piped or captured logs stay
        // greppable (`code=missing_field`).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Trigger(args) => trigger::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::WatchLoad(args) => watch_load::run(args).await,
        Command::Token(args) => token::run(&args),
        Command::Checkout(args) => checkout::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fulfil: {err:#}");
            ExitCode::FAILURE
        }
    }
}
