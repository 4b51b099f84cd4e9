//! How authorization is configured: the `FULFIL_AUTH_*` variables.
//!
//! Authorization is on when a key source is configured
//! (`FULFIL_AUTH_JWT_HS256_SECRET`, `FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE`,
//! `FULFIL_AUTH_JWT_JWKS_URL`, in any combination); then the issuer and the
//! audience are required too. Nothing set: off, every call allowed (local
//! use). Anything half-configured refuses to start rather than run open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::Authenticator;
use super::jwks::{self, JwksError, JwksOptions, JwksSource};
use super::keys::{self, KeyFileError, MIN_HS256_SECRET_LEN};
use super::token::{DEFAULT_CUSTOMER_CLAIM, Verifier};

/// The variable of the JWKS CA file, named in its errors.
pub const JWKS_CA_VAR: &str = "FULFIL_AUTH_JWT_JWKS_CA_FILE";

/// Claims Fulfil reads for other purposes, which cannot name the customer.
const RESERVED_CLAIMS: [&str; 7] = ["iss", "aud", "exp", "nbf", "iat", "scope", "scp"];

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
    /// JWKS URL of the identity provider (https): RS256/PS256, ES256/ES384
    /// and EdDSA keys, cached and refreshed on an unknown `kid` and when
    /// its Cache-Control max-age runs out.
    #[arg(long, env = "FULFIL_AUTH_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// PEM CA certificates trusted for the JWKS fetch instead of the public
    /// roots (an identity provider with an internal CA).
    #[arg(long, env = "FULFIL_AUTH_JWT_JWKS_CA_FILE")]
    pub jwt_jwks_ca_file: Option<PathBuf>,
    /// Least seconds between two JWKS fetches, whatever asks for them
    /// (default 30).
    #[arg(long, env = "FULFIL_AUTH_JWT_JWKS_MIN_REFRESH_SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub jwt_jwks_min_refresh_secs: Option<u64>,
    /// The claim whose value is an app client's customer id (a top-level
    /// string claim; default `sub`).
    #[arg(long, env = "FULFIL_AUTH_JWT_CUSTOMER_CLAIM")]
    pub jwt_customer_claim: Option<String>,
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
        "{0} must be set when a JWT key is configured (FULFIL_AUTH_JWT_HS256_SECRET, FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE or FULFIL_AUTH_JWT_JWKS_URL)"
    )]
    Missing(&'static str),
    /// A JWT setting is set, but no key: refuse rather than run open.
    #[error(
        "{0} is set but no JWT key is: set FULFIL_AUTH_JWT_JWKS_URL, FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE or FULFIL_AUTH_JWT_HS256_SECRET, or unset it to run without authorization"
    )]
    NoKey(&'static str),
    /// A JWKS option without the JWKS URL.
    #[error("{0} is set but FULFIL_AUTH_JWT_JWKS_URL is not")]
    NoJwksUrl(&'static str),
    /// The JWKS source cannot be set up (its messages name the variable).
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// The customer claim names a claim read for something else.
    #[error(
        "FULFIL_AUTH_JWT_CUSTOMER_CLAIM cannot be {0:?}, a claim Fulfil reads for another purpose"
    )]
    ReservedClaim(String),
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
    /// The JWKS, if any, is not fetched yet ([`Authenticator::load_keys`]).
    pub fn load(&self) -> Result<Authenticator, AuthConfigError> {
        let secret = self.jwt_hs256_secret.as_deref().filter(|s| !s.is_empty());
        let keys_file = self
            .jwt_public_keys_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty());
        let jwks_url = set(&self.jwt_jwks_url);
        let jwks_ca = self
            .jwt_jwks_ca_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty());
        let issuer = set(&self.jwt_issuer);
        let audience = set(&self.jwt_audience);
        let customer_claim = set(&self.jwt_customer_claim);
        if jwks_url.is_none() {
            if jwks_ca.is_some() {
                return Err(AuthConfigError::NoJwksUrl(JWKS_CA_VAR));
            }
            if self.jwt_jwks_min_refresh_secs.is_some() {
                return Err(AuthConfigError::NoJwksUrl(
                    "FULFIL_AUTH_JWT_JWKS_MIN_REFRESH_SECS",
                ));
            }
        }
        if secret.is_none() && keys_file.is_none() && jwks_url.is_none() {
            return match (issuer, audience, customer_claim) {
                (None, None, None) => Ok(Authenticator::off()),
                (Some(_), _, _) => Err(AuthConfigError::NoKey("FULFIL_AUTH_JWT_ISSUER")),
                (None, Some(_), _) => Err(AuthConfigError::NoKey("FULFIL_AUTH_JWT_AUDIENCE")),
                (None, None, Some(_)) => {
                    Err(AuthConfigError::NoKey("FULFIL_AUTH_JWT_CUSTOMER_CLAIM"))
                }
            };
        }
        let issuer = issuer.ok_or(AuthConfigError::Missing("FULFIL_AUTH_JWT_ISSUER"))?;
        let audience = audience.ok_or(AuthConfigError::Missing("FULFIL_AUTH_JWT_AUDIENCE"))?;
        let customer_claim = customer_claim.unwrap_or(DEFAULT_CUSTOMER_CLAIM);
        if RESERVED_CLAIMS.contains(&customer_claim) {
            return Err(AuthConfigError::ReservedClaim(customer_claim.to_owned()));
        }
        let mut keys = Vec::new();
        if let Some(secret) = secret {
            keys.push(keys::hs256_key(secret).ok_or(AuthConfigError::WeakSecret)?);
        }
        if let Some(path) = keys_file {
            keys.extend(read_keys_file(path)?);
        }
        let mut verifier = Verifier::new(
            keys,
            issuer.to_owned(),
            audience.to_owned(),
            Duration::from_secs(self.jwt_leeway_secs),
        )
        .with_customer_claim(customer_claim);
        if let Some(url) = jwks_url {
            let ca_pem = jwks_ca
                .map(|path| fulfil_telemetry::pem_file::read(JWKS_CA_VAR, path))
                .transpose()
                .map_err(JwksError::from)?;
            let min_refresh_interval = self
                .jwt_jwks_min_refresh_secs
                .map_or(jwks::MIN_REFRESH_INTERVAL, Duration::from_secs);
            let source = JwksSource::new(JwksOptions {
                ca_pem,
                min_refresh_interval,
                ..JwksOptions::new(url)
            })?;
            verifier = verifier.with_jwks(Arc::new(source));
        }
        Ok(Authenticator::on(verifier))
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
    fn a_jwks_url_with_issuer_and_audience_is_on() {
        let jwks = AuthArgs {
            jwt_jwks_url: Some("https://idp.example/.well-known/jwks.json".into()),
            jwt_issuer: Some("https://idp.example/".into()),
            jwt_audience: Some("fulfil".into()),
            jwt_customer_claim: Some("customer_id".into()),
            ..args()
        };
        let auth = jwks.load().expect("on");
        let verifier = auth.verifier().expect("verifier");
        assert!(verifier.jwks().is_some());
        assert_eq!(verifier.customer_claim(), "customer_id");

        let no_issuer = AuthArgs {
            jwt_issuer: None,
            ..jwks.clone()
        };
        let err = no_issuer.load().expect_err("no issuer");
        assert!(err.to_string().contains("FULFIL_AUTH_JWT_ISSUER"), "{err}");
        let no_audience = AuthArgs {
            jwt_audience: None,
            ..jwks.clone()
        };
        let err = no_audience.load().expect_err("no audience");
        assert!(
            err.to_string().contains("FULFIL_AUTH_JWT_AUDIENCE"),
            "{err}"
        );
        let plain_http = AuthArgs {
            jwt_jwks_url: Some("http://idp.example/jwks".into()),
            ..jwks.clone()
        };
        let err = plain_http.load().expect_err("http");
        assert!(
            err.to_string().contains("FULFIL_AUTH_JWT_JWKS_URL"),
            "{err}"
        );
        let reserved = AuthArgs {
            jwt_customer_claim: Some("scope".into()),
            ..jwks.clone()
        };
        assert!(matches!(
            reserved.load(),
            Err(AuthConfigError::ReservedClaim(_))
        ));
        let missing_ca = AuthArgs {
            jwt_jwks_ca_file: Some("/nonexistent/ca.pem".into()),
            ..jwks
        };
        let err = missing_ca.load().expect_err("missing CA");
        assert!(err.to_string().contains(JWKS_CA_VAR), "{err}");
    }

    #[test]
    fn jwks_options_without_a_url_refuse_to_start() {
        let ca_only = AuthArgs {
            jwt_jwks_ca_file: Some("ca.pem".into()),
            jwt_hs256_secret: Some("s".repeat(40)),
            jwt_issuer: Some("i".into()),
            jwt_audience: Some("a".into()),
            ..args()
        };
        assert!(matches!(
            ca_only.load(),
            Err(AuthConfigError::NoJwksUrl(JWKS_CA_VAR))
        ));
        let claim_only = AuthArgs {
            jwt_customer_claim: Some("uid".into()),
            ..args()
        };
        let err = claim_only.load().expect_err("no key");
        assert!(
            err.to_string().contains("FULFIL_AUTH_JWT_CUSTOMER_CLAIM"),
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
