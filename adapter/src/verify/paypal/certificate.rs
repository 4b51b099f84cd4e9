//! A PayPal signing certificate: parsed from PEM (the certificate, then its
//! intermediates), its name, dates and key, and the chain it came with.

use std::fmt;
use std::time::SystemTime;

use rsa::pkcs1v15;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use x509_cert::Certificate;
use x509_cert::der::{Decode as _, Encode as _};

use super::TRANSMISSION_SIG;
use super::chain::{TrustAnchors, verify_chain};
use super::url_policy::is_paypal_host;
use crate::verify::{Sha256, VerifyError};

/// A PayPal signing certificate: its RSA public key, its validity window,
/// its subject common name, and the intermediates served with it.
pub struct PaypalCertificate {
    key: pkcs1v15::VerifyingKey<Sha256>,
    /// The certificate as served (DER), for the chain check.
    der: CertificateDer<'static>,
    /// The other certificates of the document, in the order served.
    intermediates: Vec<CertificateDer<'static>>,
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
            .field("intermediates", &self.intermediates.len())
            .finish_non_exhaustive()
    }
}

impl PaypalCertificate {
    /// Reads a PEM document as PayPal serves it: the signing certificate
    /// first, followed by its intermediates (text outside the PEM blocks is
    /// ignored). The chain is checked later, by [`Self::check_chain`].
    ///
    /// Refuses ([`VerifyError::CertificateUntrusted`]) anything whose first
    /// certificate is not an X.509 certificate with an RSA key whose subject
    /// common name is a `*.paypal.com` host.
    pub fn from_pem(pem: &[u8]) -> Result<Self, VerifyError> {
        let untrusted = |reason| VerifyError::CertificateUntrusted { reason };
        let mut chain = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| untrusted("not a PEM X.509 certificate"))?
            .into_iter();
        let der = chain
            .next()
            .ok_or(untrusted("no certificate in the PEM document"))?;
        let certificate =
            Certificate::from_der(&der).map_err(|_| untrusted("not a PEM X.509 certificate"))?;
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
            der,
            intermediates: chain.collect(),
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

    /// Refuses the certificate unless it chains, through the intermediates
    /// it came with, to one of `anchors`, every certificate on the way
    /// valid at `now`.
    pub fn check_chain(&self, anchors: &TrustAnchors, now: SystemTime) -> Result<(), VerifyError> {
        verify_chain(&self.der, &self.intermediates, anchors, now)
    }

    /// Checks an RSA PKCS#1 v1.5 SHA-256 `signature` of `message`.
    pub(super) fn verify_signature(
        &self,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), VerifyError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::paypal::parse_rfc3339;
    use crate::verify::paypal::test_support::{vector, vector_bundle};
    use crate::verify::test_vectors::text;

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
        // The certificates after the first are kept, as intermediates.
        let bundle =
            PaypalCertificate::from_pem(vector_bundle(&vector).as_bytes()).expect("the bundle");
        assert!(
            format!("{bundle:?}").contains("intermediates: 1"),
            "{bundle:?}"
        );
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
}
