//! The PEM files that TLS settings name: read once at start, with errors
//! that name the variable and the file, never their contents (a key file
//! given in the wrong variable must not end up in a log).

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a PEM file named by `var` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PemFileError {
    /// The file cannot be read.
    #[error("{var}: cannot read {path}: {source}")]
    Read {
        /// The variable.
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The PEM data is malformed.
    #[error("{var}: malformed PEM")]
    Malformed {
        /// The variable.
        var: &'static str,
    },
    /// No certificate where one is needed.
    #[error("{var}: no PEM certificate found")]
    NoCertificate {
        /// The variable.
        var: &'static str,
    },
    /// No private key where one is needed.
    #[error("{var}: no PEM private key found (PKCS#8, PKCS#1 or SEC1)")]
    NoKey {
        /// The variable.
        var: &'static str,
    },
    /// A CA certificate rustls cannot use as a root.
    #[error("{var}: {source}")]
    BadRoot {
        /// The variable.
        var: &'static str,
        /// Why.
        source: rustls::Error,
    },
}

/// The file `path`, named by `var`.
pub fn read(var: &'static str, path: &Path) -> Result<Vec<u8>, PemFileError> {
    std::fs::read(path).map_err(|source| PemFileError::Read {
        var,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in `pem`; at least one.
pub fn certificates(
    var: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, PemFileError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| PemFileError::Malformed { var })?;
    if certs.is_empty() {
        return Err(PemFileError::NoCertificate { var });
    }
    Ok(certs)
}

/// The first private key in `pem`.
pub fn private_key(var: &'static str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, PemFileError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|err| match err {
        pem::Error::NoItemsFound => PemFileError::NoKey { var },
        _ => PemFileError::Malformed { var },
    })
}

/// The CA certificates in `pem`, as trust roots.
pub fn roots(var: &'static str, pem: &[u8]) -> Result<rustls::RootCertStore, PemFileError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(var, pem)? {
        roots
            .add(cert)
            .map_err(|source| PemFileError::BadRoot { var, source })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable_and_never_the_contents() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = read("SOME_VAR", &dir.path().join("missing.pem")).expect_err("missing");
        assert!(
            missing.to_string().starts_with("SOME_VAR: cannot read"),
            "{missing}"
        );
        let junk = b"not pem: secret-material-123";
        for err in [
            certificates("CERT_VAR", junk).expect_err("no certificate"),
            private_key("KEY_VAR", junk).expect_err("no key"),
        ] {
            assert!(!err.to_string().contains("secret-material-123"), "{err}");
            assert!(
                err.to_string().ends_with("found (PKCS#8, PKCS#1 or SEC1)")
                    || err.to_string().ends_with("no PEM certificate found"),
                "{err}"
            );
        }
    }
}
