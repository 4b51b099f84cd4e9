//! A JWKS document to verification keys, and the freshness its response
//! headers give it.
//!
//! Only public signing keys are taken: RSA (at least 2048 bits), P-256,
//! P-384 and Ed25519. Keys meant for encryption (`use: enc`, or `key_ops`
//! without `verify`), symmetric keys (`kty: oct`: a shared secret in a
//! public document would let anyone sign), unknown curves and algorithms
//! are skipped, each with a debug line; a document with no usable key at
//! all is refused, so the last good keys stay in use.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};

use crate::auth::keys::{KeyKind, MIN_RSA_BITS, VerificationKey};

/// Why a JWKS document gives no keys. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON, or no `keys` array.
    #[error("not a JWKS document (a JSON object with a \"keys\" array)")]
    NotJwks,
    /// Every key was skipped.
    #[error("no usable signing key ({skipped} skipped)")]
    NoUsableKeys {
        /// How many keys were skipped.
        skipped: usize,
    },
}

#[derive(serde::Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

/// The usable keys of a JWKS document.
pub(crate) fn key_set(body: &[u8]) -> Result<Vec<VerificationKey>, DocumentError> {
    let document: Document = serde_json::from_slice(body).map_err(|_| DocumentError::NotJwks)?;
    let mut keys = Vec::new();
    let mut skipped = 0;
    for value in document.keys {
        // Keys are read one by one so that one odd key (an unknown curve, a
        // new `kty`) does not hide the others.
        let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        match key(value) {
            Ok(key) => keys.push(key),
            Err(reason) => {
                skipped += 1;
                tracing::debug!(kid, reason, "JWKS key skipped");
            }
        }
    }
    if keys.is_empty() {
        return Err(DocumentError::NoUsableKeys { skipped });
    }
    Ok(keys)
}

fn key(value: serde_json::Value) -> Result<VerificationKey, &'static str> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "not a JWK this service reads")?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err("not a signing key (use)");
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err("not a verification key (key_ops)");
    }
    let alg = jwk
        .common
        .key_algorithm
        .map(|alg| alg.to_string().parse::<jsonwebtoken::Algorithm>())
        .transpose()
        .map_err(|_| "not a signature algorithm (alg)")?;
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            if modulus_bits(&rsa.n).ok_or("malformed RSA modulus")? < MIN_RSA_BITS {
                return Err("RSA key under 2048 bits");
            }
            KeyKind::Rsa
        }
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            _ => return Err("unsupported curve"),
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            let x: [u8; 32] = b64(&okp.x)
                .and_then(|x| x.try_into().ok())
                .ok_or("malformed Ed25519 key")?;
            ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| "invalid Ed25519 key")?;
            KeyKind::Ed25519
        }
        AlgorithmParameters::OctetKey(_) => return Err("symmetric key in a public document"),
        _ => return Err("unsupported key type"),
    };
    if alg.is_some_and(|alg| !kind.accepts(alg)) {
        return Err("alg does not match the key type");
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "unreadable key parameters")?;
    Ok(VerificationKey {
        kid: jwk.common.key_id,
        kind,
        alg,
        key,
    })
}

fn b64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

/// The size in bits of a base64url big-endian modulus.
fn modulus_bits(n: &str) -> Option<usize> {
    let bytes = b64(n)?;
    let first = bytes.iter().position(|b| *b != 0)?;
    let significant = bytes.len() - first;
    Some(significant * 8 - bytes[first].leading_zeros() as usize)
}

/// How long a response stays fresh by its headers: `Cache-Control`'s
/// `max-age` less the `Age` a cache in between has held it; zero for
/// `no-cache` / `no-store`; None when they say nothing.
pub(crate) fn freshness(cache_control: Option<&str>, age: Option<&str>) -> Option<Duration> {
    let mut max_age = None;
    for directive in cache_control?.split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-cache" | "no-store" => return Some(Duration::ZERO),
            "max-age" => max_age = value.trim().trim_matches('"').parse::<u64>().ok(),
            _ => {}
        }
    }
    let age = age.and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    max_age.map(|max| Duration::from_secs(max.saturating_sub(age)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_reads_max_age_less_age() {
        let f = |cc, age| freshness(cc, age).map(|d| d.as_secs());
        assert_eq!(
            f(
                Some("public, max-age=19302, must-revalidate, no-transform"),
                None
            ),
            Some(19302)
        );
        assert_eq!(f(Some("max-age=600"), Some("100")), Some(500));
        assert_eq!(f(Some("Max-Age=\"60\""), Some("600")), Some(0));
        assert_eq!(f(Some("no-store"), None), Some(0));
        assert_eq!(f(Some("public"), None), None);
        assert_eq!(f(Some("max-age=soon"), None), None);
        assert_eq!(f(None, Some("5")), None);
    }

    #[test]
    fn modulus_size_ignores_leading_zero_bytes() {
        let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut n = vec![0u8];
        n.extend(std::iter::repeat_n(0xffu8, 256));
        assert_eq!(modulus_bits(&encode(&n)), Some(2048));
        assert_eq!(modulus_bits(&encode(&[0x01, 0x00])), Some(9));
        assert_eq!(modulus_bits(&encode(&[0, 0])), None);
        assert_eq!(modulus_bits("*"), None);
    }

    #[test]
    fn only_public_signing_keys_are_taken() {
        let ed = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let x =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ed.verifying_key().as_bytes());
        let small_n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xc5u8; 128]);
        let document = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "ed", "use": "sig"},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "enc", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "wrong-alg", "alg": "RS256"},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "ops", "key_ops": ["encrypt"]},
            {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "kid": "shared"},
            {"kty": "RSA", "n": small_n, "e": "AQAB", "kid": "rsa-1024"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"},
            {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA", "kid": "k1"},
            {"kty": "RSA", "n": small_n, "e": "AQAB", "alg": "RSA-OAEP", "kid": "oaep"},
            {"kty": "XYZ", "kid": "future"},
            "not even an object",
        ]});
        let keys = key_set(document.to_string().as_bytes()).expect("one usable key");
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("ed")]);
        assert_eq!(keys[0].kind, KeyKind::Ed25519);

        assert_eq!(
            key_set(br#"{"keys": [{"kty": "oct", "k": "AAAA"}]}"#).err(),
            Some(DocumentError::NoUsableKeys { skipped: 1 })
        );
        assert_eq!(key_set(b"<html>").err(), Some(DocumentError::NotJwks));
        assert_eq!(
            key_set(br#"{"keys": {}}"#).err(),
            Some(DocumentError::NotJwks)
        );
    }

    #[test]
    fn a_jwk_alg_pins_the_key_to_it() {
        let ed = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let x =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ed.verifying_key().as_bytes());
        let document = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA"},
        ]});
        let keys = key_set(document.to_string().as_bytes()).expect("key");
        assert_eq!(keys[0].alg, Some(jsonwebtoken::Algorithm::EdDSA));
        assert!(keys[0].accepts(jsonwebtoken::Algorithm::EdDSA));
    }
}
