//! Verification keys from an identity provider's JWKS URL
//! (`FULFIL_AUTH_JWT_JWKS_URL`): Firebase Auth, Supabase, Auth0, Keycloak,
//! Cognito.
//!
//! - Fetched over https ([`fetch`]): TLS through rustls with the Mozilla
//!   roots, or only a configured CA (an internal IdP, tests); a timeout on
//!   the whole exchange; no redirects; a size limit.
//! - Cached. The keys are fresh for the response's `Cache-Control: max-age`
//!   (less `Age`), clamped to [`JwksOptions::min_ttl`]..[`JwksOptions::max_ttl`],
//!   else [`JwksOptions::default_ttl`]. A token verified with stale keys
//!   starts a refresh in the background and does not wait for it.
//! - A token whose `kid` the cache lacks waits for a refresh (bounded by the
//!   fetch timeout), then is verified with what it brought: how a rotated
//!   key is picked up.
//! - At most one fetch per [`JwksOptions::min_refresh_interval`], whatever
//!   asks for it, so a flood of made-up `kid`s, or an IdP that keeps
//!   failing, costs the IdP one request per interval.
//! - A failed fetch (network, status, a document without usable keys)
//!   keeps the last good keys and is logged, without key material.

mod fetch;
mod parse;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::keys::VerificationKey;

pub use fetch::{ClientError, FetchError, MAX_DOCUMENT_BYTES};
pub use parse::DocumentError;

/// How long one fetch may take, connection included; also the longest a
/// request waits for a refresh.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default least time between two fetches.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Freshness when the response says nothing.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10 * 60);
/// Shortest freshness honoured (`max-age=0` would refetch on every token).
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// Longest freshness honoured, so a removed key stops working within a day.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Where the keys come from and how often they may be fetched.
#[derive(Clone)]
pub struct JwksOptions {
    /// The JWKS URL; https.
    pub url: String,
    /// PEM CA certificates trusted for the fetch instead of the Mozilla
    /// roots (an IdP with an internal CA).
    pub ca_pem: Option<Vec<u8>>,
    /// See [`FETCH_TIMEOUT`].
    pub fetch_timeout: Duration,
    /// See [`MIN_REFRESH_INTERVAL`].
    pub min_refresh_interval: Duration,
    /// See [`DEFAULT_TTL`].
    pub default_ttl: Duration,
    /// See [`MIN_TTL`].
    pub min_ttl: Duration,
    /// See [`MAX_TTL`].
    pub max_ttl: Duration,
}

impl std::fmt::Debug for JwksOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksOptions")
            .field("url", &self.url)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "set"))
            .field("fetch_timeout", &self.fetch_timeout)
            .field("min_refresh_interval", &self.min_refresh_interval)
            .finish_non_exhaustive()
    }
}

impl JwksOptions {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        JwksOptions {
            url: url.into(),
            ca_pem: None,
            fetch_timeout: FETCH_TIMEOUT,
            min_refresh_interval: MIN_REFRESH_INTERVAL,
            default_ttl: DEFAULT_TTL,
            min_ttl: MIN_TTL,
            max_ttl: MAX_TTL,
        }
    }

    fn ttl(&self, fresh_for: Option<Duration>) -> Duration {
        fresh_for
            .unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl.max(self.min_ttl))
    }
}

