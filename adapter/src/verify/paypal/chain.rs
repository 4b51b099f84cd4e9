//! The certificate chain check: the signing certificate must chain, through
//! the intermediates served with it, to a trusted root as of the
//! verification time. The path building and checks are rustls-webpki's.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use crate::verify::VerifyError;

/// Signature algorithms accepted on the chain's certificates: RSA PKCS#1
/// with SHA-256/384/512 and ECDSA P-256/P-384, through ring (the provider
/// of the rest of the TLS stack). What PayPal's CAs sign with, and nothing
/// older (no SHA-1).
static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
];

/// The roots a PayPal signing certificate must chain to.
///
/// Production uses [`TrustAnchors::webpki_roots`] (the same Mozilla roots
/// the https fetch trusts); tests and private PKIs can bring their own
/// with [`TrustAnchors::from_certificates`].
#[derive(Clone)]
pub struct TrustAnchors {
    anchors: Arc<[TrustAnchor<'static>]>,
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchors")
            .field("count", &self.anchors.len())
            .finish()
    }
}

impl Default for TrustAnchors {
    fn default() -> Self {
        Self::webpki_roots()
    }
}

/// Why certificates could not be used as trust anchors.
#[derive(Debug, thiserror::Error)]
pub enum TrustAnchorError {
    /// No certificate was given: every chain would be refused.
    #[error("no trust anchor certificate given")]
    Empty,
    /// A certificate could not be read as a trust anchor.
    #[error("not a usable trust anchor certificate: {0}")]
    Invalid(webpki::Error),
}

impl TrustAnchors {
    /// Mozilla's roots, from webpki-roots.
    pub fn webpki_roots() -> Self {
        TrustAnchors {
            anchors: webpki_roots::TLS_SERVER_ROOTS.into(),
        }
    }

    /// The given CA certificates (DER), trusted as they are.
    pub fn from_certificates<'a>(
        certificates: impl IntoIterator<Item = &'a CertificateDer<'a>>,
    ) -> Result<Self, TrustAnchorError> {
        let anchors = certificates
            .into_iter()
            .map(|certificate| {
                webpki::anchor_from_trusted_cert(certificate)
                    .map(|anchor| anchor.to_owned())
                    .map_err(TrustAnchorError::Invalid)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if anchors.is_empty() {
            return Err(TrustAnchorError::Empty);
        }
        Ok(TrustAnchors {
            anchors: anchors.into(),
        })
    }
}

/// Checks that `leaf` chains through some of `intermediates` to one of
/// `anchors`, every certificate on the path valid at `now`, with accepted
/// signature algorithms and a usage that allows TLS server authentication.
/// Revocation is not checked.
pub(super) fn verify_chain(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &TrustAnchors,
    now: SystemTime,
) -> Result<(), VerifyError> {
    let untrusted = |reason| VerifyError::CertificateUntrusted { reason };
    let leaf =
        EndEntityCert::try_from(leaf).map_err(|_| untrusted("certificate does not parse"))?;
    let time = now
        .duration_since(UNIX_EPOCH)
        .map(UnixTime::since_unix_epoch)
        .map_err(|_| untrusted("verification time is before 1970"))?;
    leaf.verify_for_usage(
        ALGORITHMS,
        &anchors.anchors,
        intermediates,
        time,
        // PayPal's signing certificates are TLS server certificates issued
        // under public TLS server CAs (the SDK vector's carries the
        // serverAuth purpose), so serverAuth is the purpose to require: a
        // certificate issued for another purpose (e.g. S/MIME) under a
        // trusted root is refused. As in TLS, a certificate without the
        // extended key usage extension is not refused for it.
        KeyUsage::server_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|error| {
        tracing::debug!(%error, "PayPal certificate chain refused");
        untrusted(reason(&error))
    })
}

/// A static reason for a refused chain (the details go to the debug log).
fn reason(error: &webpki::Error) -> &'static str {
    use webpki::Error as E;
    match error {
        E::UnknownIssuer => "certificate chain does not reach a trusted root",
        E::CertExpired { .. } => "a certificate in the chain has expired",
        E::CertNotValidYet { .. } => "a certificate in the chain is not valid yet",
        E::InvalidSignatureForPublicKey => "a certificate in the chain has a bad signature",
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "a certificate in the chain uses an unsupported signature algorithm"
        }
        E::RequiredEkuNotFoundContext(_) => "certificate is not for TLS server authentication",
        E::CaUsedAsEndEntity => "the signing certificate is a CA certificate",
        E::CertDistrusted => "a certificate in the chain is distrusted",
        _ => "certificate chain is invalid",
    }
}
