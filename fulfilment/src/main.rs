//! The `fulfilment` binary: `serve` and `migrate`.

use std::process::ExitCode;

use clap::Parser;
use fulfilment::config::{Cli, Command, redacted_url};
use fulfilment::service::Fulfilment;
use fulfilment::storage;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    fulfil_telemetry::run_main("fulfilment", cli.log_format, async move {
        match cli.command {
            Command::Serve(args) => {
                // Listening for SIGTERM from the start: one during start-up
                // (migrations, say) stops the service as soon as it is up.
                let stop = fulfil_telemetry::stop_on_signal();
                Fulfilment::bind(&args).await?.run(stop).await
            }
            Command::Migrate(args) => migrate(args).await,
        }
    })
    .await
}

async fn migrate(args: fulfilment::config::DatabaseArgs) -> anyhow::Result<()> {
    let config = args.to_config();
    let conn = storage::connect(&config).await?;
    storage::migrate(&conn).await?;
    tracing::info!(database = %redacted_url(&config.url), "migrations applied");
    Ok(())
}
