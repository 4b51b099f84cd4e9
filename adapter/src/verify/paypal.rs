//! PayPal: transmission signatures checked with PayPal's certificate.
//!
//! Headers: `PAYPAL-TRANSMISSION-ID`, `PAYPAL-TRANSMISSION-TIME` (RFC 3339),
//! `PAYPAL-TRANSMISSION-SIG` (base64), `PAYPAL-CERT-URL` and
//! `PAYPAL-AUTH-ALGO` (only `SHA256withRSA`). The signed string is
//! `"{transmission id}|{transmission time}|{webhook id}|{crc32 of the raw body, unsigned decimal}"`,
//! where the webhook id is the one PayPal gave the subscription (configured
//! per source). The signature is RSA PKCS#1 v1.5 with SHA-256, by the key
//! of the certificate at `PAYPAL-CERT-URL`.
//!
//! What is checked about the certificate, and what is not:
//! - its URL: https, port 443, no userinfo, host `api.paypal.com`,
//!   `api.sandbox.paypal.com` or another `*.paypal.com` host, checked before
//!   anything is fetched, for every [`CertificateSource`];
//! - its validity dates, as of the `now` passed to [`PaypalVerifier::verify`];
//! - its subject common name is a `*.paypal.com` host.
//! - NOT its chain to a root CA, nor revocation. Trust rests on where the
//!   certificate comes from: over TLS (checked against the webpki roots) from
//!   a PayPal host ([`HttpsCertificateSource`]), or from a file the operator
//!   put there ([`FileCertificateSource`]). A self-signed certificate with a
//!   PayPal name served from elsewhere is never fetched.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::future::BoxFuture;
use http::HeaderMap;
use rsa::pkcs1v15;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use x509_cert::Certificate;
use x509_cert::der::Encode as _;

use super::{Sha256, VerifyError, check_timestamp, optional_header, required_header};

/// `PAYPAL-TRANSMISSION-ID` (lower case, as `http` stores names).
pub const TRANSMISSION_ID: &str = "paypal-transmission-id";
/// `PAYPAL-TRANSMISSION-TIME`, RFC 3339.
pub const TRANSMISSION_TIME: &str = "paypal-transmission-time";
/// `PAYPAL-TRANSMISSION-SIG`, base64.
pub const TRANSMISSION_SIG: &str = "paypal-transmission-sig";
/// `PAYPAL-CERT-URL`.
pub const CERT_URL: &str = "paypal-cert-url";
/// `PAYPAL-AUTH-ALGO`.
pub const AUTH_ALGO: &str = "paypal-auth-algo";

/// The only `PAYPAL-AUTH-ALGO` accepted.
pub const SUPPORTED_ALGORITHM: &str = "SHA256withRSA";

