//! The adapter's configuration: command line and environment for the
//! process, and the sources file for webhook endpoints.
//!
//! Sources come from a TOML document, read from the file named by
//! `FULFIL_SOURCES` or given whole in `FULFIL_SOURCES_TOML` (handy for a
//! Kubernetes ConfigMap). Secrets can be inline, named environment
//! variables, or files (mounted Kubernetes Secrets), in any mix:
//!
//! ```toml
//! [sources.stripe]
//! kind = "stripe"
//! secret_files = ["/var/run/secrets/stripe/signing-secret"]
//!
//! [sources.stripe-connect]
//! kind = "stripe"
//! secret_env = ["STRIPE_CONNECT_SECRET", "STRIPE_CONNECT_SECRET_OLD"]
//! order_ref_key = "fulfil_order"
//!
//! [sources.revenuecat]
//! kind = "revenuecat"
//! secret_env = ["REVENUECAT_AUTHORIZATION"]
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fulfil_proto::Provider;
use serde::Deserialize;

use crate::normalize::Mapping;
use crate::secret::Secret;

/// Fulfil's webhook adapter: verifies provider webhooks and records them
/// with the fulfilment service.
#[derive(Debug, Parser)]
#[command(name = "adapter", version)]
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
    /// Serve webhooks until SIGTERM or Ctrl-C.
    Serve(Box<ServeArgs>),
    /// Load and check the sources configuration, print a summary, and exit.
    CheckSources(SourcesArgs),
}

/// Where the sources configuration comes from.
#[derive(Debug, Clone, Args)]
pub struct SourcesArgs {
    /// Path of the sources TOML file.
    #[arg(long, env = "FULFIL_SOURCES")]
    pub sources: Option<PathBuf>,
    /// The sources TOML document itself (instead of a file).
    #[arg(long, env = "FULFIL_SOURCES_TOML", hide_env_values = true)]
    pub sources_toml: Option<String>,
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the HTTP server listens on (port 0 picks a free port).
    #[arg(long, env = "FULFIL_ADAPTER_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Address of the plaintext operations port (Prometheus `/metrics`).
    /// Unset: no ops port.
    #[arg(long, env = "FULFIL_OPS_ADDR")]
    pub ops_addr: Option<SocketAddr>,
    /// gRPC URL of the fulfilment service.
    #[arg(
        long,
        env = "FULFIL_FULFILMENT_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub fulfilment_url: String,
    /// Sources.
    #[command(flatten)]
    pub sources: SourcesArgs,
    /// Largest accepted webhook body, in bytes.
    #[arg(long, env = "FULFIL_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// Memory, in bytes, that all webhook bodies in flight may reserve
    /// together (each its Content-Length, or the body limit without one);
    /// beyond it webhooks get 503 with Retry-After.
    #[arg(long, env = "FULFIL_BODY_BYTES_IN_FLIGHT", default_value_t = 64 * 1024 * 1024)]
    pub body_bytes_in_flight: usize,
    /// Seconds a client may take to send a request head, from its first byte.
    #[arg(long, env = "FULFIL_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_timeout_secs: u64,
    /// Seconds a client may pause between two pieces of a request body
    /// (then 408 and the connection closes).
    #[arg(long, env = "FULFIL_HTTP_BODY_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_body_timeout_secs: u64,
    /// Seconds an idle connection stays open after its last response.
    #[arg(long, env = "FULFIL_HTTP_KEEP_ALIVE_TIMEOUT_SECS", default_value_t = 75, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_keep_alive_timeout_secs: u64,
    /// Connections open at once; further clients wait in the listen backlog.
    #[arg(long, env = "FULFIL_HTTP_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_max_connections: u64,
    /// Deadline of one call to the fulfilment service, in milliseconds.
    #[arg(long, env = "FULFIL_FULFILMENT_TIMEOUT_MS", default_value_t = 3000)]
    pub fulfilment_timeout_ms: u64,
    /// Total time spent retrying an unavailable fulfilment service before
    /// answering 503 (providers wait about 10 s or more), in milliseconds.
    #[arg(
        long,
        env = "FULFIL_FULFILMENT_RETRY_BUDGET_MS",
        default_value_t = 8000
    )]
    pub fulfilment_retry_budget_ms: u64,
    /// Seconds to let in-flight webhooks finish after SIGTERM.
    #[arg(long, env = "FULFIL_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
    /// TLS and the bearer token towards the fulfilment service.
    #[command(flatten)]
    pub fulfilment_security: FulfilmentSecurityArgs,
}

