//! The `adapter` binary.

use std::process::ExitCode;

use adapter::config::{Cli, Command, SourcesArgs};
use adapter::service::Adapter;
use adapter::source::Sources;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    fulfil_telemetry::run_main("adapter", cli.log_format, async move {
        match cli.command {
            Command::Serve(args) => {
                // Listening for SIGTERM from the start: one during start-up
                // stops the adapter as soon as it is up.
                let stop = fulfil_telemetry::stop_on_signal();
                Adapter::bind(&args).await?.run(stop).await
            }
            Command::CheckSources(args) => check(&args),
        }
    })
    .await
}

fn check(args: &SourcesArgs) -> anyhow::Result<()> {
    let sources = Sources::new(args.load()?)?;
    for (name, kind) in sources.summary() {
        println!("{name}\t{kind:?}");
    }
    Ok(())
}
