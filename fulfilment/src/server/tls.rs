//! TLS for the gRPC listeners (rustls with ring).
//!
//! `FULFIL_TLS_CERT_FILE` and `FULFIL_TLS_KEY_FILE` turn TLS on for the API
//! and the ingest listener. `FULFIL_TLS_CLIENT_CA_FILE` makes the ingest
//! listener require a client certificate issued by that CA (mutual TLS with
//! the adapter); the API listener never asks for one, since app clients
//! have none. The ops listener stays plaintext for probes and scrapers.
//!
//! The API listener offers ALPN `h2` and `http/1.1`, so gRPC-Web clients
//! that speak only HTTP/1.1 (fetch in Node, some proxies) still connect;
//! the ingest listener offers `h2` only. Handshakes run concurrently, each
//! with a deadline, so a slow or silent client delays nobody.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use clap::Args;
use fulfil_telemetry::listener::Watched;
use fulfil_telemetry::pem_file::{self, PemFileError};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Variable naming the server certificate chain.
pub const CERT_VAR: &str = "FULFIL_TLS_CERT_FILE";
/// Variable naming the server private key.
pub const KEY_VAR: &str = "FULFIL_TLS_KEY_FILE";
/// Variable naming the CA that issues client certificates.
pub const CLIENT_CA_VAR: &str = "FULFIL_TLS_CLIENT_CA_FILE";

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once per listener; more connections wait.
const MAX_HANDSHAKES: usize = 256;
/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// TLS options of `serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM certificate chain of the gRPC listeners (leaf first). With
    /// FULFIL_TLS_KEY_FILE, turns TLS on.
    #[arg(long, env = CERT_VAR)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate.
    #[arg(long, env = KEY_VAR)]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificate(s): the ingest listener then requires a client
    /// certificate issued by one of them. Needs FULFIL_INGEST_ADDR.
    #[arg(long, env = CLIENT_CA_VAR)]
    pub tls_client_ca_file: Option<PathBuf>,
}

/// Why TLS cannot be set up. Names the variable, never file contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of certificate and key is set.
    #[error("{CERT_VAR} and {KEY_VAR} must be set together")]
    Incomplete,
    /// A client CA without a server certificate.
    #[error("{CLIENT_CA_VAR} needs {CERT_VAR} and {KEY_VAR}: mutual TLS is TLS first")]
    ClientCaWithoutTls,
    /// A client CA without a separate ingest listener.
    #[error(
        "{CLIENT_CA_VAR} needs FULFIL_INGEST_ADDR: client certificates are required on the ingest listener only, and without one PaymentEventService would be served on the API listener without them"
    )]
    ClientCaWithoutIngest,
    /// A file cannot be used.
    #[error(transparent)]
    File(#[from] PemFileError),
    /// rustls refused the material (a key that does not match the
    /// certificate, an unsupported key type, a CA it cannot use).
    #[error("{var}: {source}")]
    Rejected {
        /// The variable the material came from.
        var: &'static str,
        /// Why.
        source: rustls::Error,
    },
}

impl TlsArgs {
    /// The TLS configuration these options describe; None when TLS is off.
    /// `has_ingest` says whether a separate ingest listener exists.
    pub fn load(&self, has_ingest: bool) -> Result<Option<TlsConfig>, TlsError> {
        let given = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        let (cert, key, ca) = (
            given(&self.tls_cert_file),
            given(&self.tls_key_file),
            given(&self.tls_client_ca_file),
        );
        let (cert, key) = match (cert, key) {
            (None, None) if ca.is_some() => return Err(TlsError::ClientCaWithoutTls),
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            _ => return Err(TlsError::Incomplete),
        };
        if ca.is_some() && !has_ingest {
            return Err(TlsError::ClientCaWithoutIngest);
        }
        let client_ca = match &ca {
            Some(path) => Some(pem_file::read(CLIENT_CA_VAR, path)?),
            None => None,
        };
        TlsConfig::from_pem(
            &pem_file::read(CERT_VAR, &cert)?,
            &pem_file::read(KEY_VAR, &key)?,
            client_ca.as_deref(),
        )
        .map(Some)
    }
}

