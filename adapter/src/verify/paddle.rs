//! Paddle Billing: `Paddle-Signature: ts=<unix seconds>;h1=<hex>[;h1=<hex>…]`.
//!
//! Each `h1` is the hex HMAC-SHA256 of `"{ts}:{raw body}"`, keyed with the
//! notification secret's bytes. During a secret rotation several `h1` may be
//! sent; every one is tried against every configured secret. Unknown keys
//! are ignored.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::{HexHmacScheme, VerifyError};
use crate::secret::Secret;

/// The signature header (lower case, as `http` stores names).
pub const HEADER: &str = "paddle-signature";

/// Paddle's SDKs allow 5 seconds between the signed timestamp and now.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5);

const SCHEME: HexHmacScheme = HexHmacScheme {
    header: HEADER,
    item_separator: ';',
    timestamp_key: "ts",
    signature_key: "h1",
    message_separator: b":",
};

/// Verifies a Paddle webhook `body` (the exact bytes received) against its
/// `Paddle-Signature` header, as of `now`.
///
/// Accepts if any `h1` matches any of `secrets` and `ts` is within
/// `tolerance` of `now` (either side). Comparison is constant time.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[Secret],
    tolerance: Duration,
    now: SystemTime,
) -> Result<(), VerifyError> {
    SCHEME.verify(headers, body, secrets, tolerance, now)
}

#[cfg(test)]
mod tests {
    use rand::distr::{Alphanumeric, SampleString};
    use rand::{Rng, RngCore};

    use super::*;
    use crate::verify::sign;
    use crate::verify::test_vectors::{assert_no_secret, at, headers, text, time, vectors};

    const SECRET: &str = "pdl_ntfset_01h_secret";
    const BODY: &[u8] = b"{\"event_id\":\"evt_01\",\"data\":{}}";
    const TS: u64 = 1_698_796_800;

    fn check(
        header: &str,
        body: &[u8],
        configured: &[&str],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let secrets: Vec<Secret> = configured.iter().map(|s| Secret::new(*s)).collect();
        verify(
            &headers([(HEADER, header)]),
            body,
            &secrets,
            DEFAULT_TOLERANCE,
            now,
        )
    }

    fn h1(secret: &str) -> String {
        sign::paddle_header(secret, TS as i64, BODY)
            .split_once(";h1=")
            .map(|(_, sig)| sig.to_owned())
            .expect("an h1 signature")
    }

    #[test]
    fn vectors_verify_as_of_their_time() {
        for vector in vectors("paddle") {
            let header = text(&vector, "header");
            let body = text(&vector, "payload").as_bytes();
            let secret = text(&vector, "secret");
            let now = time(&vector, "timestamp");
            let result = check(header, body, &[secret], now);
            assert_eq!(
                result.is_ok(),
                vector["valid"] == true,
                "{}: {result:?}",
                vector["name"]
            );
            // The signing side reproduces the vector.
            let ts = vector["timestamp"].as_i64().expect("a timestamp");
            assert_eq!(sign::paddle_header(secret, ts, body), header);
            if result.is_ok() {
                let mut changed = body.to_vec();
                changed[0] ^= 0x20;
                assert_eq!(
                    check(header, &changed, &[secret], now),
                    Err(VerifyError::SignatureMismatch)
                );
                assert_eq!(
                    check(header, body, &["VALID_SECRET_2"], now),
                    Err(VerifyError::SignatureMismatch)
                );
            }
        }
    }

    #[test]
    fn rotation_several_h1_and_several_secrets() {
        let (old, new) = (h1("pdl_old"), h1("pdl_new"));
        for header in [
            format!("ts={TS};h1={old};h1={new}"),
            format!("ts={TS};h1={new};h1={old}"),
        ] {
            for configured in [
                &["pdl_new"][..],
                &["pdl_new", "pdl_x"],
                &["pdl_x", "pdl_old"],
            ] {
                assert_eq!(
                    check(&header, BODY, configured, at(TS)),
                    Ok(()),
                    "{header} {configured:?}"
                );
            }
            assert_eq!(
                check(&header, BODY, &["pdl_x"], at(TS)),
                Err(VerifyError::SignatureMismatch)
            );
        }
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let header = format!("ts={TS};h2=whatever;h1={}", h1(SECRET));
        assert_eq!(check(&header, BODY, &[SECRET], at(TS)), Ok(()));
        let header = format!("ts={TS};h2={}", h1(SECRET));
        assert_eq!(
            check(&header, BODY, &[SECRET], at(TS)),
            Err(VerifyError::MissingSignature { header: HEADER })
        );
    }

