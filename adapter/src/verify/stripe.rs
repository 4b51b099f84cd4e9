//! Stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`.
//!
//! Each `v1` is the hex HMAC-SHA256 of `"{t}.{raw body}"`, keyed with the
//! whole `whsec_…` string as bytes (not base64-decoded). While a secret is
//! being rolled Stripe sends one `v1` per active secret, so every `v1` is
//! tried against every configured secret. `v0` (a test-mode scheme) and
//! unknown schemes are ignored, so a header with only `v0` never verifies.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::{HexHmacScheme, VerifyError};
use crate::secret::Secret;

/// The signature header (lower case, as `http` stores names).
pub const HEADER: &str = "stripe-signature";

/// Stripe's default tolerance between the signed timestamp and now.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

const SCHEME: HexHmacScheme = HexHmacScheme {
    header: HEADER,
    item_separator: ',',
    timestamp_key: "t",
    signature_key: "v1",
    message_separator: b".",
};

/// Verifies a Stripe webhook `body` (the exact bytes received) against its
/// `Stripe-Signature` header, as of `now`.
///
/// Accepts if any `v1` signature matches any of `secrets` and `t` is within
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

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = b"{\"id\":\"evt_1\",\"object\":\"event\"}";
    const T: u64 = 1_700_000_000;

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|s| Secret::new(*s)).collect()
    }

    fn check(
        header: &str,
        body: &[u8],
        secret_values: &[&str],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        verify(
            &headers([(HEADER, header)]),
            body,
            &secrets(secret_values),
            DEFAULT_TOLERANCE,
            now,
        )
    }

    /// A valid `v1=` for `BODY` at `T` under `secret`.
    fn v1(secret: &str) -> String {
        let header = sign::stripe_header(secret, T as i64, BODY);
        header
            .split_once(",v1=")
            .map(|(_, sig)| sig.to_owned())
            .expect("a v1 signature")
    }

    #[test]
    fn vectors_verify_as_of_their_time() {
        for vector in vectors("stripe") {
            let configured: Vec<&str> = match vector.get("secrets") {
                Some(list) => list
                    .as_array()
                    .expect("a list")
                    .iter()
                    .map(|s| s.as_str().expect("a secret"))
                    .collect(),
                None => vec![text(&vector, "secret")],
            };
            let result = check(
                text(&vector, "header"),
                text(&vector, "payload").as_bytes(),
                &configured,
                time(&vector, "timestamp"),
            );
            assert_eq!(
                result.is_ok(),
                vector["valid"] == true,
                "{}: {result:?}",
                vector["name"]
            );
        }
    }

    #[test]
    fn v0_only_is_a_missing_signature() {
        let header = format!("t={T},v0={}", v1(SECRET));
        assert_eq!(
            check(&header, BODY, &[SECRET], at(T)),
            Err(VerifyError::MissingSignature { header: HEADER })
        );
    }

    #[test]
    fn v0_and_unknown_schemes_are_ignored() {
        let good = v1(SECRET);
        let header = format!("t={T},v0={good},v9=not-hex-at-all,v1={good},x=");
        assert_eq!(check(&header, BODY, &[SECRET], at(T)), Ok(()));
    }

    #[test]
    fn rotation_any_signature_any_secret() {
        let old = v1("whsec_old");
        let new = v1("whsec_new");
        let unrelated = v1("whsec_unrelated");
        for header in [
            format!("t={T},v1={old},v1={new}"),
            format!("t={T},v1={new},v1={old}"),
            format!("t={T},v1={unrelated},v1={unrelated},v1={new}"),
        ] {
            for configured in [
                &["whsec_new"][..],
                &["whsec_new", "whsec_other"],
                &["whsec_other", "whsec_third", "whsec_new"],
            ] {
                assert_eq!(
                    check(&header, BODY, configured, at(T)),
                    Ok(()),
                    "{header} {configured:?}"
                );
            }
        }
        let header = format!("t={T},v1={unrelated},v1={old}");
        assert_eq!(
            check(&header, BODY, &["whsec_new", "whsec_other"], at(T)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn at_most_sixteen_signatures() {
        let (other, good) = (v1("whsec_other"), v1(SECRET));
        let header = |others: usize| {
            let mut header = format!("t={T}");
            for _ in 0..others {
                header.push_str(&format!(",v1={other}"));
            }
            header + &format!(",v1={good}")
        };
        assert_eq!(check(&header(15), BODY, &[SECRET], at(T)), Ok(()));
        assert_eq!(
            check(&header(16), BODY, &[SECRET], at(T)).map_err(|e| e.code()),
            Err("malformed_signature")
        );
    }

    #[test]
    fn tolerance_refuses_too_old_and_too_far_in_the_future() {
        let header = sign::stripe_header(SECRET, T as i64, BODY);
        assert_eq!(check(&header, BODY, &[SECRET], at(T + 300)), Ok(()));
        assert_eq!(check(&header, BODY, &[SECRET], at(T - 300)), Ok(()));
        assert_eq!(
            check(&header, BODY, &[SECRET], at(T + 301)),
            Err(VerifyError::TimestampTooOld)
        );
        assert_eq!(
            check(&header, BODY, &[SECRET], at(T - 301)),
            Err(VerifyError::TimestampInFuture)
        );
    }

    #[test]
    fn any_changed_body_byte_is_refused() {
        let header = sign::stripe_header(SECRET, T as i64, BODY);
        for i in 0..BODY.len() {
            let mut body = BODY.to_vec();
            body[i] ^= 0x01;
            assert_eq!(
                check(&header, &body, &[SECRET], at(T)),
                Err(VerifyError::SignatureMismatch)
            );
        }
        assert_eq!(
            check(&header, &BODY[1..], &[SECRET], at(T)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn wrong_or_no_secret_is_a_mismatch() {
        let header = sign::stripe_header(SECRET, T as i64, BODY);
        assert_eq!(
            check(&header, BODY, &["whsec_test_secreT"], at(T)),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            check(&header, BODY, &[], at(T)),
            Err(VerifyError::SignatureMismatch)
        );
        // The key is the whole string, prefix included.
        assert_eq!(
            check(&header, BODY, &["test_secret"], at(T)),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn missing_and_duplicated_header() {
        let none = verify(
            &headers([]),
            BODY,
            &secrets(&[SECRET]),
            DEFAULT_TOLERANCE,
            at(T),
        );
        assert_eq!(none, Err(VerifyError::MissingSignature { header: HEADER }));
        let header = sign::stripe_header(SECRET, T as i64, BODY);
        let twice = headers([
            ("Stripe-Signature", header.as_str()),
            ("stripe-signature", header.as_str()),
        ]);
        assert_eq!(
            verify(&twice, BODY, &secrets(&[SECRET]), DEFAULT_TOLERANCE, at(T)),
            Err(VerifyError::DuplicateHeader { header: HEADER })
        );
    }

    #[test]
    fn malformed_headers() {
        let good = v1(SECRET);
        let cases = [
            ("", "malformed_signature"),
            ("garbage", "malformed_signature"),
            (",,,", "malformed_signature"),
            ("t=,v1=00", "malformed_signature"),
            (&format!("v1={good}"), "malformed_signature"),
            (&format!("t={T},t={T},v1={good}"), "malformed_signature"),
            (&format!("t={T},v1={}", &good[1..]), "malformed_signature"),
            (&format!("t={T},v1={}zz", &good[2..]), "malformed_signature"),
            (&format!("t={T},v1={good}00"), "malformed_signature"),
            (&format!("t=abc,v1={good}"), "malformed_header"),
            (&format!("t=-{T},v1={good}"), "malformed_header"),
            (&format!("t={T}.5,v1={good}"), "malformed_header"),
            (&format!("t={T}"), "missing_signature"),
        ];
        for (header, code) in cases {
            let result = check(header, BODY, &[SECRET], at(T));
            assert_eq!(
                result.as_ref().map_err(|e| e.code()),
                Err(code),
                "{header:?}: {result:?}"
            );
            assert_eq!(result.map_err(|e| e.http_status()), Err(400));
        }
    }

    #[test]
    fn sign_round_trips_with_random_secrets_and_bodies() {
        let mut rng = rand::rng();
        for _ in 0..50 {
            let secret = format!("whsec_{}", Alphanumeric.sample_string(&mut rng, 32));
            let mut body = vec![0u8; rng.random_range(0..2048)];
            rng.fill_bytes(&mut body);
            let t = rng.random_range(1_000_000_000..4_000_000_000u64);
            let header = sign::stripe_header(&secret, t as i64, &body);
            assert_eq!(check(&header, &body, &[&secret], at(t)), Ok(()));
            assert_eq!(
                check(&header, &body, &["whsec_other"], at(t)),
                Err(VerifyError::SignatureMismatch)
            );
        }
    }

    #[test]
    fn errors_never_show_the_secret() {
        let header = sign::stripe_header(SECRET, T as i64, BODY);
        let results = [
            check(&header, b"changed", &[SECRET], at(T)),
            check(&header, BODY, &[SECRET], at(T + 10_000)),
            check("t=1,v1=zz", BODY, &[SECRET], at(T)),
            check(SECRET, BODY, &[SECRET], at(T)),
        ];
        for result in results {
            let error = result.expect_err("refused");
            assert_no_secret(&error, SECRET);
            assert_no_secret(&error, &v1(SECRET));
        }
    }
}
