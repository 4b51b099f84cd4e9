//! Webhook signature verification, one module per scheme.
//!
//! - [`stripe`]: `Stripe-Signature` (HMAC-SHA256, hex).
//! - [`standard`]: Standard Webhooks and Svix (`webhook-signature`: HMAC `v1`, ed25519 `v1a`).
//! - [`paddle`]: `Paddle-Signature` (HMAC-SHA256, hex).
//! - [`paypal`]: PayPal transmission signatures (RSA, PayPal's certificate).
//! - [`bearer`]: RevenueCat and Glassfy (a shared `Authorization` value, no signature).
//! - [`sign`]: the signing side, for tests and development tools.
//!
//! Every verifier works on the exact body bytes received (re-serialised JSON
//! never verifies) and takes the current time as a parameter ("verify as
//! of"): verifiers never read the clock, so tests can pin it to a vector's
//! time. All of them refuse with a [`VerifyError`], whose [`VerifyError::code`]
//! and [`VerifyError::http_status`] are what the HTTP layer answers.

pub mod bearer;
pub mod paddle;
pub mod paypal;
pub mod sign;
pub mod standard;
pub mod stripe;

#[cfg(test)]
mod test_vectors;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use http::HeaderMap;
use rsa::sha2::Digest;

use crate::secret::Secret;

/// SHA-256 of the RustCrypto generation that `hmac`, `rsa` and
/// `ed25519-dalek` are built on (digest 0.11). The workspace `sha2` is still
/// 0.10, whose types do not fit these crates; `rsa` re-exports the one we need.
pub(crate) type Sha256 = rsa::sha2::Sha256;

/// HMAC-SHA256, as used by Stripe, Standard Webhooks and Paddle.
pub(crate) type HmacSha256 = hmac::Hmac<Sha256>;

/// Why a webhook was refused.
///
/// Messages name headers and reasons only: never a header value, a secret,
/// or which secret came close. Every field is `&'static str` so no request
/// or configuration data can end up in one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A header the scheme requires (other than the signature) is absent.
    #[error("missing {header} header")]
    MissingHeader {
        /// The header's name.
        header: &'static str,
    },
    /// The signature header is absent, or carries no signature of a
    /// supported scheme (for example Stripe's `v0` only).
    #[error("no supported signature in the {header} header")]
    MissingSignature {
        /// The signature header's name.
        header: &'static str,
    },
    /// A header that must appear once appears several times.
    #[error("{header} header appears more than once")]
    DuplicateHeader {
        /// The header's name.
        header: &'static str,
    },
    /// A header is present but cannot be parsed.
    #[error("malformed {header} header: {reason}")]
    MalformedHeader {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signature header is present but a signature in it cannot be parsed.
    #[error("malformed signature in the {header} header: {reason}")]
    MalformedSignature {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The message names a signature algorithm this verifier does not accept.
    #[error("unsupported signature algorithm in the {header} header")]
    UnsupportedAlgorithm {
        /// The header's name.
        header: &'static str,
    },
    /// The signed timestamp is older than the tolerance allows (a replay, or
    /// a delivery retried for too long).
    #[error("timestamp is older than the tolerance")]
    TimestampTooOld,
    /// The signed timestamp is further in the future than the tolerance
    /// allows (refused too: a future timestamp accepted forever is a replay
    /// window).
    #[error("timestamp is further in the future than the tolerance")]
    TimestampInFuture,
    /// No signature matches any configured secret or key.
    #[error("no signature matches a configured secret")]
    SignatureMismatch,
    /// The `Authorization` header is missing or matches no configured token.
    #[error("missing or unrecognised authorization")]
    Unauthorized,
    /// The signing certificate (or its URL) is not one we trust.
    #[error("signing certificate not trusted: {reason}")]
    CertificateUntrusted {
        /// Why it is not trusted.
        reason: &'static str,
    },
    /// The signing certificate cannot be fetched right now; the provider
    /// should retry.
    #[error("signing certificate unavailable: {reason}")]
    CertificateUnavailable {
        /// Why it could not be had.
        reason: &'static str,
    },
}

impl VerifyError {
    /// A stable, machine-readable snake_case code, for responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader { .. } => "missing_header",
            VerifyError::MissingSignature { .. } => "missing_signature",
            VerifyError::DuplicateHeader { .. } => "duplicate_header",
            VerifyError::MalformedHeader { .. } => "malformed_header",
            VerifyError::MalformedSignature { .. } => "malformed_signature",
            VerifyError::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            VerifyError::TimestampTooOld | VerifyError::TimestampInFuture => {
                "timestamp_out_of_tolerance"
            }
            VerifyError::SignatureMismatch => "signature_mismatch",
            VerifyError::Unauthorized => "unauthorized",
            VerifyError::CertificateUntrusted { .. } => "certificate_untrusted",
            VerifyError::CertificateUnavailable { .. } => "certificate_unavailable",
        }
    }

    /// The HTTP status to answer: 401 for a bad bearer token, 503 when the
    /// certificate cannot be fetched now (so the provider retries), 400 for
    /// everything else (retrying will not make it verify).
    pub fn http_status(&self) -> u16 {
        match self {
            VerifyError::Unauthorized => 401,
            VerifyError::CertificateUnavailable { .. } => 503,
            _ => 400,
        }
    }
}