/// How the adapter authenticates to the fulfilment service.
#[derive(Debug, Clone, Default, Args)]
pub struct FulfilmentSecurityArgs {
    /// PEM CA certificate(s) that issued the fulfilment service's
    /// certificate (https:// URLs). Unset: the public (webpki) roots.
    #[arg(long, env = "FULFIL_FULFILMENT_CA_FILE")]
    pub fulfilment_ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with the key file).
    #[arg(long, env = "FULFIL_FULFILMENT_CLIENT_CERT_FILE")]
    pub fulfilment_client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(long, env = "FULFIL_FULFILMENT_CLIENT_KEY_FILE")]
    pub fulfilment_client_key_file: Option<PathBuf>,
    /// File holding the bearer JWT (scope payment_events:write) sent with
    /// every call; read again when it changes.
    #[arg(long, env = "FULFIL_FULFILMENT_TOKEN_FILE")]
    pub fulfilment_token_file: Option<PathBuf>,
}

impl FulfilmentSecurityArgs {
    /// Reads the token file and collects the TLS files; fails naming the
    /// variable of a file that cannot be used.
    pub fn load(
        &self,
    ) -> Result<crate::fulfilment_client::ClientSecurity, crate::token_file::TokenFileError> {
        let given = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        let token = match given(&self.fulfilment_token_file) {
            Some(path) => Some(crate::token_file::TokenFile::open(path)?),
            None => None,
        };
        Ok(crate::fulfilment_client::ClientSecurity {
            tls: crate::fulfilment_tls::TlsFiles {
                ca: given(&self.fulfilment_ca_file),
                client_cert: given(&self.fulfilment_client_cert_file),
                client_key: given(&self.fulfilment_client_key_file),
            },
            token,
        })
    }
}

impl ServeArgs {
    /// The HTTP limits; refuses a memory budget that could never hold one
    /// body of the largest accepted size.
    pub fn http_limits(&self) -> Result<crate::server::HttpLimits, ConfigError> {
        if self.body_bytes_in_flight < self.body_limit_bytes {
            return Err(ConfigError::Limits(format!(
                "FULFIL_BODY_BYTES_IN_FLIGHT ({}) is below FULFIL_BODY_LIMIT_BYTES ({})",
                self.body_bytes_in_flight, self.body_limit_bytes
            )));
        }
        Ok(crate::server::HttpLimits {
            header_timeout: Duration::from_secs(self.http_header_timeout_secs),
            body_timeout: Duration::from_secs(self.http_body_timeout_secs),
            keep_alive_timeout: Duration::from_secs(self.http_keep_alive_timeout_secs),
            max_connections: usize::try_from(self.http_max_connections).unwrap_or(usize::MAX),
            body_limit: self.body_limit_bytes,
            body_bytes_in_flight: self.body_bytes_in_flight,
        })
    }

    /// Deadline of one fulfilment call.
    pub fn fulfilment_timeout(&self) -> Duration {
        Duration::from_millis(self.fulfilment_timeout_ms)
    }

    /// Retry budget.
    pub fn fulfilment_retry_budget(&self) -> Duration {
        Duration::from_millis(self.fulfilment_retry_budget_ms)
    }
}

/// One `[sources.NAME]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// Provider kind: its signature scheme and payload format.
    pub kind: Provider,
    /// Inline secrets (fine for local use; prefer env or files elsewhere).
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// Names of environment variables holding secrets.
    #[serde(default)]
    pub secret_env: Vec<String>,
    /// Files holding secrets, one per non-empty line.
    #[serde(default)]
    pub secret_files: Vec<PathBuf>,
    /// Two-sided timestamp tolerance in seconds (default: 300; Paddle 5).
    pub tolerance_secs: Option<u64>,
    /// Stripe: the metadata key that holds the order id.
    pub order_ref_key: Option<String>,
    /// PayPal: the webhook id the signature covers.
    pub webhook_id: Option<String>,
    /// PayPal: verify with this certificate file instead of fetching the
    /// one the webhook names (offline setups and tests). PEM: the signing
    /// certificate, then its intermediates, as PayPal serves them.
    pub certificate_file: Option<PathBuf>,
    /// Standard Webhooks and Paddle: how to read the payload.
    pub mapping: Option<Mapping>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourcesFile {
    #[serde(default)]
    sources: BTreeMap<String, SourceFile>,
}

