//! The shared signature test vectors (adapter/testdata/webhook-signatures.json)
//! and small helpers for the verifier tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

const VECTORS: &str = include_str!("../../testdata/webhook-signatures.json");

/// The vectors of one scheme (`"stripe"`, `"standard_webhooks"`, …).
pub fn vectors(scheme: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(VECTORS).expect("the vectors are JSON");
    let list = all[scheme].as_array().expect("a list of vectors").clone();
    assert!(!list.is_empty(), "no {scheme} vectors");
    list
}

/// A string field of a vector.
pub fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no string {field}", vector["name"]))
}

/// A Unix time field of a vector as a `SystemTime`.
pub fn time(vector: &Value, field: &str) -> SystemTime {
    at(vector[field].as_u64().expect("a Unix time"))
}

/// The Unix time `seconds` as a `SystemTime`.
pub fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// A header map from `(name, value)` pairs; a name given twice is appended.
pub fn headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    map
}

/// Asserts that neither the Display nor the Debug form of `error` mentions `secret`.
pub fn assert_no_secret(error: &dyn std::error::Error, secret: &str) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(secret), "{shown:?} shows the secret");
}
