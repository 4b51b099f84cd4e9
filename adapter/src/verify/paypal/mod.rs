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
//! - its subject common name is a `*.paypal.com` host;
//! - its chain: the document at the URL holds the signing certificate
//!   followed by its intermediates, and the certificate must chain through
//!   them to a trusted root ([`TrustAnchors`]: Mozilla's, from
//!   webpki-roots, unless the verifier is given others), every certificate
//!   on the path valid at `now` and signed with RSA PKCS#1 (SHA-256/384/512)
//!   or ECDSA, for TLS server authentication (rustls-webpki). This holds for
//!   every source, a certificate file included;
//! - NOT revocation.
//!
//! The parts, each in its own module: the URL policy (`url_policy`),
//! certificate parsing (`certificate`), the chain check (`chain`), the
//! certificate sources (`source`: file, https and its client) and the fetch
//! cache (`cache`); this module holds the headers and the verifier.

mod cache;
mod certificate;
mod chain;
mod source;
mod url_policy;

#[cfg(test)]
mod test_pki;
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
pub use chain::{TrustAnchorError, TrustAnchors};
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
    trust_anchors: TrustAnchors,
    tolerance: Duration,
}

impl fmt::Debug for PaypalVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaypalVerifier")
            .field("webhook_id", &self.webhook_id)
            .field("trust_anchors", &self.trust_anchors)
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

