//! Certificates fetched over https from PayPal hosts, cached by URL.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;

use super::CertificateSource;
use super::client::{self, ClientBuildError};
use crate::verify::VerifyError;
use crate::verify::paypal::cache::{CACHE_CAPACITY, CACHE_TTL, CertificateCache};
use crate::verify::paypal::{PaypalCertificate, check_certificate_url};

/// How long one certificate fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest certificate document accepted (PayPal's chain is a few KiB).
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// Fetches certificates over https from PayPal hosts only, with a timeout,
/// a size limit, no redirects, and a bounded in-memory cache keyed by URL.
pub struct HttpsCertificateSource {
    client: reqwest::Client,
    cache: Mutex<CertificateCache>,
}

impl fmt::Debug for HttpsCertificateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsCertificateSource")
            .finish_non_exhaustive()
    }
}

impl HttpsCertificateSource {
    /// A source with the default [`FETCH_TIMEOUT`].
    pub fn new() -> Result<Self, ClientBuildError> {
        Self::with_timeout(FETCH_TIMEOUT)
    }

    /// A source whose fetches give up after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Result<Self, ClientBuildError> {
        Ok(HttpsCertificateSource {
            client: client::build(timeout)?,
            cache: Mutex::new(CertificateCache::new(CACHE_CAPACITY, CACHE_TTL)),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, CertificateCache> {
        // The cache holds no invariant a panicking holder could break.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch(&self, url: url::Url) -> Result<PaypalCertificate, VerifyError> {
        let unavailable = |reason| VerifyError::CertificateUnavailable { reason };
        let untrusted = |reason| VerifyError::CertificateUntrusted { reason };
        let mut response = self.client.get(url.clone()).send().await.map_err(|error| {
            tracing::warn!(%url, %error, "fetching a PayPal certificate failed");
            unavailable("certificate request failed")
        })?;
        let status = response.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            tracing::warn!(%url, %status, "PayPal certificate server error");
            return Err(unavailable("certificate server error"));
        }
        if !status.is_success() {
            tracing::warn!(%url, %status, "PayPal certificate URL served no certificate");
            return Err(untrusted("certificate URL served no certificate"));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_CERTIFICATE_BYTES as u64)
        {
            return Err(untrusted("certificate document too large"));
        }
        // The length header may be absent or wrong: count what arrives.
        let mut pem = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| {
            tracing::warn!(%url, %error, "reading a PayPal certificate failed");
            unavailable("certificate download failed")
        })? {
            if pem.len() + chunk.len() > MAX_CERTIFICATE_BYTES {
                return Err(untrusted("certificate document too large"));
            }
            pem.extend_from_slice(&chunk);
        }
        PaypalCertificate::from_pem(&pem)
    }
}

impl CertificateSource for HttpsCertificateSource {
    fn certificate<'a>(
        &'a self,
        url: &'a str,
    ) -> BoxFuture<'a, Result<Arc<PaypalCertificate>, VerifyError>> {
        Box::pin(async move {
            let url = check_certificate_url(url)?;
            if let Some(hit) = self.cache().get(url.as_str()) {
                return Ok(hit);
            }
            // Two concurrent misses both fetch; the second insert just
            // replaces the first. Not worth a per-URL lock for a rare event.
            let certificate = Arc::new(self.fetch(url.clone()).await?);
            self.cache().insert(url.as_str(), certificate.clone());
            Ok(certificate)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn https_source_builds_and_refuses_untrusted_urls_without_network() {
        let source = HttpsCertificateSource::new().expect("the client builds");
        let error = source
            .certificate("https://evil.example/cert")
            .await
            .expect_err("refused");
        assert_eq!(error.code(), "certificate_untrusted");
    }
}