/// Why a JWKS source cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Not an absolute https URL.
    #[error("FULFIL_AUTH_JWT_JWKS_URL must be an https URL: {0}")]
    Url(&'static str),
    /// The CA certificates are unusable.
    #[error("{0}")]
    Ca(#[from] fulfil_telemetry::pem_file::PemFileError),
    /// The https client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Why a refresh brought no keys.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The fetch failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The document holds no usable key.
    #[error(transparent)]
    Document(#[from] DocumentError),
}

/// The keys at hand.
#[derive(Debug)]
pub struct KeySet {
    /// The usable keys of the last good document (none before the first).
    pub keys: Vec<VerificationKey>,
    /// Until when they are fresh; None before the first good fetch.
    fresh_until: Option<Instant>,
    /// Counts good fetches, so a waiter sees that another one refreshed.
    generation: u64,
}

impl KeySet {
    fn is_fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|until| now < until)
    }

    /// Whether a key is labelled `kid`.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// When the last fetch started, whatever asked for it; held while a fetch
/// runs, so there is one at a time.
#[derive(Debug, Default)]
struct Attempts {
    last: Option<Instant>,
}

impl Attempts {
    /// Starts an attempt unless one started less than `interval` ago.
    fn begin(&mut self, now: Instant, interval: Duration) -> bool {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < interval)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// The keys of one JWKS URL, cached and refreshed as described above.
pub struct JwksSource {
    url: reqwest::Url,
    client: reqwest::Client,
    options: JwksOptions,
    keys: RwLock<Arc<KeySet>>,
    attempts: Arc<Mutex<Attempts>>,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys();
        f.debug_struct("JwksSource")
            .field("url", &self.display_url())
            .field("keys", &keys.keys)
            .finish_non_exhaustive()
    }
}

impl JwksSource {
    /// A source for `options.url`, with no keys until the first fetch.
    pub fn new(options: JwksOptions) -> Result<Self, JwksError> {
        let url =
            reqwest::Url::parse(options.url.trim()).map_err(|_| JwksError::Url("unparsable"))?;
        if url.scheme() != "https" {
            return Err(JwksError::Url("the scheme must be https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(JwksError::Url("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(JwksError::Url("credentials in the URL"));
        }
        let roots = match &options.ca_pem {
            Some(pem) => Some(fulfil_telemetry::pem_file::roots(
                super::config::JWKS_CA_VAR,
                pem,
            )?),
            None => None,
        };
        let client = fetch::client(roots, options.fetch_timeout)?;
        Ok(JwksSource {
            url,
            client,
            options,
            keys: RwLock::new(Arc::new(KeySet {
                keys: Vec::new(),
                fresh_until: None,
                generation: 0,
            })),
            attempts: Arc::new(Mutex::new(Attempts::default())),
        })
    }

    /// The URL without its query, for logs.
    pub fn display_url(&self) -> String {
        let mut url = self.url.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.to_string()
    }

    /// The keys at hand.
    pub fn keys(&self) -> Arc<KeySet> {
        // A panicking writer cannot leave a half-written Arc behind.
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Fetches now (at start), whatever the interval: the service should
    /// not wait for a first token to learn its keys.
    pub async fn load(&self) -> Result<usize, RefreshError> {
        let mut attempts = self.attempts.lock().await;
        attempts.last = Some(Instant::now());
        self.fetch_and_store().await
    }

    /// For a token naming `kid`, which the keys at hand lack: refreshes
    /// unless a fetch started within the interval, waiting at most the
    /// fetch timeout. The caller then looks at the keys again.
    pub async fn refresh_for_unknown_kid(&self, kid: &str) {
        let seen = self.keys().generation;
        let refresh = async {
            let mut attempts = self.attempts.lock().await;
            let current = self.keys();
            // Another caller's fetch finished while this one waited.
            if current.generation != seen || current.knows(kid) {
                return;
            }
            if !attempts.begin(Instant::now(), self.options.min_refresh_interval) {
                tracing::debug!("token with an unknown kid; JWKS refresh rate-limited");
                return;
            }
            let _ = self.fetch_and_store().await;
        };
        if tokio::time::timeout(self.options.fetch_timeout, refresh)
            .await
            .is_err()
        {
            tracing::warn!(url = %self.display_url(), "JWKS refresh timed out");
        }
    }

    /// Starts a refresh in the background when the keys are stale and the
    /// interval allows; never waits. Outside a Tokio runtime, does nothing.
    pub fn refresh_if_stale(self: &Arc<Self>) {
        let now = Instant::now();
        if self.keys().is_fresh(now) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Busy: a fetch is already under way.
        let Ok(mut attempts) = Arc::clone(&self.attempts).try_lock_owned() else {
            return;
        };
        if !attempts.begin(now, self.options.min_refresh_interval) {
            return;
        }
        let source = Arc::clone(self);
        runtime.spawn(async move {
            let _attempts = attempts;
            let fetch = source.fetch_and_store();
            if tokio::time::timeout(source.options.fetch_timeout, fetch)
                .await
                .is_err()
            {
                tracing::warn!(url = %source.display_url(), "JWKS refresh timed out");
            }
        });
    }

    /// One fetch; on success the new keys replace the old, on failure the
    /// old stay. Callers hold `attempts`.
    async fn fetch_and_store(&self) -> Result<usize, RefreshError> {
        let url = self.display_url();
        let fetched = async {
            let fetched = fetch::fetch(&self.client, &self.url).await?;
            let keys = parse::key_set(&fetched.body)?;
            Ok::<_, RefreshError>((keys, fetched.fresh_for))
        }
        .await;
        let (keys, fresh_for) = match fetched {
            Ok(found) => found,
            Err(error) => {
                let kept = self.keys().keys.len();
                tracing::warn!(%url, %error, kept, "JWKS refresh failed; keeping the last good keys");
                return Err(error);
            }
        };
        let ttl = self.options.ttl(fresh_for);
        let count = keys.len();
        let kids: Vec<&str> = keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        tracing::info!(%url, keys = count, kids = %kids.join(","), fresh_secs = ttl.as_secs(), "JWKS loaded");
        let mut slot = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let generation = slot.generation + 1;
        *slot = Arc::new(KeySet {
            keys,
            fresh_until: Some(Instant::now() + ttl),
            generation,
        });
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_is_clamped() {
        let options = JwksOptions::new("https://idp.test/jwks");
        assert_eq!(options.ttl(None), DEFAULT_TTL);
        assert_eq!(options.ttl(Some(Duration::ZERO)), MIN_TTL);
        assert_eq!(options.ttl(Some(Duration::from_secs(3600))).as_secs(), 3600);
        assert_eq!(options.ttl(Some(Duration::from_secs(10_000_000))), MAX_TTL);
    }

    #[test]
    fn one_attempt_per_interval() {
        let mut attempts = Attempts::default();
        let start = Instant::now();
        let interval = Duration::from_secs(30);
        assert!(attempts.begin(start, interval));
        assert!(!attempts.begin(start + Duration::from_secs(29), interval));
        assert!(attempts.begin(start + Duration::from_secs(30), interval));
    }

    #[test]
    fn only_https_urls_without_credentials() {
        let source = |url: &str| JwksSource::new(JwksOptions::new(url)).map(|_| ());
        assert!(source("https://idp.example/.well-known/jwks.json").is_ok());
        for bad in [
            "http://idp.example/jwks",
            "https://user:pass@idp.example/jwks",
            "idp.example/jwks",
            "file:///etc/jwks.json",
        ] {
            assert!(matches!(source(bad), Err(JwksError::Url(_))), "{bad}");
        }
        let bad_ca = JwksSource::new(JwksOptions {
            ca_pem: Some(b"not a certificate".to_vec()),
            ..JwksOptions::new("https://idp.example/jwks")
        });
        assert!(matches!(bad_ca, Err(JwksError::Ca(_))));
    }
}
