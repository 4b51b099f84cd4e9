//! One JWKS fetch: https only, TLS through ring, a timeout covering the
//! whole exchange, no redirects ([`fulfil_telemetry::https_client`]), and a
//! size limit.

use std::time::Duration;

use fulfil_telemetry::https_client::{self, HttpsClientError};

use super::parse;

/// Largest JWKS document accepted (real ones are a few KiB).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Why the https client cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("{0} (for the JWKS fetch)")]
pub struct ClientError(HttpsClientError);

/// Why a fetch brought no document. Names no key and no token.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection, TLS, timeout or a broken body.
    #[error("request failed: {0}")]
    Request(reqwest::Error),
    /// A status other than 2xx (redirects are not followed).
    #[error("answered HTTP {0}")]
    Status(u16),
    /// Larger than [`MAX_DOCUMENT_BYTES`].
    #[error("document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
}

/// A JWKS document and how long its headers say it stays fresh.
pub(super) struct Fetched {
    pub body: Vec<u8>,
    pub fresh_for: Option<Duration>,
}

/// A client trusting `roots` (the Mozilla roots when None), whose
/// requests give up after `timeout`, connection included.
pub(super) fn client(
    roots: Option<rustls::RootCertStore>,
    timeout: Duration,
) -> Result<reqwest::Client, ClientError> {
    https_client::build(roots, timeout).map_err(ClientError)
}

/// GETs the document at `url`.
pub(super) async fn fetch(
    client: &reqwest::Client,
    url: &reqwest::Url,
) -> Result<Fetched, FetchError> {
    let mut response = client
        .get(url.clone())
        .header(
            http::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .send()
        .await
        .map_err(|err| FetchError::Request(err.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let fresh_for = parse::freshness(
        header(http::header::CACHE_CONTROL).as_deref(),
        header(http::header::AGE).as_deref(),
    );
    // The length header may be absent or wrong: count what arrives.
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| FetchError::Request(err.without_url()))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { body, fresh_for })
}
