//! Process plumbing shared by Fulfil's services.
//!
//! - [`init`]: logs (human-readable or JSON) and, when the standard
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OpenTelemetry tracing exported
//!   over OTLP/gRPC; off otherwise.
//! - [`propagation`]: W3C trace context in and out of gRPC metadata, so one
//!   webhook is one trace across the adapter and the fulfilment service.
//! - [`shutdown_signal`], [`stop_on_signal`]: SIGTERM (Kubernetes) or
//!   Ctrl-C; [`drain`]: the grace period after it; [`run_main`]: a
//!   service binary's `main`.
//! - [`listener`]: a bound on open connections and deadlines on stuck ones.
//! - [`pem_file`]: the PEM files TLS settings name, errors naming the variable.
//! - [`https_client`]: clients fetching documents from configured https URLs.

pub mod https_client;
pub mod listener;
mod otel;
pub mod pem_file;
pub mod propagation;
mod shutdown;

use std::future::Future;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use shutdown::{drain, shutdown_signal, stop_on_signal};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (a bad endpoint, say).
    #[error("OpenTelemetry exporter: {0}")]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("logging was already set up: {0}")]
    Subscriber(String),
}

/// Flushes traces at exit. Keep it alive for the life of the process.
#[derive(Debug)]
#[must_use = "dropping the guard at once would stop exporting traces"]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops the exporter.
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            // Blocking: it waits for the last export.
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(err)) = flushed {
                eprintln!("OpenTelemetry: traces not flushed at exit: {err}");
            }
        }
    }
}

/// Installs the global subscriber for service `service` (the default of
/// `OTEL_SERVICE_NAME`). The level comes from `FULFIL_LOG` (an `EnvFilter`
/// directive such as `info` or `fulfilment=debug`), default `info` with the
/// database and HTTP/2 drivers quieted. Call inside the Tokio runtime.
pub fn init(service: &str, format: LogFormat) -> Result<Telemetry, TelemetryError> {
    let filter = || {
        EnvFilter::try_from_env("FULFIL_LOG")
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,h2=warn"))
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let provider = otel::provider(service)?;
    // Spans go to OpenTelemetry at every level the log filter lets through,
    // and always at info for our own crates so traces are complete even
    // when logs are quiet.
    let otel_layer = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("fulfil"))
            .with_filter(filter())
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter()))
        .with(otel_layer)
        .try_init()
        .map_err(|err| TelemetryError::Subscriber(err.to_string()))?;
    if let Some(endpoint) = otel::endpoint() {
        tracing::info!(%endpoint, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

/// The body of a service binary's `main`: telemetry for `service`, then
/// `run`, then the last traces flushed and a failure logged once, with its
/// causes.
pub async fn run_main<E: std::fmt::Display>(
    service: &str,
    format: LogFormat,
    run: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    let telemetry = match init(service, format) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("{service}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = run.await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "{service} failed");
            ExitCode::FAILURE
        }
    }
}
