//! How authorization is configured: the `FULFIL_AUTH_*` variables.
//!
//! Authorization is on when a key is configured (`FULFIL_AUTH_JWT_HS256_SECRET`,
//! `FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE`, or both); then the issuer and the
//! audience are required too. Nothing set: off, every call allowed (local
//! use). Anything half-configured refuses to start rather than run open.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::Authenticator;
use super::keys::{self, KeyFileError, MIN_HS256_SECRET_LEN};
use super::token::Verifier;

/// Options of `serve` for bearer-token authorization.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthArgs {
    /// Shared secret of HS256 tokens (at least 32 bytes, used as given).
    /// Prefer the variable to the flag.
    #[arg(long, env = "FULFIL_AUTH_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,
    /// PEM file of RSA and Ed25519 public keys that sign tokens (RS256,
    /// EdDSA); `kid: NAME` before a block labels it.
    #[arg(long, env = "FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE")]
    pub jwt_public_keys_file: Option<PathBuf>,
    /// The `iss` every token must carry.
    #[arg(long, env = "FULFIL_AUTH_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The `aud` every token must name.
    #[arg(long, env = "FULFIL_AUTH_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    #[arg(long, env = "FULFIL_AUTH_JWT_LEEWAY_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub jwt_leeway_secs: u64,
}

/// Why authorization cannot be set up. Names variables and files, never a
/// secret or key.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A key is set but the issuer or the audience is not.
    #[error(
        "{0} must be set when a JWT key is configured (FULFIL_AUTH_JWT_HS256_SECRET or FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE)"
    )]
    Missing(&'static str),
    /// Issuer or audience set, but no key: refuse rather than run open.
    #[error(
        "{0} is set but no JWT key is: set FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE or FULFIL_AUTH_JWT_HS256_SECRET, or unset it to run without authorization"
    )]
    NoKey(&'static str),
    /// The shared secret is too short.
    #[error("FULFIL_AUTH_JWT_HS256_SECRET must be at least {MIN_HS256_SECRET_LEN} bytes")]
    WeakSecret,
    /// The keys file cannot be read.
    #[error("FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The keys file holds something unusable.
    #[error("FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE ({path}): {problem}")]
    Keys {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: KeyFileError,
    },
}

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl AuthArgs {
    /// The authenticator these options describe: off when nothing is set.
    pub fn load(&self) -> Result<Authenticator, AuthConfigError> {
        let secret = self.jwt_hs256_secret.as_deref().filter(|s| !s.is_empty());
        let keys_file = self
            .jwt_public_keys_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty());
        let issuer = set(&self.jwt_issuer);
        let audience = set(&self.jwt_audience);
        if secret.is_none() && keys_file.is_none() {
            return match (issuer, audience) {
                (None, None) => Ok(Authenticator::off()),
                (Some(_), _) => Err(AuthConfigError::NoKey("FULFIL_AUTH_JWT_ISSUER")),
                (None, Some(_)) => Err(AuthConfigError::NoKey("FULFIL_AUTH_JWT_AUDIENCE")),
            };
        }
        let issuer = issuer.ok_or(AuthConfigError::Missing("FULFIL_AUTH_JWT_ISSUER"))?;
        let audience = audience.ok_or(AuthConfigError::Missing("FULFIL_AUTH_JWT_AUDIENCE"))?;
        let mut keys = Vec::new();
        if let Some(secret) = secret {
            keys.push(keys::hs256_key(secret).ok_or(AuthConfigError::WeakSecret)?);
        }
        if let Some(path) = keys_file {
            keys.extend(read_keys_file(path)?);
        }
        Ok(Authenticator::on(Verifier::new(
            keys,
            issuer.to_owned(),
            audience.to_owned(),
            Duration::from_secs(self.jwt_leeway_secs),
        )))
    }
}

fn read_keys_file(path: &Path) -> Result<Vec<keys::VerificationKey>, AuthConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    keys::parse_public_keys(&text).map_err(|problem| AuthConfigError::Keys {
        path: path.to_owned(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> AuthArgs {
        AuthArgs {
            jwt_leeway_secs: 30,
            ..AuthArgs::default()
        }
    }

    #[test]
    fn nothing_set_is_off() {
        let auth = args().load().expect("off");
        assert!(!auth.is_on());
    }

    #[test]
    fn half_configured_refuses_to_start() {
        let only_issuer = AuthArgs {
            jwt_issuer: Some("https://issuer".into()),
            ..args()
        };
        let err = only_issuer.load().expect_err("no key");
        assert!(err.to_string().contains("FULFIL_AUTH_JWT_ISSUER"), "{err}");

        let secret = "s".repeat(40);
        let no_audience = AuthArgs {
            jwt_hs256_secret: Some(secret.clone()),
            jwt_issuer: Some("https://issuer".into()),
            ..args()
        };
        let err = no_audience.load().expect_err("no audience");
        assert!(
            err.to_string().contains("FULFIL_AUTH_JWT_AUDIENCE"),
            "{err}"
        );
        assert!(!err.to_string().contains(&secret));

        let weak = AuthArgs {
            jwt_hs256_secret: Some("short-secret".into()),
            jwt_issuer: Some("i".into()),
            jwt_audience: Some("a".into()),
            ..args()
        };
        let err = weak.load().expect_err("weak");
        assert!(!err.to_string().contains("short-secret"));

        let missing_file = AuthArgs {
            jwt_public_keys_file: Some("/nonexistent/keys.pem".into()),
            jwt_issuer: Some("i".into()),
            jwt_audience: Some("a".into()),
            ..args()
        };
        let err = missing_file.load().expect_err("missing file");
        assert!(
            err.to_string().contains("FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE"),
            "{err}"
        );
    }

    #[test]
    fn a_secret_with_issuer_and_audience_is_on() {
        let auth = AuthArgs {
            jwt_hs256_secret: Some("s".repeat(40)),
            jwt_issuer: Some("i".into()),
            jwt_audience: Some("a".into()),
            ..args()
        }
        .load()
        .expect("on");
        assert!(auth.is_on());
        assert!(!format!("{auth:?}").contains(&"s".repeat(40)));
    }
}
