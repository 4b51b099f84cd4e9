//! Command line and environment configuration of the `fulfilment` binary.
//! Every flag has an environment variable, so Kubernetes can configure it
//! without arguments.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::storage::{DatabaseConfig, WriterConfig};
use crate::stream::StreamConfig;

/// The default database: an SQLite file in the working directory, created if
/// missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://fulfil.db?mode=rwc";

/// Fulfil's order service: applies payment events exactly once and serves
/// orders over gRPC.
#[derive(Debug, Parser)]
#[command(name = "fulfilment", version)]
pub struct Cli {
    /// Log line format.
    #[arg(long, env = "FULFIL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

pub use fulfil_telemetry::LogFormat;

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve gRPC until SIGTERM or Ctrl-C.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the gRPC server listens on (port 0 picks a free port).
    #[arg(long, env = "FULFIL_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// Address for PaymentEventService alone (the adapter's entry point),
    /// apart from the public API. Unset: the API address serves it too.
    #[arg(long, env = "FULFIL_INGEST_ADDR")]
    pub ingest_addr: Option<SocketAddr>,
    /// Address of the plaintext operations port: grpc.health.v1 for probes,
    /// `/livez`, `/readyz` and Prometheus `/metrics`. Unset: no ops port.
    #[arg(long, env = "FULFIL_OPS_ADDR")]
    pub ops_addr: Option<SocketAddr>,
    /// Seconds after which a client connection is asked to reconnect
    /// (HTTP/2 GOAWAY), so connections spread over replicas. Unset: never.
    #[arg(long, env = "FULFIL_MAX_CONNECTION_AGE_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connection_age_secs: Option<u64>,
    /// Database options.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Most writes committed together in one transaction (group commit).
    #[arg(long, env = "FULFIL_WRITE_BATCH_MAX", default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub write_batch_max: u64,
    /// Origins allowed to call over gRPC-Web from a browser (comma-separated,
    /// "*" for any). None by default.
    #[arg(long, env = "FULFIL_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Seconds between Progress messages on idle order streams.
    #[arg(long, env = "FULFIL_WATCH_HEARTBEAT_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_heartbeat_secs: u64,
    /// Milliseconds between looks for changes committed by other replicas.
    #[arg(long, env = "FULFIL_FEED_POLL_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub feed_poll_ms: u64,
    /// Hours of change history kept for resuming streams.
    #[arg(long, env = "FULFIL_FEED_RETENTION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..))]
    pub feed_retention_hours: u64,
    /// Connections each gRPC listener keeps open at once; more wait in the
    /// listen backlog.
    #[arg(long, env = "FULFIL_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Seconds after which a connection on which nothing moves either way
    /// is closed (silent, stalled or idle HTTP/1.1 clients). Must exceed
    /// the 30 s HTTP/2 keep-alive interval and the watch heartbeat.
    #[arg(long, env = "FULFIL_IDLE_TIMEOUT_SECS", default_value_t = 75, value_parser = clap::value_parser!(u64).range(31..))]
    pub idle_timeout_secs: u64,
    /// Largest gRPC message, in bytes, received or sent (4 MiB, gRPC's
    /// usual default). Larger ones get RESOURCE_EXHAUSTED
    /// (MESSAGE_TOO_LARGE). Keep it above the adapter's body limit.
    #[arg(long, env = "FULFIL_GRPC_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub grpc_max_message_bytes: u64,
    /// Seconds to let in-flight calls finish after SIGTERM before exiting.
    #[arg(long, env = "FULFIL_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// TLS of the API and ingest listeners.
    #[command(flatten)]
    pub tls: crate::server::tls::TlsArgs,
    /// Bearer-token authorization.
    #[command(flatten)]
    pub auth: crate::auth::AuthArgs,
    /// Checkout: Stripe and the catalogue.
    #[command(flatten)]
    pub checkout: crate::checkout::CheckoutArgs,
}

/// Database options, shared by `serve` and `migrate`.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// `sqlite://PATH?mode=rwc` (embedded, the default) or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB`.
    #[arg(long, env = "FULFIL_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// Connections in the pool.
    #[arg(long, env = "FULFIL_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// Milliseconds to wait for a connection before answering UNAVAILABLE.
    #[arg(long, env = "FULFIL_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 5000)]
    pub db_acquire_timeout_ms: u64,
}

impl DatabaseArgs {
    /// As a storage configuration.
    pub fn to_config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections.max(2),
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
        }
    }
}

impl ServeArgs {
    /// The streams' tuning.
    pub fn stream_config(&self) -> StreamConfig {
        StreamConfig {
            heartbeat: Duration::from_secs(self.watch_heartbeat_secs),
            poll: Duration::from_millis(self.feed_poll_ms),
            retention: Duration::from_secs(self.feed_retention_hours.saturating_mul(3600)),
            ..StreamConfig::default()
        }
    }

    /// How the servers behave. Refuses an idle timeout that would close
    /// gRPC-Web streams between two heartbeats.
    pub fn serve_options(&self) -> Result<crate::server::ServeOptions, String> {
        if self.idle_timeout_secs <= self.watch_heartbeat_secs {
            return Err(format!(
                "FULFIL_IDLE_TIMEOUT_SECS ({}) must exceed FULFIL_WATCH_HEARTBEAT_SECS ({})",
                self.idle_timeout_secs, self.watch_heartbeat_secs
            ));
        }
        Ok(crate::server::ServeOptions {
            streams: self.stream_config(),
            cors_origins: self.cors_origins.clone(),
            max_connection_age: self.max_connection_age_secs.map(Duration::from_secs),
            connections: crate::server::ConnectionLimits {
                max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
                idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            },
            max_message: crate::server::MessageLimit(
                usize::try_from(self.grpc_max_message_bytes).unwrap_or(usize::MAX),
            ),
            // TLS and authorization are loaded (fallibly) by the binary.
            ..Default::default()
        })
    }

    /// The writer's tuning.
    pub fn writer_config(&self) -> WriterConfig {
        WriterConfig {
            max_batch: usize::try_from(self.write_batch_max).unwrap_or(128),
            ..WriterConfig::default()
        }
    }
}

/// The database URL without credentials or query, safe to log.
pub fn redacted_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split('?').next().unwrap_or(rest);
    format!("{scheme}://{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_credentials_and_options() {
        assert_eq!(
            redacted_url("postgres://u:secret@db:5432/fulfil?sslmode=require"),
            "postgres://db:5432/fulfil"
        );
        assert_eq!(redacted_url(DEFAULT_DATABASE_URL), "sqlite://fulfil.db");
    }

    #[test]
    fn the_message_limit_defaults_to_the_servers_default() {
        let cli = Cli::try_parse_from(["fulfilment", "serve"]).expect("defaults parse");
        let Command::Serve(args) = cli.command else {
            panic!("serve");
        };
        assert_eq!(
            args.serve_options()
                .expect("default options are valid")
                .max_message,
            crate::server::MessageLimit::default()
        );
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
