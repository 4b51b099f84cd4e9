//! Test helpers shared by the provider modules: fixtures, patching, and a
//! mutation loop that checks normalisation never panics.

use std::path::PathBuf;

use fulfil_proto::Provider;
use fulfil_proto::v1::PaymentEvent;
use serde_json::Value;

use super::{Context, NormalizeError};

/// A context with the defaults and source "test".
pub(crate) fn ctx(provider: Provider) -> Context<'static> {
    Context::new("test", provider)
}

/// Normalises `body`.
pub(crate) fn run(ctx: &Context<'_>, body: &[u8]) -> Result<PaymentEvent, NormalizeError> {
    super::normalize(ctx, body)
}

/// Normalises a JSON value.
pub(crate) fn run_json(ctx: &Context<'_>, body: &Value) -> Result<PaymentEvent, NormalizeError> {
    run(ctx, &serde_json::to_vec(body).unwrap())
}

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// A JSON file under `adapter/testdata/`, e.g. `"stripe/charge.json"`.
pub(crate) fn fixture(relative: &str) -> Value {
    let path = testdata().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sets the value at JSON pointer `pointer`, which must exist up to its
/// parent (objects only).
pub(crate) fn set(value: &mut Value, pointer: &str, new: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = value
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no parent for {pointer}"));
    parent.as_object_mut().unwrap().insert(key.to_owned(), new);
}

/// Removes the member at JSON pointer `pointer`.
pub(crate) fn remove(value: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    if let Some(Value::Object(map)) = value.pointer_mut(parent) {
        map.remove(key);
    }
}

/// A timestamp of whole seconds.
pub(crate) fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// Normalises many mutations of `body` (bytes flipped, truncated, values
/// swapped for other JSON types) and fails if any panics. Errors are fine.
pub(crate) fn never_panics(ctx: &Context<'_>, body: &Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    // A small LCG keeps the test deterministic without a dependency.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    for _ in 0..2_000 {
        let mut mutated = bytes.clone();
        let i = next() % mutated.len();
        match next() % 3 {
            0 => mutated[i] = (next() % 256) as u8,
            1 => mutated.truncate(i),
            _ => mutated.insert(i, b"{}[]\"0-.e,:"[next() % 11]),
        }
        let _ = run(ctx, &mutated);
    }
    let replacements = [
        Value::Null,
        Value::Bool(true),
        serde_json::json!(-1),
        serde_json::json!(1.5),
        serde_json::json!(u64::MAX),
        serde_json::json!("x"),
        serde_json::json!([]),
        serde_json::json!({}),
    ];
    for pointer in pointers(body, String::new()) {
        for replacement in &replacements {
            let mut mutated = body.clone();
            if let Some(slot) = mutated.pointer_mut(&pointer) {
                *slot = replacement.clone();
            }
            let _ = run_json(ctx, &mutated);
        }
    }
}

fn pointers(value: &Value, prefix: String) -> Vec<String> {
    let mut out = vec![prefix.clone()];
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                out.extend(pointers(child, format!("{prefix}/{escaped}")));
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                out.extend(pointers(child, format!("{prefix}/{i}")));
            }
        }
        _ => {}
    }
    out
}
