//! A certificate read once from a PEM file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;

use super::CertificateSource;
use crate::verify::VerifyError;
use crate::verify::paypal::{PaypalCertificate, check_certificate_url};

/// Serves one certificate, read from a PEM file, for every allowed URL: for
/// offline tests and air-gapped deployments, where the operator puts
/// PayPal's current certificate in place, followed by its intermediates
/// (the verifier checks the chain whatever the source).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::paypal::test_support::vector;
    use crate::verify::test_vectors::text;

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
}
