//! Keys, tokens and certificates for authorization and TLS tests, all made
//! at run time (nothing secret is committed).

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use fulfilment::auth::{AuthArgs, Authenticator};
use fulfilment::server::tls::TlsConfig;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

pub const ISSUER: &str = "https://issuer.test/";
pub const AUDIENCE: &str = "fulfil-test";
/// The leeway the test servers allow on `exp`.
pub const LEEWAY_SECS: u64 = 5;

/// Verification and signing keys of the test issuer, plus a stranger's.
pub struct Keys {
    pub hs256_secret: String,
    rsa_private_der: Vec<u8>,
    pub rsa_public_pem: String,
    ed_private_der: Vec<u8>,
    pub ed_public_pem: String,
    stranger_private_der: Vec<u8>,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("system randomness");
    bytes
}

fn ed25519() -> (Vec<u8>, String) {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    let signing = ed25519_dalek::SigningKey::from_bytes(&random::<32>());
    let private = signing.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec();
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("public pem");
    (private, public)
}

pub static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let rsa = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("rsa key");
    let rsa_public_pem = rsa
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("rsa public pem");
    let (ed_private_der, ed_public_pem) = ed25519();
    let (stranger_private_der, _) = ed25519();
    let secret: String = random::<48>()
        .iter()
        .map(|b| char::from(b'a' + b % 26))
        .collect();
    Keys {
        hs256_secret: secret,
        rsa_private_der: rsa.to_pkcs1_der().expect("pkcs1").as_bytes().to_vec(),
        rsa_public_pem,
        ed_private_der,
        ed_public_pem,
        stranger_private_der,
    }
});

/// The test issuer's authenticator: the HS256 secret and a public keys
/// file with the RSA key (labelled `kid: rsa-1`) and the Ed25519 key, read
/// through the same options as `fulfilment serve`.
pub fn authenticator() -> Authenticator {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("public-keys.pem");
    let text = format!(
        "# the test issuer's keys\nkid: rsa-1\n{}\n{}",
        KEYS.rsa_public_pem, KEYS.ed_public_pem
    );
    std::fs::write(&file, text).expect("write keys");
    AuthArgs {
        jwt_hs256_secret: Some(KEYS.hs256_secret.clone()),
        jwt_public_keys_file: Some(file),
        jwt_issuer: Some(ISSUER.to_owned()),
        jwt_audience: Some(AUDIENCE.to_owned()),
        jwt_leeway_secs: LEEWAY_SECS,
        ..AuthArgs::default()
    }
    .load()
    .expect("auth configuration")
}

/// How a test token is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// HS256 with the shared secret.
    Hs256,
    /// RS256 with the RSA key, header `kid: rsa-1`.
    Rs256,
    /// RS256 with the RSA key and no `kid`.
    Rs256NoKid,
    /// EdDSA with the Ed25519 key.
    EdDsa,
    /// EdDSA with a key the server does not know.
    Stranger,
    /// HS256 "signed" with the RSA public key's PEM bytes as the secret:
    /// the algorithm-confusion attack.
    RsaPublicKeyAsHmacSecret,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Claims from the test issuer for the test audience, valid ten minutes;
/// `scope` empty for an app client.
pub fn claims(sub: &str, scope: &str) -> serde_json::Value {
    let mut claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now(), "exp": now() + 600,
    });
    if !scope.is_empty() {
        claims["scope"] = scope.into();
    }
    claims
}

pub fn sign(signer: Signer, claims: &serde_json::Value) -> String {
    let (alg, kid, key) = match signer {
        Signer::Hs256 => (
            Algorithm::HS256,
            None,
            EncodingKey::from_secret(KEYS.hs256_secret.as_bytes()).expect("key"),
        ),
        Signer::Rs256 | Signer::Rs256NoKid => (
            Algorithm::RS256,
            (signer == Signer::Rs256).then(|| "rsa-1".to_owned()),
            EncodingKey::from_rsa_der(&KEYS.rsa_private_der),
        ),
        Signer::EdDsa => (
            Algorithm::EdDSA,
            None,
            EncodingKey::from_ed_der(&KEYS.ed_private_der),
        ),
        Signer::Stranger => (
            Algorithm::EdDSA,
            None,
            EncodingKey::from_ed_der(&KEYS.stranger_private_der),
        ),
        Signer::RsaPublicKeyAsHmacSecret => (
            Algorithm::HS256,
            Some("rsa-1".to_owned()),
            EncodingKey::from_secret(KEYS.rsa_public_pem.as_bytes()).expect("key"),
        ),
    };
    let mut header = Header::new(alg);
    header.kid = kid;
    jsonwebtoken::encode(&header, claims, &key).expect("sign token")
}

/// `message` with `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

/// A test CA with a server certificate (localhost, 127.0.0.1) and a client
/// certificate, plus another CA with its own client certificate.
pub struct Pki {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
    pub other_ca: String,
    pub other_client_cert: String,
    pub other_client_key: String,
}

fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().expect("key");
    rcgen::CertifiedIssuer::self_signed(params, key).expect("CA")
}

fn leaf(
    issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    names: &[&str],
    usage: rcgen::ExtendedKeyUsagePurpose,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = rcgen::CertificateParams::new(names).expect("params");
    params.extended_key_usages = vec![usage];
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

pub static PKI: LazyLock<Pki> = LazyLock::new(|| {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let ca_cert = ca("fulfil test CA");
    let other = ca("some other CA");
    let (server_cert, server_key) = leaf(&ca_cert, &["localhost", "127.0.0.1"], ServerAuth);
    let (client_cert, client_key) = leaf(&ca_cert, &["adapter"], ClientAuth);
    let (other_client_cert, other_client_key) = leaf(&other, &["adapter"], ClientAuth);
    Pki {
        ca: ca_cert.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
        other_ca: other.pem(),
        other_client_cert,
        other_client_key,
    }
});

/// Server TLS from the test CA; with `client_ca`, the ingest listener
/// requires certificates from it.
pub fn server_tls(client_ca: bool) -> TlsConfig {
    TlsConfig::from_pem(
        PKI.server_cert.as_bytes(),
        PKI.server_key.as_bytes(),
        client_ca.then_some(PKI.ca.as_bytes()),
    )
    .expect("server TLS")
}

/// Client TLS trusting `ca`, presenting `identity` (certificate, key).
pub fn client_tls(ca: &str, identity: Option<(&str, &str)>) -> ClientTlsConfig {
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some((cert, key)) = identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    config
}