impl PaypalVerifier {
    /// A verifier for the subscription `webhook_id` (as shown by PayPal),
    /// with the [`DEFAULT_TOLERANCE`], trusting the webpki roots.
    pub fn new(webhook_id: impl Into<String>, certificates: Arc<dyn CertificateSource>) -> Self {
        PaypalVerifier {
            webhook_id: webhook_id.into(),
            certificates,
            trust_anchors: TrustAnchors::webpki_roots(),
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// The same verifier trusting `anchors` instead of the webpki roots
    /// (a test CA, or a private one).
    pub fn with_trust_anchors(mut self, anchors: TrustAnchors) -> Self {
        self.trust_anchors = anchors;
        self
    }

    /// The same verifier with another transmission time tolerance.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a PayPal delivery of `body` (the exact bytes received) as of
    /// `now`: the headers, then the certificate URL (before any fetch), the
    /// certificate's validity and its chain to a trust anchor at `now`, the
    /// transmission time within the tolerance (either side), and finally the
    /// RSA signature.
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
        certificate.check_chain(&self.trust_anchors, now)?;
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

    use super::test_support::{
        header_map, vector, vector_bundle, vector_headers, vector_root, vector_time, with,
    };
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

    /// The SDK vector's verifier: its certificate with the DigiCert
    /// intermediate, trusting the DigiCert root it chains to (not in the
    /// webpki-roots in use), so every step, the chain included, runs on
    /// real PayPal data as of the vector's time.
    fn setup() -> (Value, Vec<(String, String)>, PaypalVerifier, Arc<Counting>) {
        let vector = vector();
        let pairs = vector_headers(&vector);
        let source = Arc::new(Counting {
            inner: FileCertificateSource::from_pem(vector_bundle(&vector).as_bytes())
                .expect("the certificate"),
            calls: AtomicUsize::new(0),
        });
        let verifier = PaypalVerifier::new(text(&vector, "webhook_id"), source.clone())
            .with_trust_anchors(vector_root());
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
        let other =
            PaypalVerifier::new("96605875FF6516634", source).with_trust_anchors(vector_root());
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

    /// The signature step on its own, on the SDK vector: independent of any
    /// root store, so it keeps checking the RSA/CRC32 construction whatever
    /// becomes of the DigiCert roots.
    #[test]
    fn vector_signature_verifies_on_its_own() {
        let vector = vector();
        let certificate = PaypalCertificate::from_pem(text(&vector, "certificate_pem").as_bytes())
            .expect("the certificate");
        let pairs = vector_headers(&vector);
        let signature = pairs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(TRANSMISSION_SIG))
            .map(|(_, value)| BASE64.decode(value).expect("base64"))
            .expect("a signature");
        let signed = text(&vector, "signed_string");
        assert_eq!(
            certificate.verify_signature(signed.as_bytes(), &signature),
            Ok(())
        );
        let mut changed = signed.to_owned();
        changed.push('0');
        assert_eq!(
            certificate.verify_signature(changed.as_bytes(), &signature),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[tokio::test]
    async fn vector_chain_needs_its_intermediate_and_its_root() {
        let vector = vector();
        let pairs = vector_headers(&vector);
        let body = text(&vector, "body").as_bytes();
        let verify = |pem: String, anchors: TrustAnchors| {
            let source = FileCertificateSource::from_pem(pem.as_bytes()).expect("the certificate");
            PaypalVerifier::new(text(&vector, "webhook_id"), Arc::new(source))
                .with_trust_anchors(anchors)
        };
        let leaf_only = verify(text(&vector, "certificate_pem").to_owned(), vector_root());
        assert_eq!(
            leaf_only
                .verify(&header_map(&pairs), body, vector_time())
                .await,
            Err(VerifyError::CertificateUntrusted {
                reason: "certificate chain does not reach a trusted root"
            })
        );
        // Mozilla's current roots no longer include DigiCert High Assurance
        // EV Root CA, so the production default refuses this old chain.
        let production = verify(vector_bundle(&vector), TrustAnchors::default());
        assert_eq!(
            production
                .verify(&header_map(&pairs), body, vector_time())
                .await,
            Err(VerifyError::CertificateUntrusted {
                reason: "certificate chain does not reach a trusted root"
            })
        );
    }

    mod chain {
        //! The chain check on a test PKI made at run time.

        use rcgen::ExtendedKeyUsagePurpose;

        use super::*;
        use crate::verify::paypal::test_pki::{
            Ca, WEBHOOK_ID, bundle, intermediate, leaf, leaf_for, now, root, transmission,
        };

        const BODY: &[u8] = br#"{"id":"WH-TEST","event_type":"PAYMENT.CAPTURE.COMPLETED"}"#;

        /// Verifies the test transmission with the certificate document
        /// `pem`, trusting only `anchor`.
        async fn verify(pem: &str, anchor: &Ca) -> Result<(), VerifyError> {
            let anchors = TrustAnchors::from_certificates([anchor.der()]).expect("an anchor");
            let source = FileCertificateSource::from_pem(pem.as_bytes())?;
            PaypalVerifier::new(WEBHOOK_ID, Arc::new(source))
                .with_trust_anchors(anchors)
                .verify(&transmission(BODY), BODY, now())
                .await
        }

        fn untrusted(reason: &'static str) -> Result<(), VerifyError> {
            Err(VerifyError::CertificateUntrusted { reason })
        }

        #[tokio::test]
        async fn a_chain_to_the_injected_root_verifies() {
            let root = root("Test Root");
            let intermediate = intermediate("Test Intermediate", &root, (2025, 2040));
            let leaf = leaf(Some(&intermediate));
            let pem = bundle(&[leaf.pem(), intermediate.pem()]);
            assert_eq!(verify(&pem, &root).await, Ok(()));
            // The signature is still checked once the chain is good.
            let source = FileCertificateSource::from_pem(pem.as_bytes()).expect("the bundle");
            let anchors = TrustAnchors::from_certificates([root.der()]).expect("an anchor");
            let verifier =
                PaypalVerifier::new(WEBHOOK_ID, Arc::new(source)).with_trust_anchors(anchors);
            let mut changed = BODY.to_vec();
            changed[0] ^= 0x01;
            assert_eq!(
                verifier.verify(&transmission(BODY), &changed, now()).await,
                Err(VerifyError::SignatureMismatch)
            );
        }

        #[tokio::test]
        async fn a_chain_to_another_root_is_untrusted() {
            let root = root("Test Root");
            let intermediate = intermediate("Test Intermediate", &root, (2025, 2040));
            let pem = bundle(&[leaf(Some(&intermediate)).pem(), intermediate.pem()]);
            let other = crate::verify::paypal::test_pki::root("Other Root");
            assert_eq!(
                verify(&pem, &other).await,
                untrusted("certificate chain does not reach a trusted root")
            );
            // A root with the real one's name but its own key: names alone
            // make no chain.
            let impostor = crate::verify::paypal::test_pki::root("Test Root");
            assert_eq!(
                verify(&pem, &impostor).await,
                untrusted("a certificate in the chain has a bad signature")
            );
        }

        #[tokio::test]
        async fn a_missing_intermediate_is_untrusted() {
            let root = root("Test Root");
            let intermediate = intermediate("Test Intermediate", &root, (2025, 2040));
            let pem = leaf(Some(&intermediate)).pem();
            assert_eq!(
                verify(&pem, &root).await,
                untrusted("certificate chain does not reach a trusted root")
            );
        }

        #[tokio::test]
        async fn an_expired_intermediate_is_untrusted() {
            let root = root("Test Root");
            // Expired on 2028-01-01, before the test time (2030).
            let intermediate = intermediate("Test Intermediate", &root, (2025, 2028));
            let pem = bundle(&[leaf(Some(&intermediate)).pem(), intermediate.pem()]);
            assert_eq!(
                verify(&pem, &root).await,
                untrusted("a certificate in the chain has expired")
            );
        }

        #[tokio::test]
        async fn a_self_signed_leaf_with_a_paypal_name_is_untrusted() {
            let root = root("Test Root");
            let pem = leaf(None).pem();
            assert_eq!(
                verify(&pem, &root).await,
                untrusted("certificate chain does not reach a trusted root")
            );
            // Nor does it pass with the production roots.
            let source = FileCertificateSource::from_pem(pem.as_bytes()).expect("the leaf");
            let verifier = PaypalVerifier::new(WEBHOOK_ID, Arc::new(source));
            assert_eq!(
                verifier.verify(&transmission(BODY), BODY, now()).await,
                untrusted("certificate chain does not reach a trusted root")
            );
        }

        #[tokio::test]
        async fn a_leaf_not_for_tls_servers_is_untrusted() {
            let root = root("Test Root");
            let intermediate = intermediate("Test Intermediate", &root, (2025, 2040));
            let leaf = leaf_for(
                Some(&intermediate),
                ExtendedKeyUsagePurpose::EmailProtection,
            );
            let pem = bundle(&[leaf.pem(), intermediate.pem()]);
            assert_eq!(
                verify(&pem, &root).await,
                untrusted("certificate is not for TLS server authentication")
            );
        }

        #[test]
        fn trust_anchors_must_be_certificates() {
            assert!(matches!(
                TrustAnchors::from_certificates([]),
                Err(TrustAnchorError::Empty)
            ));
            let garbage = rustls::pki_types::CertificateDer::from(vec![0x30, 0x00]);
            assert!(matches!(
                TrustAnchors::from_certificates([&garbage]),
                Err(TrustAnchorError::Invalid(_))
            ));
            assert!(format!("{:?}", TrustAnchors::default()).contains("count"));
        }
    }
}