/// The single value of header `name` as a string, or `None` if absent.
///
/// A header present more than once is refused ([`VerifyError::DuplicateHeader`]):
/// which copy a proxy or framework keeps varies, and a verifier must not
/// guess. A value that is not visible ASCII is [`VerifyError::MalformedHeader`].
pub fn optional_header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::DuplicateHeader { header: name });
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| VerifyError::MalformedHeader {
            header: name,
            reason: "not visible ASCII",
        })
}

/// Like [`optional_header`], but an absent header is
/// [`VerifyError::MissingHeader`].
pub fn required_header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    optional_header(headers, name)?.ok_or(VerifyError::MissingHeader { header: name })
}

/// Refuses `signed_at` if it is more than `tolerance` before OR after `now`.
///
/// Two-sided on purpose: the official SDKs mostly check "too old" only,
/// which lets a signature with a far-future timestamp replay forever.
pub fn check_timestamp(
    signed_at: SystemTime,
    now: SystemTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    match now.duration_since(signed_at) {
        Ok(age) if age > tolerance => Err(VerifyError::TimestampTooOld),
        Ok(_) => Ok(()),
        Err(ahead) if ahead.duration() > tolerance => Err(VerifyError::TimestampInFuture),
        Err(_) => Ok(()),
    }
}

/// Parses a Unix timestamp in whole seconds: ASCII digits only (no sign,
/// no spaces, no fraction).
pub(crate) fn parse_unix_timestamp(
    value: &str,
    header: &'static str,
) -> Result<SystemTime, VerifyError> {
    let malformed = VerifyError::MalformedHeader {
        header,
        reason: "timestamp is not a Unix time in seconds",
    };
    // `u64::from_str` alone would also take a leading `+`.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed);
    }
    let seconds: u64 = value.parse().map_err(|_| malformed.clone())?;
    UNIX_EPOCH
        .checked_add(Duration::from_secs(seconds))
        .ok_or(malformed)
}

/// Most signatures one header may carry. Providers send one per active
/// secret (two during a rotation); the cap bounds the work a forged header
/// can cause (signatures x configured keys).
pub(crate) const MAX_SIGNATURES: usize = 16;

/// An HMAC-SHA256 instance keyed with `key`.
///
/// HMAC accepts keys of any length; preparing the one-block key here (hash
/// if longer than a block, zero-pad) is what `new_from_slice` does, minus a
/// `Result` whose error can never happen.
pub(crate) fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    let hashed;
    let key = if key.len() > block.len() {
        hashed = Sha256::digest(key);
        hashed.as_slice()
    } else {
        key
    };
    // The rest of the block stays zero (the padding).
    for (slot, byte) in block.iter_mut().zip(key) {
        *slot = *byte;
    }
    HmacSha256::new(&block)
}

