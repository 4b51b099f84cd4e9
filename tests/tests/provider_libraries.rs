//! Signatures made by the providers' own libraries verify with Fulfil's
//! verifiers: the `stripe` npm package's `generateTestHeaderString` and the
//! `standardwebhooks` Python package, with random secrets and payloads.
//!
//! Runs when `FULFIL_TEST_CLIENTS` is set (CI installs the libraries with
//! `npm ci --prefix tests/clients` and `pip install -r
//! tests/clients/requirements.txt`); then a missing library fails the test.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapter::secret::Secret;
use adapter::verify::{standard, stripe};
use base64::Engine;
use http::{HeaderMap, HeaderValue};
use rand::Rng;
use serde_json::{Value, json};

const CASES: usize = 25;

fn enabled() -> bool {
    let on = std::env::var_os("FULFIL_TEST_CLIENTS").is_some();
    if !on {
        eprintln!("skipped: FULFIL_TEST_CLIENTS is not set");
    }
    on
}

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// Runs `program script` with `input` as JSON on stdin; parses stdout.
fn run(program: &str, script: &str, input: &Value) -> Vec<String> {
    let mut child = Command::new(program)
        .arg(clients_dir().join(script))
        .current_dir(clients_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON array of headers")
}

fn random_text(rng: &mut impl Rng, len: usize) -> String {
    const ALPHABET: &[char] = &[
        'a', 'Z', '0', ' ', '"', '\\', 'é', '€', '漢', '🦀', '\n', '{', '}',
    ];
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect()
}

fn random_payload(rng: &mut impl Rng) -> String {
    let len = rng.random_range(0..200);
    json!({
        "id": format!("evt_{}", rng.random::<u64>()),
        "object": "event",
        "data": { "note": random_text(rng, len), "amount": rng.random::<u32>() },
    })
    .to_string()
}

fn now() -> (i64, SystemTime) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).expect("clock").as_secs();
    (
        i64::try_from(secs).expect("time"),
        UNIX_EPOCH + Duration::from_secs(secs),
    )
}

#[test]
fn stripe_npm_signatures_verify() {
    if !enabled() {
        return;
    }
    let mut rng = rand::rng();
    let (timestamp, at) = now();
    let cases: Vec<(String, String)> = (0..CASES)
        .map(|_| {
            let secret = format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(rng.random::<[u8; 24]>())
            );
            (secret, random_payload(&mut rng))
        })
        .collect();
    let input = json!(cases
        .iter()
        .map(|(secret, payload)| json!({ "secret": secret, "payload": payload, "timestamp": timestamp }))
        .collect::<Vec<_>>());
    let headers = run("node", "sign_stripe.mjs", &input);
    assert_eq!(headers.len(), CASES);
    for ((secret, payload), header) in cases.iter().zip(&headers) {
        let mut map = HeaderMap::new();
        map.insert(
            "stripe-signature",
            HeaderValue::from_str(header).expect("header"),
        );
        let secrets = [Secret::new("whsec_other"), Secret::new(secret.clone())];
        stripe::verify(
            &map,
            payload.as_bytes(),
            &secrets,
            stripe::DEFAULT_TOLERANCE,
            at,
        )
        .unwrap_or_else(|e| panic!("stripe-node signature refused: {e}"));
        let mut tampered = payload.clone().into_bytes();
        tampered.push(b' ');
        assert!(stripe::verify(&map, &tampered, &secrets, stripe::DEFAULT_TOLERANCE, at).is_err());
    }
}

#[test]
fn standardwebhooks_python_signatures_verify() {
    if !enabled() {
        return;
    }
    let mut rng = rand::rng();
    let (timestamp, at) = now();
    let cases: Vec<(String, String, String)> = (0..CASES)
        .map(|_| {
            let len = rng.random_range(24..=64);
            let key: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let secret = format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(key)
            );
            (
                secret,
                format!("msg_{}", rng.random::<u64>()),
                random_payload(&mut rng),
            )
        })
        .collect();
    let input = json!(cases
        .iter()
        .map(|(secret, id, payload)| json!({ "secret": secret, "id": id, "payload": payload, "timestamp": timestamp }))
        .collect::<Vec<_>>());
    let signatures = run("python3", "sign_standard.py", &input);
    assert_eq!(signatures.len(), CASES);
    for ((secret, id, payload), signature) in cases.iter().zip(&signatures) {
        let mut map = HeaderMap::new();
        map.insert("webhook-id", HeaderValue::from_str(id).expect("id"));
        map.insert("webhook-timestamp", HeaderValue::from(timestamp));
        map.insert(
            "webhook-signature",
            HeaderValue::from_str(signature).expect("signature"),
        );
        let key = standard::StandardKey::parse(&Secret::new(secret.clone())).expect("key");
        let verified = standard::verify(
            &map,
            payload.as_bytes(),
            &[key],
            standard::DEFAULT_TOLERANCE,
            at,
        )
        .unwrap_or_else(|e| panic!("standardwebhooks signature refused: {e}"));
        assert_eq!(&verified.webhook_id, id);
    }
}