/// Default tolerance between the transmission time and now, either side.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Checks that `url` may be fetched for a PayPal signing certificate:
/// `https`, default port, no userinfo, and a PayPal host (`api.paypal.com`,
/// `api.sandbox.paypal.com`, or any host ending in `.paypal.com`).
pub fn check_certificate_url(url: &str) -> Result<url::Url, VerifyError> {
    let untrusted = |reason| VerifyError::CertificateUntrusted { reason };
    let parsed = url::Url::parse(url).map_err(|_| untrusted("certificate URL does not parse"))?;
    if parsed.scheme() != "https" {
        return Err(untrusted("certificate URL is not https"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(untrusted("certificate URL has userinfo"));
    }
    // `url` drops an explicit `:443` for https, so any port here is another one.
    if parsed.port().is_some() {
        return Err(untrusted("certificate URL has a non-default port"));
    }
    // The parser has already lower-cased and IDNA-normalised the host; an IP
    // address is never a PayPal host.
    let trusted = match parsed.host() {
        Some(url::Host::Domain(host)) => is_paypal_host(host),
        _ => false,
    };
    if !trusted {
        return Err(untrusted("certificate URL is not on a PayPal host"));
    }
    Ok(parsed)
}

fn is_paypal_host(host: &str) -> bool {
    host == "api.paypal.com" || host == "api.sandbox.paypal.com" || host.ends_with(".paypal.com")
}

/// A PayPal signing certificate: its RSA public key, its validity window,
/// and its subject common name.
pub struct PaypalCertificate {
    key: pkcs1v15::VerifyingKey<Sha256>,
    common_name: String,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl fmt::Debug for PaypalCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaypalCertificate")
            .field("common_name", &self.common_name)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl PaypalCertificate {
    /// Reads the first certificate of a PEM document (PayPal serves the
    /// signing certificate first, possibly followed by its chain).
    ///
    /// Refuses ([`VerifyError::CertificateUntrusted`]) anything that is not
    /// an X.509 certificate with an RSA key whose subject common name is a
    /// `*.paypal.com` host.
    pub fn from_pem(pem: &[u8]) -> Result<Self, VerifyError> {
        let untrusted = |reason| VerifyError::CertificateUntrusted { reason };
        let chain = Certificate::load_pem_chain(pem)
            .map_err(|_| untrusted("not a PEM X.509 certificate"))?;
        let certificate = chain
            .first()
            .ok_or(untrusted("no certificate in the PEM document"))?;
        let tbs = certificate.tbs_certificate();

        let common_name = tbs
            .subject()
            .common_name()
            .ok()
            .flatten()
            .map(String::from)
            .ok_or(untrusted("certificate subject has no common name"))?;
        if !is_paypal_host(&common_name.to_ascii_lowercase()) {
            return Err(untrusted("certificate subject is not a PayPal host"));
        }

        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|_| untrusted("certificate public key does not encode"))?;
        let key = pkcs1v15::VerifyingKey::<Sha256>::from_public_key_der(&spki)
            .map_err(|_| untrusted("certificate key is not a usable RSA key"))?;

        let validity = tbs.validity();
        Ok(PaypalCertificate {
            key,
            common_name,
            not_before: validity.not_before.to_system_time(),
            not_after: validity.not_after.to_system_time(),
        })
    }

    /// The subject common name (a `*.paypal.com` host).
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// Start of the validity window.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of the validity window.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Refuses the certificate if `now` is outside its validity window.
    pub fn check_valid_at(&self, now: SystemTime) -> Result<(), VerifyError> {
        if now < self.not_before {
            return Err(VerifyError::CertificateUntrusted {
                reason: "certificate is not valid yet",
            });
        }
        if now > self.not_after {
            return Err(VerifyError::CertificateUntrusted {
                reason: "certificate has expired",
            });
        }
        Ok(())
    }

    /// Checks an RSA PKCS#1 v1.5 SHA-256 `signature` of `message`.
    fn verify_signature(&self, message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
        let signature = pkcs1v15::Signature::try_from(signature).map_err(|_| {
            VerifyError::MalformedSignature {
                header: TRANSMISSION_SIG,
                reason: "signature is too long",
            }
        })?;
        self.key
            .verify(message, &signature)
            .map_err(|_| VerifyError::SignatureMismatch)
    }
}

/// Where the verifier gets the certificate named by `PAYPAL-CERT-URL`.
///
/// Implementations must refuse URLs that [`check_certificate_url`] refuses
/// ([`PaypalVerifier`] checks too, before calling), answer
/// [`VerifyError::CertificateUnavailable`] for transient failures (the HTTP
/// layer answers 503, so PayPal retries) and
/// [`VerifyError::CertificateUntrusted`] for anything that is not a usable
/// PayPal certificate.
pub trait CertificateSource: Send + Sync {
    /// The certificate at `url`.
    fn certificate<'a>(
        &'a self,
        url: &'a str,
    ) -> BoxFuture<'a, Result<Arc<PaypalCertificate>, VerifyError>>;
}

/// Serves one certificate, read from a PEM file, for every allowed URL: for
/// offline tests and air-gapped deployments, where the operator puts
/// PayPal's current certificate in place.
#[derive(Debug, Clone)]
pub struct FileCertificateSource {
    certificate: Arc<PaypalCertificate>,
}

/// Why a certificate file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertificateFileError {
    // Causes are in the messages (not `source`s): callers show `to_string()`.
    /// The file could not be read.
    #[error("cannot read the PayPal certificate file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not a usable PayPal certificate.
    #[error("the PayPal certificate file {path} is unusable: {error}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        error: VerifyError,
    },
}