/// A source with its secrets resolved.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The name in `/webhooks/{name}`.
    pub name: String,
    /// As written, minus the secret locations.
    pub file: SourceFile,
    /// Every secret, inline, from env and from files.
    pub secrets: Vec<Secret>,
}

/// Why the sources configuration cannot be used. Messages name sources,
/// variables and files, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither a file nor a document was given.
    #[error("no sources configured: set FULFIL_SOURCES (a file) or FULFIL_SOURCES_TOML")]
    Missing,
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys. Only the message and the
    /// line are kept: the parser's own report quotes the offending line,
    /// which may hold an inline secret.
    #[error("sources configuration, line {line}: {message}")]
    Parse {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A source name is not usable in a URL path.
    #[error("source name {0:?} must be 1-64 characters of [A-Za-z0-9_-]")]
    BadName(String),
    /// A named secret variable is unset.
    #[error("source {source_name}: environment variable {var} is not set")]
    MissingEnv {
        /// The source.
        source_name: String,
        /// The variable.
        var: String,
    },
    /// A source has no secret at all.
    #[error("source {0}: no secrets configured (secrets, secret_env or secret_files)")]
    NoSecrets(String),
    /// The HTTP limits contradict each other.
    #[error("{0}")]
    Limits(String),
    /// A kind-specific option is missing or wrong.
    #[error("source {source_name}: {problem}")]
    Invalid {
        /// The source.
        source_name: String,
        /// What is wrong.
        problem: String,
    },
}