/// Server TLS for the API and the ingest listener.
#[derive(Clone)]
pub struct TlsConfig {
    api: Arc<ServerConfig>,
    ingest: Arc<ServerConfig>,
    client_auth: bool,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// From PEM: the certificate chain, its private key and, for mutual
    /// TLS on the ingest listener, the client CA certificate(s).
    pub fn from_pem(
        cert_chain: &[u8],
        key: &[u8],
        client_ca: Option<&[u8]>,
    ) -> Result<Self, TlsError> {
        let certs = pem_file::certificates(CERT_VAR, cert_chain)?;
        let key = pem_file::private_key(KEY_VAR, key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let rejected = |var| move |source| TlsError::Rejected { var, source };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(rejected(CERT_VAR))?;

        let mut api = builder
            .clone()
            .with_no_client_auth()
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(rejected(KEY_VAR))?;
        // gRPC over HTTP/2; gRPC-Web may come over HTTP/1.1.
        api.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let ingest_builder = match client_ca {
            Some(pem) => {
                let roots = pem_file::roots(CLIENT_CA_VAR, pem)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|err| TlsError::Rejected {
                            var: CLIENT_CA_VAR,
                            source: rustls::Error::General(err.to_string()),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut ingest = ingest_builder
            .with_single_cert(certs, key)
            .map_err(rejected(KEY_VAR))?;
        ingest.alpn_protocols = vec![b"h2".to_vec()];

        Ok(TlsConfig {
            api: Arc::new(api),
            ingest: Arc::new(ingest),
            client_auth: client_ca.is_some(),
        })
    }

    /// The API listener's configuration.
    pub fn api(&self) -> Arc<ServerConfig> {
        self.api.clone()
    }

    /// The ingest listener's configuration.
    pub fn ingest(&self) -> Arc<ServerConfig> {
        self.ingest.clone()
    }

    /// Whether the ingest listener requires client certificates.
    pub fn requires_client_certificates(&self) -> bool {
        self.client_auth
    }
}

/// An accepted connection, plaintext or TLS.
#[derive(Debug)]
pub enum Connection {
    /// Plaintext TCP.
    Plain(Watched<TcpStream>),
    /// TLS over TCP (boxed: the session state is large).
    Tls(Box<tokio_rustls::server::TlsStream<Watched<TcpStream>>>),
}

impl Connected for Connection {
    // Plain TCP information for both, so `remote_addr()` works the same.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match self {
            Connection::Plain(tcp) => tcp.connect_info(),
            Connection::Tls(tls) => tls.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(s) => s.is_write_vectored(),
            Connection::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connections a listener serves.
pub type Incoming = Pin<Box<dyn Stream<Item = io::Result<Connection>> + Send>>;

/// Accepted TCP connections, before TLS.
pub type Accepted = Pin<Box<dyn Stream<Item = io::Result<Watched<TcpStream>>> + Send>>;

/// `tcp`'s connections, through TLS when `tls` is given. Dropping the
/// result (the server stops accepting) closes the listening socket.
pub fn incoming(tcp: Accepted, tls: Option<Arc<ServerConfig>>) -> Incoming {
    match tls {
        None => Box::pin(tcp.map(|accepted| accepted.map(Connection::Plain))),
        Some(config) => {
            let (tx, rx) = mpsc::channel(MAX_HANDSHAKES);
            tokio::spawn(accept(tcp, tokio_rustls::TlsAcceptor::from(config), tx));
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok))
        }
    }
}

async fn accept(
    mut tcp: Accepted,
    acceptor: tokio_rustls::TlsAcceptor,
    tx: mpsc::Sender<Connection>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let stream = tokio::select! {
            () = tx.closed() => return,
            next = tcp.next() => match next {
                None => return,
                Some(Ok(stream)) => stream,
                Some(Err(err)) => {
                    tracing::debug!(%err, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let permit = tokio::select! {
            () = tx.closed() => return,
            permit = handshakes.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let peer = stream.get_ref().peer_addr().ok();
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send(Connection::Tls(Box::new(tls))).await;
                }
                // Plaintext clients, scanners, clients without an accepted
                // certificate: theirs to fix, so not above debug.
                Ok(Err(err)) => tracing::debug!(?peer, %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cert: Option<&str>, key: Option<&str>, ca: Option<&str>) -> TlsArgs {
        TlsArgs {
            tls_cert_file: cert.map(PathBuf::from),
            tls_key_file: key.map(PathBuf::from),
            tls_client_ca_file: ca.map(PathBuf::from),
        }
    }

    #[test]
    fn off_unless_configured_and_never_half_on() {
        assert!(matches!(args(None, None, None).load(true), Ok(None)));
        assert!(matches!(
            args(Some("c.pem"), None, None).load(true),
            Err(TlsError::Incomplete)
        ));
        assert!(matches!(
            args(None, None, Some("ca.pem")).load(true),
            Err(TlsError::ClientCaWithoutTls)
        ));
        assert!(matches!(
            args(Some("c.pem"), Some("k.pem"), Some("ca.pem")).load(false),
            Err(TlsError::ClientCaWithoutIngest)
        ));
    }

    #[test]
    fn errors_name_the_variable_not_the_contents() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.pem");
        let err = args(
            Some(missing.to_str().unwrap_or_default()),
            Some("k.pem"),
            None,
        )
        .load(true)
        .expect_err("missing file");
        assert!(err.to_string().starts_with(CERT_VAR), "{err}");

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem: secret-material-123").expect("write");
        let junk = junk.to_str().unwrap_or_default();
        let err = args(Some(junk), Some(junk), None)
            .load(true)
            .expect_err("no certificate");
        assert!(err.to_string().contains(CERT_VAR), "{err}");
        assert!(!err.to_string().contains("secret-material-123"));
    }
}