    #[test]
    fn five_second_tolerance_both_ways() {
        let header = sign::paddle_header(SECRET, TS as i64, BODY);
        assert_eq!(check(&header, BODY, &[SECRET], at(TS + 5)), Ok(()));
        assert_eq!(check(&header, BODY, &[SECRET], at(TS - 5)), Ok(()));
        assert_eq!(
            check(&header, BODY, &[SECRET], at(TS + 6)),
            Err(VerifyError::TimestampTooOld)
        );
        assert_eq!(
            check(&header, BODY, &[SECRET], at(TS - 6)),
            Err(VerifyError::TimestampInFuture)
        );
    }

    #[test]
    fn one_changed_body_byte_is_refused() {
        let header = sign::paddle_header(SECRET, TS as i64, BODY);
        for i in 0..BODY.len() {
            let mut body = BODY.to_vec();
            body[i] = body[i].wrapping_add(1);
            assert_eq!(
                check(&header, &body, &[SECRET], at(TS)),
                Err(VerifyError::SignatureMismatch)
            );
        }
    }

    #[test]
    fn missing_duplicated_and_malformed_headers() {
        let none = verify(
            &headers([]),
            BODY,
            &[Secret::new(SECRET)],
            DEFAULT_TOLERANCE,
            at(TS),
        );
        assert_eq!(none, Err(VerifyError::MissingSignature { header: HEADER }));
        let header = sign::paddle_header(SECRET, TS as i64, BODY);
        let twice = headers([
            (HEADER, header.as_str()),
            ("Paddle-Signature", header.as_str()),
        ]);
        assert_eq!(
            verify(
                &twice,
                BODY,
                &[Secret::new(SECRET)],
                DEFAULT_TOLERANCE,
                at(TS)
            ),
            Err(VerifyError::DuplicateHeader { header: HEADER })
        );
        let good = h1(SECRET);
        let cases = [
            ("", "malformed_signature"),
            ("nonsense", "malformed_signature"),
            (&format!("h1={good}"), "malformed_signature"),
            // Stripe's separator is not Paddle's.
            (&format!("ts={TS},h1={good}"), "malformed_header"),
            (&format!("ts={TS};h1=xyz"), "malformed_signature"),
            (
                &format!("ts={TS};h1=g{}", &good[1..]),
                "malformed_signature",
            ),
            (&format!("ts=soon;h1={good}"), "malformed_header"),
            (&format!("ts={TS};ts={TS};h1={good}"), "malformed_signature"),
        ];
        for (header, code) in cases {
            let result = check(header, BODY, &[SECRET], at(TS));
            assert_eq!(result.map_err(|e| e.code()), Err(code), "{header:?}");
        }
    }

    #[test]
    fn sign_round_trips_with_random_secrets_and_bodies() {
        let mut rng = rand::rng();
        for _ in 0..50 {
            let secret = format!("pdl_ntfset_{}", Alphanumeric.sample_string(&mut rng, 40));
            let mut body = vec![0u8; rng.random_range(0..4096)];
            rng.fill_bytes(&mut body);
            let ts = rng.random_range(1_000_000_000..4_000_000_000u64);
            let header = sign::paddle_header(&secret, ts as i64, &body);
            assert_eq!(check(&header, &body, &[&secret], at(ts)), Ok(()));
            assert_eq!(
                check(&header, &body, &[SECRET], at(ts)),
                Err(VerifyError::SignatureMismatch)
            );
        }
    }

    #[test]
    fn errors_never_show_the_secret() {
        let header = sign::paddle_header(SECRET, TS as i64, BODY);
        for result in [
            check(&header, b"other", &[SECRET], at(TS)),
            check(&header, BODY, &[SECRET], at(TS + 60)),
            check(SECRET, BODY, &[SECRET], at(TS)),
        ] {
            let error = result.expect_err("refused");
            assert_no_secret(&error, SECRET);
            assert_no_secret(&error, &h1(SECRET));
        }
    }
}
