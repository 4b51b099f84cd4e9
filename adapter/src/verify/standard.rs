//! Standard Webhooks (<https://www.standardwebhooks.com>), also sent by Svix.
//!
//! Headers `webhook-id`, `webhook-timestamp` and `webhook-signature`, or their
//! `svix-id` / `svix-timestamp` / `svix-signature` aliases. The signed message
//! is `"{id}.{timestamp}.{raw body}"`. The signature header is a
//! space-separated list of `v1,<base64 HMAC-SHA256>` and
//! `v1a,<base64 ed25519 signature>`; other versions are ignored. Every
//! signature is tried against every configured key of its type, which covers
//! key rotation. The id is the delivery's dedupe key.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use hmac::Mac as _;
use http::HeaderMap;

use super::{
    MAX_SIGNATURES, VerifyError, check_timestamp, hmac_sha256, optional_header,
    parse_unix_timestamp, required_header,
};
use crate::secret::Secret;

/// The default tolerance of the Standard Webhooks libraries (±5 minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Prefix of a symmetric (`v1`) secret: `whsec_` + base64 bytes.
pub const SECRET_PREFIX: &str = "whsec_";
/// Prefix of an asymmetric (`v1a`) public key: `whpk_` + base64 of the
/// ed25519 SubjectPublicKeyInfo DER.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Prefix of an asymmetric signing (private) key, which a verifier must never hold.
const SIGNING_KEY_PREFIX: &str = "whsk_";

/// One family of header names.
struct HeaderNames {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

const WEBHOOK: HeaderNames = HeaderNames {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};

const SVIX: HeaderNames = HeaderNames {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// A configured verification key.
pub enum StandardKey {
    /// A `v1` HMAC-SHA256 secret (the decoded bytes).
    Hmac(HmacKey),
    /// A `v1a` ed25519 public key.
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// The decoded bytes of a `whsec_` secret. Never printed.
pub struct HmacKey(Vec<u8>);

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(***)")
    }
}

impl fmt::Debug for StandardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StandardKey::Hmac(key) => f.debug_tuple("Hmac").field(key).finish(),
            // A public key is not secret, but there is nothing to gain from printing it either.
            StandardKey::Ed25519(_) => f.write_str("Ed25519(..)"),
        }
    }
}

/// Why a configured Standard Webhooks key is unusable. Never shows the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The secret (after any `whsec_` prefix) is not standard base64.
    #[error("webhook secret is not base64 (expected whsec_ followed by base64)")]
    NotBase64,
    /// The secret decodes to no bytes.
    #[error("webhook secret is empty")]
    Empty,
    /// A `whpk_` value that is not base64 of an ed25519 SubjectPublicKeyInfo.
    #[error(
        "webhook public key is not an ed25519 public key (expected whpk_ followed by base64 DER)"
    )]
    InvalidPublicKey,
    /// A `whsk_` signing key was configured; verification needs the `whpk_` public key.
    #[error("a whsk_ signing key was configured; configure the whpk_ public key instead")]
    SigningKey,
}

impl StandardKey {
    /// Parses a configured key: `whpk_…` is an ed25519 public key (`v1a`);
    /// `whsec_…`, or bare base64 without the prefix, is an HMAC secret (`v1`).
    pub fn parse(secret: &Secret) -> Result<StandardKey, KeyError> {
        let value = secret.expose();
        if let Some(encoded) = value.strip_prefix(PUBLIC_KEY_PREFIX) {
            let der = BASE64
                .decode(encoded)
                .map_err(|_| KeyError::InvalidPublicKey)?;
            let key = ed25519_dalek::VerifyingKey::from_public_key_der(&der)
                .map_err(|_| KeyError::InvalidPublicKey)?;
            return Ok(StandardKey::Ed25519(key));
        }
        if value.starts_with(SIGNING_KEY_PREFIX) {
            return Err(KeyError::SigningKey);
        }
        decode_hmac_secret(value).map(|bytes| StandardKey::Hmac(HmacKey(bytes)))
    }
}