impl FileCertificateSource {
    /// Reads the PEM certificate at `path` (once, now).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CertificateFileError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|error| CertificateFileError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::from_pem(&pem).map_err(|error| CertificateFileError::Invalid {
            path: path.to_owned(),
            error,
        })
    }

    /// Serves the certificate in `pem`.
    pub fn from_pem(pem: &[u8]) -> Result<Self, VerifyError> {
        Ok(FileCertificateSource {
            certificate: Arc::new(PaypalCertificate::from_pem(pem)?),
        })
    }
}

impl CertificateSource for FileCertificateSource {
    fn certificate<'a>(
        &'a self,
        url: &'a str,
    ) -> BoxFuture<'a, Result<Arc<PaypalCertificate>, VerifyError>> {
        Box::pin(async move {
            check_certificate_url(url)?;
            Ok(self.certificate.clone())
        })
    }
}

/// How long one certificate fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest certificate document accepted (PayPal's chain is a few KiB).
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;
/// How many certificate URLs are cached (PayPal uses a handful at a time).
pub const CACHE_CAPACITY: usize = 32;
/// How long a fetched certificate is reused before it is fetched again.
/// Validity dates are checked at every use regardless.
pub const CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

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

impl HttpsCertificateSource {
    /// A source with the default [`FETCH_TIMEOUT`].
    pub fn new() -> Result<Self, ClientBuildError> {
        Self::with_timeout(FETCH_TIMEOUT)
    }

