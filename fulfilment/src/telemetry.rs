//! Logging setup.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. The level comes from `FULFIL_LOG`
/// (an `EnvFilter` directive such as `info` or `fulfilment=debug`), default
/// `info` with the database drivers quieted.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("FULFIL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,h2=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
