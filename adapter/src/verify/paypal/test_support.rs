//! The PayPal test vector and header helpers shared by this module's tests.

use std::time::SystemTime;

use http::HeaderMap;
use serde_json::Value;

use super::parse_rfc3339;
use crate::verify::test_vectors::{headers, vectors};

/// The PayPal SDK vector.
pub(super) fn vector() -> Value {
    vectors("paypal").remove(0)
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
