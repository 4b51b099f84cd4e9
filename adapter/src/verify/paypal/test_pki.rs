//! A test PKI for the chain checks, made at run time with rcgen: roots and
//! intermediates (ECDSA P-256), and a leaf named `api.sandbox.paypal.com`
//! with an RSA key, which signs PayPal-style transmissions.

use std::sync::LazyLock;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use rsa::pkcs8::EncodePrivateKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rustls::pki_types::PrivatePkcs8KeyDer;

use super::{AUTH_ALGO, CERT_URL, SUPPORTED_ALGORITHM, TRANSMISSION_ID, TRANSMISSION_SIG};
use super::{TRANSMISSION_TIME, parse_rfc3339};
use crate::verify::Sha256;
use crate::verify::test_vectors::headers;

/// The leaf's name, as common name and DNS SAN.
pub(super) const LEAF_NAME: &str = "api.sandbox.paypal.com";
/// The webhook id the test transmissions are signed for.
pub(super) const WEBHOOK_ID: &str = "WH-TEST-0001";
/// When the test transmissions are sent and verified: within every test
/// certificate's validity (2025 to 2035) but the expired intermediate's.
pub(super) const NOW: &str = "2030-01-01T00:00:00Z";

/// The test time.
pub(super) fn now() -> SystemTime {
    parse_rfc3339(NOW).expect("a time")
}

/// The leaf's RSA key, made once: RSA key generation is slow, and rcgen
/// (with ring) cannot generate RSA keys, only load them (PKCS#8).
static LEAF_KEY: LazyLock<rsa::PrivateKey> =
    LazyLock::new(|| rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("an RSA key"));

/// A CA certificate and its key.
pub(super) type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca_params(name: &str, path_length: Option<u8>, years: (i32, i32)) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(match path_length {
        Some(length) => BasicConstraints::Constrained(length),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = date_time_ymd(years.0, 1, 1);
    params.not_after = date_time_ymd(years.1, 1, 1);
    params
}

/// A self-signed root CA named `name`, valid 2025 to 2045.
pub(super) fn root(name: &str) -> Ca {
    let key = KeyPair::generate().expect("a key");
    CertifiedIssuer::self_signed(ca_params(name, None, (2025, 2045)), key).expect("a root")
}

/// An intermediate CA issued by `issuer`, valid from the first to the
/// second year (January 1st).
pub(super) fn intermediate(name: &str, issuer: &Ca, years: (i32, i32)) -> Ca {
    let key = KeyPair::generate().expect("a key");
    CertifiedIssuer::signed_by(ca_params(name, Some(0), years), key, issuer)
        .expect("an intermediate")
}

/// A leaf for [`LEAF_NAME`] with the RSA key and the extended key usage
/// `purpose`, issued by `issuer` or self-signed, valid 2025 to 2035.
pub(super) fn leaf_for(issuer: Option<&Ca>, purpose: ExtendedKeyUsagePurpose) -> Certificate {
    let mut params = CertificateParams::new(vec![LEAF_NAME.to_owned()]).expect("a SAN");
    params
        .distinguished_name
        .push(DnType::CommonName, LEAF_NAME);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![purpose];
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2035, 1, 1);
    let pkcs8 = LEAF_KEY.to_pkcs8_der().expect("PKCS#8");
    let key = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.as_bytes()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .expect("the RSA key loads");
    match issuer {
        Some(issuer) => params.signed_by(&key, issuer),
        None => params.self_signed(&key),
    }
    .expect("a leaf")
}

/// A TLS server leaf issued by `issuer`, or self-signed.
pub(super) fn leaf(issuer: Option<&Ca>) -> Certificate {
    leaf_for(issuer, ExtendedKeyUsagePurpose::ServerAuth)
}

/// A PEM document of `pems`, in that order (as PayPal serves: leaf first).
pub(super) fn bundle(pems: &[String]) -> String {
    pems.concat()
}

/// Headers of a PayPal-style transmission of `body` for [`WEBHOOK_ID`],
/// sent at [`NOW`], signed with the leaf's key.
pub(super) fn transmission(body: &[u8]) -> HeaderMap {
    let id = "2f4a5c10-0000-11f0-8000-000000000001";
    let message = format!("{id}|{NOW}|{WEBHOOK_ID}|{}", crc32fast::hash(body));
    let signature = rsa::pkcs1v15::SigningKey::<Sha256>::new(LEAF_KEY.clone())
        .sign(message.as_bytes())
        .to_vec();
    let signature = BASE64.encode(signature);
    headers([
        (TRANSMISSION_ID, id),
        (TRANSMISSION_TIME, NOW),
        (TRANSMISSION_SIG, signature.as_str()),
        (
            CERT_URL,
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-test",
        ),
        (AUTH_ALGO, SUPPORTED_ALGORITHM),
    ])
}
