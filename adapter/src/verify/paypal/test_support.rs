//! The PayPal test vector and header helpers shared by this module's tests.

use std::time::SystemTime;

use http::HeaderMap;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::Value;

use super::{TrustAnchors, parse_rfc3339};
use crate::verify::test_vectors::{headers, text, vectors};

/// The public DigiCert intermediate that issued the vector's certificate
/// (provenance and fingerprint in the file).
pub(super) const VECTOR_INTERMEDIATE_PEM: &str =
    include_str!("../../../testdata/paypal/digicert-sha2-ev-server-ca.pem");
/// The public DigiCert root above it (provenance and fingerprint in the file).
const VECTOR_ROOT_PEM: &str =
    include_str!("../../../testdata/paypal/digicert-high-assurance-ev-root-ca.pem");

/// The PayPal SDK vector.
pub(super) fn vector() -> Value {
    vectors("paypal").remove(0)
}

/// The vector's certificate followed by its intermediate, as PayPal serves
/// its certificate URL (the vector itself holds the certificate only).
pub(super) fn vector_bundle(vector: &Value) -> String {
    format!(
        "{}\n{VECTOR_INTERMEDIATE_PEM}",
        text(vector, "certificate_pem")
    )
}

/// The vector's root, DigiCert High Assurance EV Root CA, as the only trust
/// anchor: the webpki-roots in use no longer carry it.
pub(super) fn vector_root() -> TrustAnchors {
    let root = CertificateDer::from_pem_slice(VECTOR_ROOT_PEM.as_bytes()).expect("the root");
    TrustAnchors::from_certificates([&root]).expect("a trust anchor")
}

/// The vector's headers, as sent.
pub(super) fn vector_headers(vector: &Value) -> Vec<(String, String)> {
    vector["headers"]
        .as_object()
        .expect("headers")
        .iter()
        .map(|(name, value)| {
            (
                name.clone(),
                value.as_str().expect("a header value").to_owned(),
            )
        })
        .collect()
}

/// A header map from `(name, value)` pairs.
pub(super) fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    headers(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

/// `pairs` with header `name` replaced by `value` (or removed if `None`).
pub(super) fn with(pairs: &[(String, String)], name: &str, value: Option<&str>) -> HeaderMap {
    let mut changed: Vec<(String, String)> = pairs
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    if let Some(value) = value {
        changed.push((name.to_owned(), value.to_owned()));
    }
    header_map(&changed)
}

/// The vector's transmission time.
pub(super) fn vector_time() -> SystemTime {
    parse_rfc3339("2017-03-30T20:04:05Z").expect("a time")
}
