//! Where PayPal signing certificates come from: a file, or PayPal over https.

mod client;
mod file;
mod https;

use std::sync::Arc;

use futures::future::BoxFuture;

pub use client::ClientBuildError;
pub use file::{CertificateFileError, FileCertificateSource};
pub use https::{FETCH_TIMEOUT, HttpsCertificateSource, MAX_CERTIFICATE_BYTES};

use super::PaypalCertificate;
use crate::verify::VerifyError;

/// Where the verifier gets the certificate named by `PAYPAL-CERT-URL`.
///
/// Implementations must refuse URLs that [`check_certificate_url`](super::check_certificate_url) refuses
/// ([`PaypalVerifier`](super::PaypalVerifier) checks too, before calling), answer
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
