//! The https client for certificate fetches: TLS through ring with the
//! webpki roots, https only, no redirects, a timeout
//! ([`fulfil_telemetry::https_client`]).

use std::time::Duration;

use fulfil_telemetry::https_client::{self, HttpsClientError};

/// Why the https client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0} (for PayPal certificate fetches)")]
pub struct ClientBuildError(HttpsClientError);

/// A client whose requests give up after `timeout`, connection included.
pub(super) fn build(timeout: Duration) -> Result<reqwest::Client, ClientBuildError> {
    https_client::build(None, timeout).map_err(ClientBuildError)
}
