//! The signing side of the HMAC and ed25519 schemes: what a provider would
//! send. Used by tests, by the development tool that sends test webhooks, and
//! by the load generator. Each function mirrors one verifier, so a round
//! trip through both is the test of either.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer as _;
use hmac::Mac as _;

use super::hmac_sha256;
use super::standard::{KeyError, decode_hmac_secret};

/// Hex HMAC-SHA256 of `timestamp`, `separator`, `body`.
fn hex_hmac(secret: &[u8], timestamp: i64, separator: &[u8], body: &[u8]) -> String {
    let mut mac = hmac_sha256(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(separator);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Stripe-Signature` value for `body` sent at `timestamp` (Unix
/// seconds): `t={timestamp},v1={hex}`, keyed with the whole `whsec_…` string.
pub fn stripe_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let signature = hex_hmac(secret.as_bytes(), timestamp, b".", body);
    format!("t={timestamp},v1={signature}")
}

/// The three Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature` with one `v1` signature) for `body`, signed with a
/// `whsec_…` (or bare base64) secret. Fails only if the secret does not decode.
pub fn standard_headers(
    key: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<[(&'static str, String); 3], KeyError> {
    let secret = decode_hmac_secret(key)?;
    let mut mac = hmac_sha256(&secret);
    mac.update(standard_message(id, timestamp, body).as_slice());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    Ok([
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", format!("v1,{signature}")),
    ])
}

/// A Standard Webhooks `v1a,<base64>` ed25519 signature entry, signed with
/// the 32-byte seed of an ed25519 signing key (its `whpk_` public key is the
/// base64 SubjectPublicKeyInfo DER of the matching verifying key).
pub fn standard_v1a_signature(
    signing_key_seed: &[u8; 32],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let signing_key = ed25519_dalek::SigningKey::from_bytes(signing_key_seed);
    let signature = signing_key.sign(&standard_message(id, timestamp, body));
    format!("v1a,{}", BASE64.encode(signature.to_bytes()))
}

/// The `Paddle-Signature` value for `body` sent at `ts` (Unix seconds):
/// `ts={ts};h1={hex}`, keyed with the secret's bytes.
pub fn paddle_header(secret: &str, ts: i64, body: &[u8]) -> String {
    let signature = hex_hmac(secret.as_bytes(), ts, b":", body);
    format!("ts={ts};h1={signature}")
}

/// `"{id}.{timestamp}.{body}"`, the Standard Webhooks signed message.
fn standard_message(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{id}.{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::test_vectors::{text, vectors};

    #[test]
    fn stripe_header_reproduces_the_vector() {
        let vector = &vectors("stripe")[0];
        let timestamp = vector["timestamp"].as_i64().expect("a timestamp");
        assert_eq!(
            stripe_header(
                text(vector, "secret"),
                timestamp,
                text(vector, "payload").as_bytes()
            ),
            text(vector, "header")
        );
    }

    #[test]
    fn v1a_signature_has_the_spec_shape() {
        let entry = standard_v1a_signature(&[3u8; 32], "msg_1", 1, b"{}");
        let (version, encoded) = entry.split_once(',').expect("version,signature");
        assert_eq!(version, "v1a");
        assert_eq!(BASE64.decode(encoded).expect("base64").len(), 64);
    }
}