impl SourcesArgs {
    /// Reads and resolves the sources.
    pub fn load(&self) -> Result<Vec<SourceConfig>, ConfigError> {
        let text = match (&self.sources_toml, &self.sources) {
            (Some(text), _) => text.clone(),
            (None, Some(path)) => {
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?
            }
            (None, None) => return Err(ConfigError::Missing),
        };
        parse_sources(&text, &|var| std::env::var(var).ok())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn read_secret_file(source_name: &str, path: &Path) -> Result<Vec<Secret>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let secrets: Vec<Secret> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(Secret::new)
        .collect();
    if secrets.is_empty() {
        return Err(ConfigError::Invalid {
            source_name: source_name.to_owned(),
            problem: format!("secret file {} is empty", path.display()),
        });
    }
    Ok(secrets)
}

/// Parses a sources document; `env` looks up environment variables.
pub fn parse_sources(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<SourceConfig>, ConfigError> {
    let file: SourcesFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
        line: e.span().map_or(0, |span| {
            text[..span.start.min(text.len())].lines().count().max(1)
        }),
        message: e.message().to_owned(),
    })?;
    let mut sources = Vec::with_capacity(file.sources.len());
    for (name, mut spec) in file.sources {
        if !valid_name(&name) {
            return Err(ConfigError::BadName(name));
        }
        let mut secrets = std::mem::take(&mut spec.secrets);
        for var in std::mem::take(&mut spec.secret_env) {
            let value = env(&var).ok_or_else(|| ConfigError::MissingEnv {
                source_name: name.clone(),
                var: var.clone(),
            })?;
            // One variable may carry several secrets (rotation), one per line.
            secrets.extend(
                value
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(Secret::new),
            );
        }
        for path in std::mem::take(&mut spec.secret_files) {
            secrets.extend(read_secret_file(&name, &path)?);
        }
        let invalid = |problem: &str| ConfigError::Invalid {
            source_name: name.clone(),
            problem: problem.to_owned(),
        };
        // PayPal signs with its certificate; every other kind needs secrets.
        if spec.kind != Provider::Paypal && secrets.is_empty() {
            return Err(ConfigError::NoSecrets(name));
        }
        if spec.kind == Provider::Paypal && spec.webhook_id.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("kind paypal needs webhook_id"));
        }
        if spec.kind == Provider::Standard && spec.mapping.is_none() {
            return Err(invalid(
                "kind standard needs a [sources.NAME.mapping] table",
            ));
        }
        if spec.mapping.is_some() && !matches!(spec.kind, Provider::Standard | Provider::Paddle) {
            return Err(invalid("mapping applies only to kinds standard and paddle"));
        }
        // A mapping that cannot work would refuse every webhook of the
        // source with a 400; refuse the configuration instead.
        if let Some(mapping) = &spec.mapping {
            mapping
                .validate()
                .map_err(|err| invalid(&err.to_string()))?;
        }
        sources.push(SourceConfig {
            name,
            file: spec,
            secrets,
        });
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "STRIPE_SECRET" => Some("whsec_from_env\nwhsec_previous\n".into()),
            _ => None,
        }
    }

    #[test]
    fn secrets_come_inline_from_env_and_from_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "whsec_from_file\n").expect("write");
        let text = format!(
            r#"
            [sources.stripe]
            kind = "stripe"
            secrets = ["whsec_inline"]
            secret_env = ["STRIPE_SECRET"]
            secret_files = ["{}"]
            "#,
            file.display()
        );
        let sources = parse_sources(&text, &env).expect("parse");
        let values: Vec<&str> = sources[0].secrets.iter().map(Secret::expose).collect();
        assert_eq!(
            values,
            [
                "whsec_inline",
                "whsec_from_env",
                "whsec_previous",
                "whsec_from_file"
            ]
        );
    }

    #[test]
    fn refuses_incomplete_sources_without_echoing_secrets() {
        let missing_env = "[sources.s]\nkind = \"stripe\"\nsecret_env = [\"NOPE\"]";
        let err = parse_sources(missing_env, &env).expect_err("unset variable");
        assert!(err.to_string().contains("NOPE"));
        assert!(matches!(
            parse_sources("[sources.s]\nkind = \"stripe\"", &env),
            Err(ConfigError::NoSecrets(_))
        ));
        assert!(
            parse_sources("[sources.p]\nkind = \"paypal\"", &env).is_err(),
            "paypal needs webhook_id"
        );
        assert!(
            parse_sources(
                "[sources.\"a b\"]\nkind = \"stripe\"\nsecrets=[\"x\"]",
                &env
            )
            .is_err()
        );
        let typo = "[sources.s]\nkind = \"stripe\"\nsecrets = [\"whsec_123\"]\nsecret = 1";
        let err = parse_sources(typo, &env).expect_err("unknown key");
        assert!(!err.to_string().contains("whsec_123"));
        let broken = "[sources.s]\nkind = \"stripe\"\nsecrets = [\"whsec_456\" oops]";
        let err = parse_sources(broken, &env).expect_err("bad toml");
        assert!(!err.to_string().contains("whsec_456"), "{err}");
    }

    fn standard_with_mapping(mapping: &str) -> String {
        format!(
            "[sources.acme]\nkind = \"standard\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n[sources.acme.mapping]\n{mapping}"
        )
    }

    #[test]
    fn a_mapping_that_cannot_work_is_refused_naming_the_source_and_the_problem() {
        let good = standard_with_mapping(
            "event_type = \"/type\"\namount = \"/data/amount\"\ncurrency = \"/data/currency\"\nsucceeded = [\"paid\"]",
        );
        parse_sources(&good, &env).expect("a working mapping");
        for (mapping, problem) in [
            (
                "event_type = \"type\"\nsucceeded = [\"paid\"]",
                "event_type must be a JSON pointer",
            ),
            (
                "event_type = \"/type\"\nsucceeded = [\"paid\"]\nfailed = [\"paid\"]",
                "listed under two kinds",
            ),
            (
                "event_type = \"/type\"\namount = \"/data/amount\"\namount_format = \"decimal\"\nsucceeded = [\"paid\"]",
                "decimal amounts need a currency",
            ),
        ] {
            let err = parse_sources(&standard_with_mapping(mapping), &env)
                .expect_err("an unworkable mapping");
            let message = err.to_string();
            assert!(message.starts_with("source acme: "), "{message}");
            assert!(message.contains(problem), "{message}");
        }
    }
}