/// Layout of the "timestamp plus hex HMAC-SHA256 signatures" headers that
/// Stripe (`t=..,v1=..`) and Paddle (`ts=..;h1=..`) use.
pub(crate) struct HexHmacScheme {
    /// Header name, lower case.
    pub header: &'static str,
    /// Separator between `key=value` items.
    pub item_separator: char,
    /// Key of the timestamp item.
    pub timestamp_key: &'static str,
    /// Key of the signature items accepted; other keys are ignored.
    pub signature_key: &'static str,
    /// What joins the timestamp and the body in the signed message.
    pub message_separator: &'static [u8],
}

/// A parsed [`HexHmacScheme`] header.
struct HexHmacHeader<'a> {
    /// The timestamp exactly as sent: it is part of the signed message.
    timestamp: &'a str,
    signed_at: SystemTime,
    signatures: Vec<[u8; 32]>,
}

impl HexHmacScheme {
    fn parse<'a>(&self, value: &'a str) -> Result<HexHmacHeader<'a>, VerifyError> {
        let malformed = |reason| VerifyError::MalformedSignature {
            header: self.header,
            reason,
        };
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in value.split(self.item_separator) {
            let item = item.trim_matches(' ');
            let (key, val) = item.split_once('=').ok_or(malformed("item without '='"))?;
            if key == self.timestamp_key {
                if timestamp.replace(val).is_some() {
                    return Err(malformed("more than one timestamp"));
                }
            } else if key == self.signature_key {
                let mut signature = [0u8; 32];
                hex::decode_to_slice(val, &mut signature)
                    .map_err(|_| malformed("signature is not 64 hex digits"))?;
                if signatures.len() == MAX_SIGNATURES {
                    return Err(malformed("too many signatures"));
                }
                signatures.push(signature);
            }
            // Anything else (Stripe's `v0`, future schemes) is ignored: a
            // downgrade to `v0` must not verify, and new schemes must not break us.
        }
        let timestamp = timestamp.ok_or(malformed("no timestamp"))?;
        let signed_at = parse_unix_timestamp(timestamp, self.header)?;
        Ok(HexHmacHeader {
            timestamp,
            signed_at,
            signatures,
        })
    }

    /// Verifies the header against `body`: accepts if ANY signature matches
    /// ANY secret (secret rotation sends one signature per active secret).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[Secret],
        tolerance: Duration,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let value =
            optional_header(headers, self.header)?.ok_or(VerifyError::MissingSignature {
                header: self.header,
            })?;
        let parsed = self.parse(value)?;
        if parsed.signatures.is_empty() {
            return Err(VerifyError::MissingSignature {
                header: self.header,
            });
        }
        // Cheap checks first: a stale message costs no HMAC.
        check_timestamp(parsed.signed_at, now, tolerance)?;
        for secret in secrets {
            let mut mac = hmac_sha256(secret.expose().as_bytes());
            mac.update(parsed.timestamp.as_bytes());
            mac.update(self.message_separator);
            mac.update(body);
            for signature in &parsed.signatures {
                // `verify_slice` compares in constant time.
                if mac.clone().verify_slice(signature).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(VerifyError::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn tolerance_is_two_sided_and_inclusive() {
        let tolerance = Duration::from_secs(300);
        let now = at(1_000_000);
        assert_eq!(check_timestamp(at(1_000_000), now, tolerance), Ok(()));
        assert_eq!(check_timestamp(at(1_000_000 - 300), now, tolerance), Ok(()));
        assert_eq!(check_timestamp(at(1_000_000 + 300), now, tolerance), Ok(()));
        assert_eq!(
            check_timestamp(at(1_000_000 - 301), now, tolerance),
            Err(VerifyError::TimestampTooOld)
        );
        assert_eq!(
            check_timestamp(at(1_000_000 + 301), now, tolerance),
            Err(VerifyError::TimestampInFuture)
        );
        // Sub-second precision of `now` counts.
        let later = now + Duration::from_millis(300_001);
        assert_eq!(
            check_timestamp(at(1_000_000), later, tolerance),
            Err(VerifyError::TimestampTooOld)
        );
    }

    #[test]
    fn timestamps_are_plain_digits() {
        assert_eq!(parse_unix_timestamp("0", "h"), Ok(UNIX_EPOCH));
        assert_eq!(
            parse_unix_timestamp("1234567890", "h"),
            Ok(at(1_234_567_890))
        );
        for bad in [
            "",
            " 1",
            "+1",
            "-1",
            "1.5",
            "1e3",
            "abc",
            "99999999999999999999999",
        ] {
            assert_eq!(
                parse_unix_timestamp(bad, "h").map_err(|e| e.code()),
                Err("malformed_header"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn header_helper_refuses_duplicates_and_non_ascii() {
        let mut headers = HeaderMap::new();
        assert_eq!(optional_header(&headers, "x-sig"), Ok(None));
        assert_eq!(
            required_header(&headers, "x-sig"),
            Err(VerifyError::MissingHeader { header: "x-sig" })
        );
        headers.insert("x-sig", HeaderValue::from_static("a"));
        assert_eq!(required_header(&headers, "x-sig"), Ok("a"));
        // Header names are case-insensitive.
        assert_eq!(required_header(&headers, "X-Sig"), Ok("a"));
        headers.append("x-sig", HeaderValue::from_static("b"));
        assert_eq!(
            optional_header(&headers, "x-sig"),
            Err(VerifyError::DuplicateHeader { header: "x-sig" })
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-sig",
            HeaderValue::from_bytes(b"caf\xc3\xa9").expect("valid header bytes"),
        );
        assert_eq!(
            optional_header(&headers, "x-sig").map_err(|e| e.code()),
            Err("malformed_header")
        );
    }

    #[test]
    fn hmac_key_preparation_matches_the_crate() {
        for len in [0, 1, 31, 32, 63, 64, 65, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut ours = hmac_sha256(&key);
            let mut theirs = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
            ours.update(b"message");
            theirs.update(b"message");
            assert_eq!(
                ours.finalize().into_bytes(),
                theirs.finalize().into_bytes(),
                "{len}"
            );
        }
    }

    #[test]
    fn codes_and_statuses() {
        let cases = [
            (
                VerifyError::MissingHeader { header: "h" },
                "missing_header",
                400,
            ),
            (
                VerifyError::MissingSignature { header: "h" },
                "missing_signature",
                400,
            ),
            (
                VerifyError::DuplicateHeader { header: "h" },
                "duplicate_header",
                400,
            ),
            (
                VerifyError::MalformedHeader {
                    header: "h",
                    reason: "r",
                },
                "malformed_header",
                400,
            ),
            (
                VerifyError::MalformedSignature {
                    header: "h",
                    reason: "r",
                },
                "malformed_signature",
                400,
            ),
            (
                VerifyError::UnsupportedAlgorithm { header: "h" },
                "unsupported_algorithm",
                400,
            ),
            (
                VerifyError::TimestampTooOld,
                "timestamp_out_of_tolerance",
                400,
            ),
            (
                VerifyError::TimestampInFuture,
                "timestamp_out_of_tolerance",
                400,
            ),
            (VerifyError::SignatureMismatch, "signature_mismatch", 400),
            (VerifyError::Unauthorized, "unauthorized", 401),
            (
                VerifyError::CertificateUntrusted { reason: "r" },
                "certificate_untrusted",
                400,
            ),
            (
                VerifyError::CertificateUnavailable { reason: "r" },
                "certificate_unavailable",
                503,
            ),
        ];
        for (error, code, status) in cases {
            assert_eq!(error.code(), code);
            assert_eq!(error.http_status(), status, "{code}");
            assert!(!error.to_string().is_empty());
        }
    }
}