    /// A source whose fetches give up after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Result<Self, ClientBuildError> {
        // ring as the crypto provider (no process-wide default is installed
        // or needed) and the Mozilla roots from webpki-roots, so fetches do
        // not depend on the host's CA bundle.
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(ClientBuildError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(true)
            // A redirect could lead off the allow-listed hosts.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(ClientBuildError::Http)?;
        Ok(HttpsCertificateSource {
            client,
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

/// A bounded URL -> certificate cache; the oldest entry goes first.
struct CertificateCache {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<String, (Arc<PaypalCertificate>, Instant)>,
    /// Insertion order, oldest first.
    order: VecDeque<String>,
}

impl CertificateCache {
    fn new(capacity: usize, ttl: Duration) -> Self {
        CertificateCache {
            capacity: capacity.max(1),
            ttl,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&self, url: &str) -> Option<Arc<PaypalCertificate>> {
        self.entries
            .get(url)
            .filter(|(_, fetched)| fetched.elapsed() <= self.ttl)
            .map(|(certificate, _)| certificate.clone())
    }

    fn insert(&mut self, url: &str, certificate: Arc<PaypalCertificate>) {
        if let Some(entry) = self.entries.get_mut(url) {
            *entry = (certificate, Instant::now());
            return;
        }
        while self.entries.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.order.push_back(url.to_owned());
        self.entries
            .insert(url.to_owned(), (certificate, Instant::now()));
    }
}

/// Verifies PayPal webhooks for one webhook subscription.
pub struct PaypalVerifier {
    webhook_id: String,
    certificates: Arc<dyn CertificateSource>,
    tolerance: Duration,
}

impl fmt::Debug for PaypalVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaypalVerifier")
            .field("webhook_id", &self.webhook_id)
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl PaypalVerifier {
    /// A verifier for the subscription `webhook_id` (as shown by PayPal),
    /// with the [`DEFAULT_TOLERANCE`].
    pub fn new(webhook_id: impl Into<String>, certificates: Arc<dyn CertificateSource>) -> Self {
        PaypalVerifier {
            webhook_id: webhook_id.into(),
            certificates,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// The same verifier with another transmission time tolerance.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a PayPal delivery of `body` (the exact bytes received) as of
    /// `now`: the headers, then the certificate URL (before any fetch), the
    /// certificate's validity at `now`, the transmission time within the
    /// tolerance (either side), and finally the RSA signature.
    pub async fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let transmission_id = required_header(headers, TRANSMISSION_ID)?;
        let transmission_time = required_header(headers, TRANSMISSION_TIME)?;
        let signature =
            optional_header(headers, TRANSMISSION_SIG)?.ok_or(VerifyError::MissingSignature {
                header: TRANSMISSION_SIG,
            })?;
        let cert_url = required_header(headers, CERT_URL)?;
        if required_header(headers, AUTH_ALGO)? != SUPPORTED_ALGORITHM {
            return Err(VerifyError::UnsupportedAlgorithm { header: AUTH_ALGO });
        }
        let signature = BASE64
            .decode(signature)
            .map_err(|_| VerifyError::MalformedSignature {
                header: TRANSMISSION_SIG,
                reason: "signature is not base64",
            })?;
        let sent_at = parse_rfc3339(transmission_time)?;

        check_certificate_url(cert_url)?;
        let certificate = self.certificates.certificate(cert_url).await?;
        certificate.check_valid_at(now)?;
        check_timestamp(sent_at, now, self.tolerance)?;

        let message = format!(
            "{transmission_id}|{transmission_time}|{}|{}",
            self.webhook_id,
            crc32fast::hash(body)
        );
        certificate.verify_signature(message.as_bytes(), &signature)
    }
}

fn parse_rfc3339(value: &str) -> Result<SystemTime, VerifyError> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| VerifyError::MalformedHeader {
            header: TRANSMISSION_TIME,
            reason: "not an RFC 3339 time",
        })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::Value;

    use super::*;
    use crate::verify::test_vectors::{headers, text, vectors};

    fn vector() -> Value {
        vectors("paypal").remove(0)
    }

    fn vector_headers(vector: &Value) -> Vec<(String, String)> {
        vector["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(name, value)| {
                (
                    name.clone(),
                    value.as_str().expect("a header value").to_owned(),
                )
            })
            .collect()
    }

    fn header_map(pairs: &[(String, String)]) -> HeaderMap {
        headers(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    /// `pairs` with header `name` replaced by `value` (or removed if `None`).
    fn with(pairs: &[(String, String)], name: &str, value: Option<&str>) -> HeaderMap {
        let mut changed: Vec<(String, String)> = pairs
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .cloned()
            .collect();
        if let Some(value) = value {
            changed.push((name.to_owned(), value.to_owned()));
        }
        header_map(&changed)
    }

    /// The vector's transmission time.
    fn vector_time() -> SystemTime {
        parse_rfc3339("2017-03-30T20:04:05Z").expect("a time")
    }

    /// A certificate source that counts its calls, to prove refusals happen before any fetch.
    struct Counting {
        inner: FileCertificateSource,
        calls: AtomicUsize,
    }

    impl CertificateSource for Counting {
        fn certificate<'a>(
            &'a self,
            url: &'a str,
        ) -> BoxFuture<'a, Result<Arc<PaypalCertificate>, VerifyError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.inner.certificate(url)
        }
    }

    /// A source that is down.
    struct Down;

    impl CertificateSource for Down {
        fn certificate<'a>(
            &'a self,
            _url: &'a str,
        ) -> BoxFuture<'a, Result<Arc<PaypalCertificate>, VerifyError>> {
            Box::pin(async {
                Err(VerifyError::CertificateUnavailable {
                    reason: "certificate request failed",
                })
            })
        }
    }

    fn setup() -> (Value, Vec<(String, String)>, PaypalVerifier, Arc<Counting>) {
        let vector = vector();
        let pairs = vector_headers(&vector);
        let source = Arc::new(Counting {
            inner: FileCertificateSource::from_pem(text(&vector, "certificate_pem").as_bytes())
                .expect("the certificate"),
            calls: AtomicUsize::new(0),
        });
        let verifier = PaypalVerifier::new(text(&vector, "webhook_id"), source.clone());
        (vector, pairs, verifier, source)
    }

    #[test]
    fn verification_can_run_on_any_tokio_worker() {
        fn assert_send<T: Send>(_: &T) {}
        let (vector, pairs, verifier, _) = setup();
        let map = header_map(&pairs);
        assert_send(&verifier.verify(&map, text(&vector, "body").as_bytes(), vector_time()));
    }

    #[tokio::test]
    async fn vector_verifies_as_of_its_time() {
        let (vector, pairs, verifier, _) = setup();
        let body = text(&vector, "body").as_bytes();
        assert_eq!(
            crc32fast::hash(body) as u64,
            vector["crc32"].as_u64().expect("crc32")
        );
        assert_eq!(
            verifier
                .verify(&header_map(&pairs), body, vector_time())
                .await,
            Ok(())
        );
        // Header names are case-insensitive: lower-case ones verify too.
        let lower: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        assert_eq!(
            verifier
                .verify(&header_map(&lower), body, vector_time())
                .await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn the_signed_string_matches_the_vector() {
        let vector = vector();
        let body = text(&vector, "body").as_bytes();
        let pairs = vector_headers(&vector);
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .expect("header")
        };
        let signed = format!(
            "{}|{}|{}|{}",
            get("PAYPAL-TRANSMISSION-ID"),
            get("PAYPAL-TRANSMISSION-TIME"),
            text(&vector, "webhook_id"),
            crc32fast::hash(body)
        );
        assert_eq!(signed, text(&vector, "signed_string"));
    }

    #[tokio::test]
    async fn any_changed_body_byte_is_refused() {
        let (vector, pairs, verifier, _) = setup();
        let body = text(&vector, "body").as_bytes();
        for i in [0, 1, body.len() / 2, body.len() - 1] {
            let mut changed = body.to_vec();
            changed[i] ^= 0x01;
            assert_eq!(
                verifier
                    .verify(&header_map(&pairs), &changed, vector_time())
                    .await,
                Err(VerifyError::SignatureMismatch),
                "byte {i}"
            );
        }
    }

    #[tokio::test]
    async fn another_webhook_id_or_signed_field_is_refused() {
        let (vector, pairs, _, source) = setup();
        let body = text(&vector, "body").as_bytes();
        let other = PaypalVerifier::new("96605875FF6516634", source);
        assert_eq!(
            other.verify(&header_map(&pairs), body, vector_time()).await,
            Err(VerifyError::SignatureMismatch)
        );
        let (_, _, verifier, _) = setup();
        let changed_id = with(
            &pairs,
            TRANSMISSION_ID,
            Some("071f7d20-1584-11e7-abf0-6b62a8a99ac5"),
        );
        assert_eq!(
            verifier.verify(&changed_id, body, vector_time()).await,
            Err(VerifyError::SignatureMismatch)
        );
        // Same instant, other spelling: the signature covers the string as sent.
        let changed_time = with(&pairs, TRANSMISSION_TIME, Some("2017-03-30T20:04:05+00:00"));
        assert_eq!(
            verifier.verify(&changed_time, body, vector_time()).await,
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[tokio::test]
    async fn expired_certificate_is_untrusted_today() {
        let (vector, pairs, verifier, _) = setup();
        let body = text(&vector, "body").as_bytes();
        let error = verifier
            .verify(&header_map(&pairs), body, SystemTime::now())
            .await
            .expect_err("expired");
        assert_eq!(error.code(), "certificate_untrusted");
        assert_eq!(error.http_status(), 400);
        // And before its validity started.
        let early = parse_rfc3339("2017-02-17T00:00:00Z").expect("a time");
        assert_eq!(
            verifier
                .verify(&header_map(&pairs), body, early)
                .await
                .map_err(|e| e.code()),
            Err("certificate_untrusted")
        );
    }

    #[tokio::test]
    async fn transmission_time_tolerance_is_two_sided() {
        let (vector, pairs, verifier, _) = setup();
        let body = text(&vector, "body").as_bytes();
        let map = header_map(&pairs);
        let t = vector_time();
        let minute = Duration::from_secs(60);
        assert_eq!(verifier.verify(&map, body, t + 5 * minute).await, Ok(()));
        assert_eq!(verifier.verify(&map, body, t - 5 * minute).await, Ok(()));
        assert_eq!(
            verifier.verify(&map, body, t + 6 * minute).await,
            Err(VerifyError::TimestampTooOld)
        );
        assert_eq!(
            verifier.verify(&map, body, t - 6 * minute).await,
            Err(VerifyError::TimestampInFuture)
        );
        let (_, _, verifier, _) = setup();
        let strict = verifier.with_tolerance(Duration::from_secs(10));
        assert_eq!(
            strict.verify(&map, body, t + minute).await,
            Err(VerifyError::TimestampTooOld)
        );
    }

    #[tokio::test]
    async fn untrusted_certificate_urls_are_refused_before_any_fetch() {
        let (vector, pairs, verifier, source) = setup();
        let body = text(&vector, "body").as_bytes();
        for url in [
            "https://evil.example/v1/notifications/test",
            "https://api.sandbox.paypal.com.evil.example/cert",
            "https://evilpaypal.com/cert",
            "https://paypal.com.evil.example/cert",
            "https://api.sandbox.paypal.com@evil.example/cert",
            "https://user:pass@api.sandbox.paypal.com/cert",
            "https://api.sandbox.paypal.com:8443/cert",
            "http://api.sandbox.paypal.com/cert",
            "ftp://api.sandbox.paypal.com/cert",
            "https://127.0.0.1/cert",
            "https://[::1]/cert",
            "//api.sandbox.paypal.com/cert",
            "not a url",
            "",
        ] {
            let result = verifier
                .verify(&with(&pairs, CERT_URL, Some(url)), body, vector_time())
                .await;
            assert_eq!(
                result.map_err(|e| e.code()),
                Err("certificate_untrusted"),
                "{url}"
            );
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 0);
        // The sources refuse on their own too.
        assert!(
            source
                .inner
                .certificate("https://evil.example/")
                .await
                .is_err()
        );
    }

    #[test]
    fn certificate_url_allow_list() {
        for url in [
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42",
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42",
            "https://api-m.paypal.com/v1/notifications/certs/CERT-1",
            "https://API.PAYPAL.COM/cert",
            "https://api.paypal.com:443/cert",
        ] {
            assert!(check_certificate_url(url).is_ok(), "{url}");
        }
    }

    #[tokio::test]
    async fn missing_duplicated_and_malformed_headers() {
        let (vector, pairs, verifier, _) = setup();
        let body = text(&vector, "body").as_bytes();
        let t = vector_time();
        for (name, code) in [
            (TRANSMISSION_ID, "missing_header"),
            (TRANSMISSION_TIME, "missing_header"),
            (TRANSMISSION_SIG, "missing_signature"),
            (CERT_URL, "missing_header"),
            (AUTH_ALGO, "missing_header"),
        ] {
            let result = verifier.verify(&with(&pairs, name, None), body, t).await;
            assert_eq!(result.map_err(|e| e.code()), Err(code), "{name}");
        }
        let mut twice = header_map(&pairs);
        let value = twice.get(TRANSMISSION_SIG).expect("present").clone();
        twice.append(TRANSMISSION_SIG, value);
        assert_eq!(
            verifier.verify(&twice, body, t).await,
            Err(VerifyError::DuplicateHeader {
                header: TRANSMISSION_SIG
            })
        );
        for (name, value, code) in [
            (AUTH_ALGO, "SHA1withRSA", "unsupported_algorithm"),
            (AUTH_ALGO, "sha256withrsa", "unsupported_algorithm"),
            (TRANSMISSION_SIG, "not base64!", "malformed_signature"),
            (TRANSMISSION_SIG, "", "signature_mismatch"),
            (TRANSMISSION_SIG, "c2hvcnQ=", "signature_mismatch"),
            (TRANSMISSION_TIME, "yesterday", "malformed_header"),
            (TRANSMISSION_TIME, "1490904245", "malformed_header"),
            (TRANSMISSION_TIME, "", "malformed_header"),
        ] {
            let result = verifier
                .verify(&with(&pairs, name, Some(value)), body, t)
                .await;
            assert_eq!(result.map_err(|e| e.code()), Err(code), "{name}: {value:?}");
        }
        let huge = BASE64.encode(vec![0u8; 2048]);
        let result = verifier
            .verify(&with(&pairs, TRANSMISSION_SIG, Some(&huge)), body, t)
            .await;
        assert_eq!(result.map_err(|e| e.code()), Err("malformed_signature"));
    }

    #[tokio::test]
    async fn an_unavailable_certificate_is_a_503() {
        let (vector, pairs, _, _) = setup();
        let verifier = PaypalVerifier::new(text(&vector, "webhook_id"), Arc::new(Down));
        let error = verifier
            .verify(
                &header_map(&pairs),
                text(&vector, "body").as_bytes(),
                vector_time(),
            )
            .await
            .expect_err("down");
        assert_eq!(
            (error.code(), error.http_status()),
            ("certificate_unavailable", 503)
        );
    }

    #[test]
    fn certificate_parsing() {
        let vector = vector();
        let pem = text(&vector, "certificate_pem");
        let certificate = PaypalCertificate::from_pem(pem.as_bytes()).expect("the certificate");
        assert_eq!(
            certificate.common_name(),
            "messageverificationcerts.sandbox.paypal.com"
        );
        assert_eq!(
            certificate.not_before(),
            parse_rfc3339("2017-02-18T00:00:00Z").expect("time")
        );
        assert_eq!(
            certificate.not_after(),
            parse_rfc3339("2019-04-26T12:00:00Z").expect("time")
        );
        // A chain (leaf first) is fine.
        let chain = format!("{pem}\n{pem}\n");
        assert!(PaypalCertificate::from_pem(chain.as_bytes()).is_ok());
        for bad in [
            "",
            "garbage",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            assert_eq!(
                PaypalCertificate::from_pem(bad.as_bytes())
                    .map_err(|e| e.code())
                    .map(|_| ()),
                Err("certificate_untrusted"),
                "{bad:?}"
            );
        }
        let shown = format!("{certificate:?}");
        assert!(shown.contains("messageverificationcerts"), "{shown}");
    }

    #[test]
    fn file_source_reads_a_pem_file() {
        let vector = vector();
        let dir = std::env::temp_dir().join(format!("adapter-paypal-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("paypal.pem");
        std::fs::write(&path, text(&vector, "certificate_pem")).expect("write");
        assert!(FileCertificateSource::open(&path).is_ok());
        std::fs::write(&path, "not a certificate").expect("write");
        assert!(matches!(
            FileCertificateSource::open(&path),
            Err(CertificateFileError::Invalid { .. })
        ));
        assert!(matches!(
            FileCertificateSource::open(dir.join("absent.pem")),
            Err(CertificateFileError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn https_source_builds_and_refuses_untrusted_urls_without_network() {
        let source = HttpsCertificateSource::new().expect("the client builds");
        let error = source
            .certificate("https://evil.example/cert")
            .await
            .expect_err("refused");
        assert_eq!(error.code(), "certificate_untrusted");
    }

    #[test]
    fn cache_is_bounded_and_expires() {
        let vector = vector();
        let certificate = Arc::new(
            PaypalCertificate::from_pem(text(&vector, "certificate_pem").as_bytes()).expect("cert"),
        );
        let mut cache = CertificateCache::new(3, Duration::from_secs(3600));
        for i in 0..5 {
            cache.insert(&format!("https://api.paypal.com/{i}"), certificate.clone());
        }
        assert_eq!(cache.entries.len(), 3);
        assert!(cache.get("https://api.paypal.com/0").is_none());
        assert!(cache.get("https://api.paypal.com/1").is_none());
        assert!(cache.get("https://api.paypal.com/4").is_some());
        // Re-inserting a present URL does not grow the cache.
        cache.insert("https://api.paypal.com/4", certificate.clone());
        assert_eq!((cache.entries.len(), cache.order.len()), (3, 3));

        let mut expired = CertificateCache::new(3, Duration::ZERO);
        expired.insert("https://api.paypal.com/a", certificate);
        std::thread::sleep(Duration::from_millis(5));
        assert!(expired.get("https://api.paypal.com/a").is_none());
    }
}
