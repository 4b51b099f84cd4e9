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
//!
//! The parts, each in its own module: the URL policy (`url_policy`),
//! certificate parsing (`certificate`), the certificate sources
//! (`source`: file, https and its client) and the fetch cache (`cache`);
//! this module holds the headers and the verifier.

mod cache;
mod certificate;
mod source;
mod url_policy;

#[cfg(test)]
mod test_support;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;

pub use cache::{CACHE_CAPACITY, CACHE_TTL};
pub use certificate::PaypalCertificate;
pub use source::{
    CertificateFileError, CertificateSource, ClientBuildError, FETCH_TIMEOUT,
    FileCertificateSource, HttpsCertificateSource, MAX_CERTIFICATE_BYTES,
};
pub use url_policy::check_certificate_url;

use super::{VerifyError, check_timestamp, optional_header, required_header};

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

    use futures::future::BoxFuture;
    use serde_json::Value;

    use super::test_support::{header_map, vector, vector_headers, vector_time, with};
    use super::*;
    use crate::verify::test_vectors::text;

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
}
