//! Clients that fetch one document from an https URL the configuration
//! names (PayPal's signing certificates, an identity provider's JWKS): TLS
//! through ring, with the Mozilla roots of webpki-roots (the same in every
//! image, no system bundle needed) or roots of the caller's; https only;
//! no redirects, since the configured URL is what is trusted; one timeout
//! for the connection and the whole exchange.

use std::sync::Arc;
use std::time::Duration;

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpsClientError {
    // Causes are in the messages (not `source`s): callers show `to_string()`.
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(rustls::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(reqwest::Error),
}

/// A client trusting `roots` (the Mozilla roots when None), whose requests
/// give up after `timeout`, connection included.
pub fn build(
    roots: Option<rustls::RootCertStore>,
    timeout: Duration,
) -> Result<reqwest::Client, HttpsClientError> {
    build_with(roots, timeout, timeout, Scheme::HttpsOnly)
}

/// Which URLs a client built by [`build_with`] may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// https only: the default for anything configured in production.
    HttpsOnly,
    /// http too: for an API base URL an operator set to a local fake
    /// (tests, `fulfil up` against a mock).
    AllowHttp,
}

/// A client as [`build`] makes it, with its own connection timeout (`connect`)
/// and whole-exchange timeout (`timeout`), and optionally plain http.
pub fn build_with(
    roots: Option<rustls::RootCertStore>,
    connect: Duration,
    timeout: Duration,
    scheme: Scheme,
) -> Result<reqwest::Client, HttpsClientError> {
    // ring as the crypto provider; no process-wide default is installed or
    // needed.
    let roots = roots.unwrap_or_else(|| {
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
    });
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(HttpsClientError::Tls)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(scheme == Scheme::HttpsOnly)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect)
        .timeout(timeout)
        .build()
        .map_err(HttpsClientError::Http)
}