/// The bytes of a `whsec_` (or bare base64) secret.
pub(crate) fn decode_hmac_secret(value: &str) -> Result<Vec<u8>, KeyError> {
    let encoded = value.strip_prefix(SECRET_PREFIX).unwrap_or(value);
    let bytes = BASE64.decode(encoded).map_err(|_| KeyError::NotBase64)?;
    if bytes.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(bytes)
}

/// What a verified delivery tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `webhook-id` (or `svix-id`): the same for every retry of one
    /// message, so it is the dedupe key.
    pub webhook_id: String,
}

/// Verifies a Standard Webhooks (or Svix) delivery of `body` (the exact bytes
/// received) against `keys`, as of `now`.
///
/// If both the `webhook-*` and `svix-*` headers are present, the `webhook-*`
/// ones are used; the two families are never mixed.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    keys: &[StandardKey],
    tolerance: Duration,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let (names, signature_header) = match optional_header(headers, WEBHOOK.signature)? {
        Some(value) => (&WEBHOOK, value),
        None => match optional_header(headers, SVIX.signature)? {
            Some(value) => (&SVIX, value),
            None => {
                return Err(VerifyError::MissingSignature {
                    header: WEBHOOK.signature,
                });
            }
        },
    };
    let id = required_header(headers, names.id)?;
    let timestamp = required_header(headers, names.timestamp)?;
    let signed_at = parse_unix_timestamp(timestamp, names.timestamp)?;
    let signatures = parse_signatures(signature_header, names.signature)?;
    if signatures.hmac.is_empty() && signatures.ed25519.is_empty() {
        return Err(VerifyError::MissingSignature {
            header: names.signature,
        });
    }
    check_timestamp(signed_at, now, tolerance)?;

    let mut message = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    message.extend_from_slice(id.as_bytes());
    message.push(b'.');
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);

    let matches = keys.iter().any(|key| match key {
        StandardKey::Hmac(HmacKey(secret)) if !signatures.hmac.is_empty() => {
            let mut mac = hmac_sha256(secret);
            mac.update(&message);
            // `verify_slice` compares in constant time.
            signatures
                .hmac
                .iter()
                .any(|signature| mac.clone().verify_slice(signature).is_ok())
        }
        StandardKey::Ed25519(public_key) => signatures.ed25519.iter().any(|signature| {
            // `verify_strict` also refuses malleable signatures and weak keys.
            public_key
                .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(signature))
                .is_ok()
        }),
        StandardKey::Hmac(_) => false,
    });
    if matches {
        Ok(Verified {
            webhook_id: id.to_owned(),
        })
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// The signatures of the supported versions in a signature header.
struct Signatures {
    hmac: Vec<[u8; 32]>,
    ed25519: Vec<[u8; 64]>,
}

fn parse_signatures(value: &str, header: &'static str) -> Result<Signatures, VerifyError> {
    let malformed = |reason| VerifyError::MalformedSignature { header, reason };
    let mut signatures = Signatures {
        hmac: Vec::new(),
        ed25519: Vec::new(),
    };
    for entry in value.split(' ').filter(|entry| !entry.is_empty()) {
        if signatures.hmac.len() + signatures.ed25519.len() == MAX_SIGNATURES {
            return Err(malformed("too many signatures"));
        }
        let (version, encoded) = entry
            .split_once(',')
            .ok_or(malformed("entry is not version,signature"))?;
        match version {
            "v1" => {
                let bytes = BASE64
                    .decode(encoded)
                    .map_err(|_| malformed("v1 signature is not base64"))?;
                let signature = bytes
                    .try_into()
                    .map_err(|_| malformed("v1 signature is not 32 bytes"))?;
                signatures.hmac.push(signature);
            }
            "v1a" => {
                let bytes = BASE64
                    .decode(encoded)
                    .map_err(|_| malformed("v1a signature is not base64"))?;
                let signature = bytes
                    .try_into()
                    .map_err(|_| malformed("v1a signature is not 64 bytes"))?;
                signatures.ed25519.push(signature);
            }
            // Versions we do not know are skipped, so a sender adding a new
            // scheme next to v1 does not break verification.
            _ => {}
        }
    }
    Ok(signatures)
}

#[cfg(test)]
mod tests {
    use rand::distr::{Alphanumeric, SampleString};
    use rand::{Rng, RngCore};

    use super::*;
    use crate::verify::sign;
    use crate::verify::test_vectors::{assert_no_secret, at, headers, text, time, vectors};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_2Lh9KRb0pzN4LePd3XiA4o0Avfz";
    const BODY: &[u8] = b"{\"type\":\"invoice.paid\"}";
    const T: u64 = 1_700_000_000;

    fn key(value: &str) -> StandardKey {
        StandardKey::parse(&Secret::new(value)).expect("a valid key")
    }

    fn delivery(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
        headers([
            ("webhook-id", id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature),
        ])
    }

    fn check(
        headers: &HeaderMap,
        body: &[u8],
        keys: &[StandardKey],
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        verify(headers, body, keys, DEFAULT_TOLERANCE, now)
    }

    /// The `v1,…` entry for `BODY` at `T` under `secret`.
    fn v1(secret: &str) -> String {
        let [_, _, (_, signature)] =
            sign::standard_headers(secret, ID, T as i64, BODY).expect("a valid secret");
        signature
    }

    fn ok() -> Result<Verified, VerifyError> {
        Ok(Verified {
            webhook_id: ID.to_owned(),
        })
    }

    /// A `whpk_` public key for an ed25519 seed.
    fn public_key(seed: &[u8; 32]) -> String {
        // SubjectPublicKeyInfo DER for ed25519 (RFC 8410): a fixed 12-byte header, then the key.
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(
            ed25519_dalek::SigningKey::from_bytes(seed)
                .verifying_key()
                .as_bytes(),
        );
        format!("{PUBLIC_KEY_PREFIX}{}", BASE64.encode(der))
    }

    #[test]
    fn vectors_verify_as_of_their_time() {
        for vector in vectors("standard_webhooks") {
            let configured = vector
                .get("secret")
                .or_else(|| vector.get("public_key"))
                .and_then(|v| v.as_str())
                .expect("a key");
            let keys = [key(configured)];
            let id = text(&vector, "id");
            let timestamp = vector["timestamp"].to_string();
            let body = text(&vector, "payload").as_bytes();
            let now = time(&vector, "timestamp");
            let map = delivery(id, &timestamp, text(&vector, "signature"));
            let result = check(&map, body, &keys, now);
            let name = &vector["name"];
            if vector["valid"] == true {
                assert_eq!(
                    result,
                    Ok(Verified {
                        webhook_id: id.to_owned()
                    }),
                    "{name}"
                );
                let mut changed = body.to_vec();
                changed[1] ^= 0x01;
                assert_eq!(
                    check(&map, &changed, &keys, now),
                    Err(VerifyError::SignatureMismatch),
                    "{name}"
                );
                let other_id = delivery("msg_other", &timestamp, text(&vector, "signature"));
                assert_eq!(
                    check(&other_id, body, &keys, now),
                    Err(VerifyError::SignatureMismatch),
                    "{name}"
                );
            } else {
                assert_eq!(result, Err(VerifyError::SignatureMismatch), "{name}");
            }
        }
    }

    #[test]
    fn sign_reproduces_the_v1_vector() {
        for vector in vectors("standard_webhooks") {
            let Some(secret) = vector.get("secret").and_then(|v| v.as_str()) else {
                continue;
            };
            if vector["valid"] != true {
                continue;
            }
            let timestamp = vector["timestamp"].as_i64().expect("a timestamp");
            let signed = sign::standard_headers(
                secret,
                text(&vector, "id"),
                timestamp,
                text(&vector, "payload").as_bytes(),
            )
            .expect("a valid secret");
            assert_eq!(signed[0], ("webhook-id", text(&vector, "id").to_owned()));
            assert_eq!(signed[1], ("webhook-timestamp", timestamp.to_string()));
            assert_eq!(
                signed[2],
                ("webhook-signature", text(&vector, "signature").to_owned())
            );
        }
    }

    #[test]
    fn svix_aliases_and_preference_for_webhook_headers() {
        let signature = v1(SECRET);
        let t = T.to_string();
        let svix = headers([
            ("svix-id", ID),
            ("svix-timestamp", t.as_str()),
            ("svix-signature", signature.as_str()),
        ]);
        assert_eq!(check(&svix, BODY, &[key(SECRET)], at(T)), ok());
        // Both families: the webhook-* one decides, even when the svix-* one would verify.
        let mut both = svix.clone();
        both.extend(delivery(ID, &t, &v1("whsec_b3RoZXI=")));
        assert_eq!(
            check(&both, BODY, &[key(SECRET)], at(T)),
            Err(VerifyError::SignatureMismatch)
        );
        // No mixing: webhook-signature with only svix-id is missing webhook-id.
        let mixed = headers([
            ("svix-id", ID),
            ("svix-timestamp", t.as_str()),
            ("webhook-signature", signature.as_str()),
        ]);
        assert_eq!(
            check(&mixed, BODY, &[key(SECRET)], at(T)),
            Err(VerifyError::MissingHeader {
                header: "webhook-id"
            })
        );
    }

    #[test]
    fn bare_base64_secret_without_prefix() {
        let bare = SECRET.trim_start_matches(SECRET_PREFIX);
        let map = delivery(ID, &T.to_string(), &v1(SECRET));
        assert_eq!(check(&map, BODY, &[key(bare)], at(T)), ok());
    }

    #[test]
    fn rotation_every_signature_against_every_key() {
        let (old, new) = (v1("whsec_b2xkIHNlY3JldA=="), v1("whsec_bmV3IHNlY3JldA=="));
        let seed = [7u8; 32];
        let v1a = sign::standard_v1a_signature(&seed, ID, T as i64, BODY);
        let t = T.to_string();
        for signature in [
            format!("{old} {new}"),
            format!("{new} {old}"),
            format!("{v1a} {old} {new}"),
            format!("v2,c29tZXRoaW5n  {old}  {new} "),
        ] {
            let map = delivery(ID, &t, &signature);
            for keys in [
                vec![key("whsec_bmV3IHNlY3JldA==")],
                vec![key("whsec_dW5yZWxhdGVk"), key("whsec_bmV3IHNlY3JldA==")],
                vec![key("whsec_bmV3IHNlY3JldA=="), key("whsec_dW5yZWxhdGVk")],
                vec![key(&public_key(&[9u8; 32])), key("whsec_b2xkIHNlY3JldA==")],
            ] {
                assert_eq!(
                    check(&map, BODY, &keys, at(T)),
                    ok(),
                    "{signature} {keys:?}"
                );
            }
            let map = delivery(ID, &t, &signature);
            assert_eq!(
                check(
                    &map,
                    BODY,
                    &[key("whsec_dW5yZWxhdGVk"), key(&public_key(&[9u8; 32]))],
                    at(T)
                ),
                Err(VerifyError::SignatureMismatch)
            );
        }
    }

    #[test]
    fn at_most_sixteen_signatures() {
        let (other, good) = (v1("whsec_b3RoZXI="), v1(SECRET));
        let signature =
            |others: usize| format!("{} {good}", vec![other.as_str(); others].join(" "));
        let t = T.to_string();
        assert_eq!(
            check(
                &delivery(ID, &t, &signature(15)),
                BODY,
                &[key(SECRET)],
                at(T)
            ),
            ok()
        );
        assert_eq!(
            check(
                &delivery(ID, &t, &signature(16)),
                BODY,
                &[key(SECRET)],
                at(T)
            )
            .map_err(|e| e.code()),
            Err("malformed_signature")
        );
    }

    #[test]
    fn v1a_signatures_need_the_matching_public_key() {
        let seed = [42u8; 32];
        let t = T.to_string();
        let map = delivery(
            ID,
            &t,
            &sign::standard_v1a_signature(&seed, ID, T as i64, BODY),
        );
        assert_eq!(check(&map, BODY, &[key(&public_key(&seed))], at(T)), ok());
        // An HMAC key never checks a v1a signature, and vice versa.
        assert_eq!(
            check(&map, BODY, &[key(SECRET)], at(T)),
            Err(VerifyError::SignatureMismatch)
        );
        let map = delivery(ID, &t, &v1(SECRET));
        assert_eq!(
            check(&map, BODY, &[key(&public_key(&seed))], at(T)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn tolerance_refuses_too_old_and_too_far_in_the_future() {
        let map = delivery(ID, &T.to_string(), &v1(SECRET));
        let keys = [key(SECRET)];
        assert_eq!(check(&map, BODY, &keys, at(T + 300)), ok());
        assert_eq!(check(&map, BODY, &keys, at(T - 300)), ok());
        assert_eq!(
            check(&map, BODY, &keys, at(T + 301)),
            Err(VerifyError::TimestampTooOld)
        );
        assert_eq!(
            check(&map, BODY, &keys, at(T - 301)),
            Err(VerifyError::TimestampInFuture)
        );
    }

    #[test]
    fn one_changed_body_byte_is_refused() {
        let map = delivery(ID, &T.to_string(), &v1(SECRET));
        for i in 0..BODY.len() {
            let mut body = BODY.to_vec();
            body[i] ^= 0x80;
            assert_eq!(
                check(&map, &body, &[key(SECRET)], at(T)),
                Err(VerifyError::SignatureMismatch)
            );
        }
    }

    #[test]
    fn wrong_secret_or_no_key() {
        let map = delivery(ID, &T.to_string(), &v1(SECRET));
        assert_eq!(
            check(
                &map,
                BODY,
                &[key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx")],
                at(T)
            ),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            check(&map, BODY, &[], at(T)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn missing_and_duplicated_headers() {
        let t = T.to_string();
        let signature = v1(SECRET);
        let keys = [key(SECRET)];
        assert_eq!(
            check(
                &headers([("webhook-id", ID), ("webhook-timestamp", t.as_str())]),
                BODY,
                &keys,
                at(T)
            ),
            Err(VerifyError::MissingSignature {
                header: "webhook-signature"
            })
        );
        assert_eq!(
            check(
                &headers([
                    ("webhook-timestamp", t.as_str()),
                    ("webhook-signature", signature.as_str())
                ]),
                BODY,
                &keys,
                at(T)
            ),
            Err(VerifyError::MissingHeader {
                header: "webhook-id"
            })
        );
        assert_eq!(
            check(
                &headers([
                    ("webhook-id", ID),
                    ("webhook-signature", signature.as_str())
                ]),
                BODY,
                &keys,
                at(T)
            ),
            Err(VerifyError::MissingHeader {
                header: "webhook-timestamp"
            })
        );
        for duplicated in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let mut map = delivery(ID, &t, &signature);
            let value = map.get(duplicated).expect("present").clone();
            map.append(duplicated, value);
            assert_eq!(
                check(&map, BODY, &keys, at(T)),
                Err(VerifyError::DuplicateHeader { header: duplicated })
            );
        }
    }

    #[test]
    fn malformed_headers() {
        let t = T.to_string();
        let good = v1(SECRET);
        let cases: [(&str, &str, &str); 10] = [
            (&t, "", "missing_signature"),
            (&t, "   ", "missing_signature"),
            (&t, "v2,c29tZXRoaW5n", "missing_signature"),
            (&t, "garbage", "malformed_signature"),
            (&t, "v1,not base64!", "malformed_signature"),
            (&t, "v1,c2hvcnQ=", "malformed_signature"),
            (&t, "v1a,c2hvcnQ=", "malformed_signature"),
            ("abc", &good, "malformed_header"),
            ("", &good, "malformed_header"),
            ("1700000000.0", &good, "malformed_header"),
        ];
        for (timestamp, signature, code) in cases {
            let result = check(
                &delivery(ID, timestamp, signature),
                BODY,
                &[key(SECRET)],
                at(T),
            );
            assert_eq!(
                result.map_err(|e| e.code()),
                Err(code),
                "{timestamp:?} {signature:?}"
            );
        }
    }

    #[test]
    fn key_parsing() {
        assert!(matches!(key(SECRET), StandardKey::Hmac(_)));
        assert!(matches!(
            key(&public_key(&[1u8; 32])),
            StandardKey::Ed25519(_)
        ));
        let parse = |value: &str| StandardKey::parse(&Secret::new(value)).map(|_| ());
        assert_eq!(parse("whsec_not base64"), Err(KeyError::NotBase64));
        assert_eq!(parse("whsec_"), Err(KeyError::Empty));
        assert_eq!(parse(""), Err(KeyError::Empty));
        assert_eq!(parse("whpk_AAAA"), Err(KeyError::InvalidPublicKey));
        assert_eq!(parse("whpk_%%%"), Err(KeyError::InvalidPublicKey));
        assert_eq!(parse("whsk_c2VjcmV0"), Err(KeyError::SigningKey));
        assert_eq!(
            sign::standard_headers("whsec_%", ID, 1, BODY).map(|_| ()),
            Err(KeyError::NotBase64)
        );
    }

    #[test]
    fn sign_round_trips_with_random_keys_and_bodies() {
        let mut rng = rand::rng();
        for _ in 0..30 {
            let mut secret = vec![0u8; rng.random_range(16..64)];
            rng.fill_bytes(&mut secret);
            let secret = format!("{SECRET_PREFIX}{}", BASE64.encode(&secret));
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            let mut body = vec![0u8; rng.random_range(0..4096)];
            rng.fill_bytes(&mut body);
            let id = format!("msg_{}", Alphanumeric.sample_string(&mut rng, 27));
            let t = rng.random_range(1_000_000_000..4_000_000_000u64);

            let signed =
                sign::standard_headers(&secret, &id, t as i64, &body).expect("a valid secret");
            let map = headers(signed.iter().map(|(name, value)| (*name, value.as_str())));
            let expected = Ok(Verified {
                webhook_id: id.clone(),
            });
            assert_eq!(check(&map, &body, &[key(&secret)], at(t)), expected);
            assert_eq!(
                check(&map, &body, &[key(SECRET)], at(t)),
                Err(VerifyError::SignatureMismatch)
            );

            let v1a = sign::standard_v1a_signature(&seed, &id, t as i64, &body);
            let map = delivery(&id, &t.to_string(), &v1a);
            assert_eq!(
                check(&map, &body, &[key(&public_key(&seed))], at(t)),
                expected
            );
        }
    }

    #[test]
    fn keys_and_errors_never_show_the_secret() {
        let bare = SECRET.trim_start_matches(SECRET_PREFIX);
        let shown = format!("{:?}", key(SECRET));
        assert!(!shown.contains(bare), "{shown}");
        for bad in ["whsec_%%%secret%%%", "whpk_%%%secret%%%"] {
            let error = StandardKey::parse(&Secret::new(bad)).expect_err("refused");
            assert_no_secret(&error, "secret%%%");
        }
        let map = delivery(ID, &T.to_string(), &v1(SECRET));
        for result in [
            check(&map, b"changed", &[key(SECRET)], at(T)),
            check(&map, BODY, &[key(SECRET)], at(T + 1_000)),
            check(&delivery(ID, SECRET, SECRET), BODY, &[key(SECRET)], at(T)),
        ] {
            let error = result.expect_err("refused");
            assert_no_secret(&error, bare);
            assert_no_secret(&error, &v1(SECRET));
        }
    }
}
