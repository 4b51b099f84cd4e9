//! TLS towards the fulfilment service (`FULFIL_FULFILMENT_URL=https://…`).
//!
//! The server is verified against `FULFIL_FULFILMENT_CA_FILE` when set (an
//! internal CA; it replaces the public roots), otherwise against the Mozilla
//! roots compiled in (webpki-roots: the same in every image, no system
//! bundle needed). `FULFIL_FULFILMENT_CLIENT_CERT_FILE` and
//! `FULFIL_FULFILMENT_CLIENT_KEY_FILE` present a client certificate for
//! mutual TLS. Everything is read and checked at start, so a bad file stops
//! the adapter with the variable's name instead of failing every webhook.

use std::path::PathBuf;
use std::sync::Arc;

use fulfil_telemetry::pem_file::{self, PemFileError};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// Variable naming the CA that issued the server's certificate.
pub const CA_VAR: &str = "FULFIL_FULFILMENT_CA_FILE";
/// Variable naming the client certificate chain.
pub const CLIENT_CERT_VAR: &str = "FULFIL_FULFILMENT_CLIENT_CERT_FILE";
/// Variable naming the client private key.
pub const CLIENT_KEY_VAR: &str = "FULFIL_FULFILMENT_CLIENT_KEY_FILE";

/// Files for TLS to the fulfilment service.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// Trusted CA certificate(s), PEM.
    pub ca: Option<PathBuf>,
    /// Client certificate chain, PEM.
    pub client_cert: Option<PathBuf>,
    /// Client private key, PEM.
    pub client_key: Option<PathBuf>,
}

/// Why client TLS cannot be set up. Names variables, never contents.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// One of certificate and key without the other.
    #[error("{CLIENT_CERT_VAR} and {CLIENT_KEY_VAR} must be set together")]
    Incomplete,
    /// TLS files for a plaintext URL.
    #[error("{0} is set but FULFIL_FULFILMENT_URL is not https://")]
    NotHttps(&'static str),
    /// A file cannot be used.
    #[error(transparent)]
    File(#[from] PemFileError),
    /// No usable PEM content.
    #[error("{var}: {problem}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl TlsFiles {
    /// Whether any file is configured.
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }

    /// The first variable that is set, for messages.
    fn first_var(&self) -> &'static str {
        if self.ca.is_some() {
            CA_VAR
        } else if self.client_cert.is_some() {
            CLIENT_CERT_VAR
        } else {
            CLIENT_KEY_VAR
        }
    }

    /// The tonic TLS configuration for `url`: None for `http://` (with no
    /// file set), roots and identity from the files for `https://`.
    pub fn client_config(&self, url: &str) -> Result<Option<ClientTlsConfig>, ClientTlsError> {
        let https = url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        if !https {
            return if self.any() {
                Err(ClientTlsError::NotHttps(self.first_var()))
            } else {
                Ok(None)
            };
        }
        let mut config = ClientTlsConfig::new();
        let roots = match &self.ca {
            Some(path) => {
                let pem = pem_file::read(CA_VAR, path)?;
                let roots = pem_file::roots(CA_VAR, &pem)?;
                config = config.ca_certificate(Certificate::from_pem(pem));
                roots
            }
            None => {
                config = config.with_webpki_roots();
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
            }
        };
        match (&self.client_cert, &self.client_key) {
            (None, None) => {}
            (Some(cert_path), Some(key_path)) => {
                let cert = pem_file::read(CLIENT_CERT_VAR, cert_path)?;
                let key = pem_file::read(CLIENT_KEY_VAR, key_path)?;
                check_identity(roots, &cert, &key)?;
                config = config.identity(Identity::from_pem(cert, key));
            }
            _ => return Err(ClientTlsError::Incomplete),
        }
        Ok(Some(config))
    }
}

/// The certificate parses and the key belongs to it (rustls checks that
/// when it builds a client configuration).
fn check_identity(
    roots: rustls::RootCertStore,
    cert: &[u8],
    key: &[u8],
) -> Result<(), ClientTlsError> {
    let chain = pem_file::certificates(CLIENT_CERT_VAR, cert)?;
    let key = pem_file::private_key(CLIENT_KEY_VAR, key)?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
        })
        .map(drop)
        .map_err(|err| ClientTlsError::Invalid {
            var: CLIENT_KEY_VAR,
            problem: format!("unusable with {CLIENT_CERT_VAR}: {err}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_needs_no_files_and_refuses_them() {
        let none = TlsFiles::default();
        assert!(matches!(none.client_config("http://f:50052"), Ok(None)));
        let ca = TlsFiles {
            ca: Some("ca.pem".into()),
            ..TlsFiles::default()
        };
        let err = ca.client_config("http://f:50052").expect_err("http");
        assert!(err.to_string().starts_with(CA_VAR), "{err}");
    }

    #[test]
    fn https_uses_public_roots_without_a_ca_file() {
        let config = TlsFiles::default().client_config("https://fulfilment:50052");
        assert!(matches!(config, Ok(Some(_))));
    }

    #[test]
    fn bad_files_name_their_variable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "secret-junk").expect("write");
        let only_cert = TlsFiles {
            client_cert: Some(junk.clone()),
            ..TlsFiles::default()
        };
        assert!(matches!(
            only_cert.client_config("https://f"),
            Err(ClientTlsError::Incomplete)
        ));
        let bad_ca = TlsFiles {
            ca: Some(junk.clone()),
            ..TlsFiles::default()
        };
        let err = bad_ca.client_config("https://f").expect_err("junk CA");
        assert!(err.to_string().starts_with(CA_VAR), "{err}");
        assert!(!err.to_string().contains("secret-junk"));
        let missing = TlsFiles {
            ca: Some(dir.path().join("missing.pem")),
            ..TlsFiles::default()
        };
        let err = missing.client_config("https://f").expect_err("missing");
        assert!(err.to_string().starts_with(CA_VAR), "{err}");
    }
}
