//! The https client for certificate fetches: TLS through ring with the
//! webpki roots, https only, no redirects, a timeout.

use std::sync::Arc;
use std::time::Duration;

/// Why the https client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    // Causes are in the messages (not `source`s): callers show `to_string()`.
    /// The TLS configuration was refused.
    #[error("TLS configuration for PayPal certificate fetches: {0}")]
    Tls(rustls::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client for PayPal certificate fetches: {0}")]
    Http(reqwest::Error),
}

/// A client whose requests give up after `timeout`, connection included.
pub(super) fn build(timeout: Duration) -> Result<reqwest::Client, ClientBuildError> {
    // ring as the crypto provider (no process-wide default is installed
    // or needed) and the Mozilla roots from webpki-roots, so fetches do
    // not depend on the host's CA bundle.
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(ClientBuildError::Tls)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(true)
        // A redirect could lead off the allow-listed hosts.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(ClientBuildError::Http)
}
