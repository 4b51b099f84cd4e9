//! RevenueCat and Glassfy: no signature. The provider sends a configured
//! `Authorization` header value verbatim; we compare it in constant time
//! with each configured token.

use http::HeaderMap;
use rsa::sha2::Digest as _;
use subtle::{Choice, ConstantTimeEq as _};

use super::{Sha256, VerifyError, optional_header};
use crate::secret::Secret;

/// The header carrying the token (lower case, as `http` stores names).
pub const HEADER: &str = "authorization";

/// Accepts the request if its `Authorization` value equals one of `tokens`.
///
/// Both sides are hashed with SHA-256 before the constant-time comparison,
/// so neither the content nor the length of a token leaks through timing.
/// Every token is compared (no early exit). Empty configured tokens are
/// ignored, so an empty header can never match a blank configuration.
/// Missing, unreadable or unknown values are [`VerifyError::Unauthorized`]; a
/// header sent twice is [`VerifyError::DuplicateHeader`].
pub fn verify(headers: &HeaderMap, tokens: &[Secret]) -> Result<(), VerifyError> {
    let presented = match optional_header(headers, HEADER) {
        Ok(Some(value)) => value,
        Ok(None) | Err(VerifyError::MalformedHeader { .. }) => {
            return Err(VerifyError::Unauthorized);
        }
        Err(other) => return Err(other),
    };
    let presented = Sha256::digest(presented.as_bytes());
    let mut matched = Choice::from(0);
    for token in tokens.iter().filter(|token| !token.expose().is_empty()) {
        matched |= Sha256::digest(token.expose().as_bytes())
            .as_slice()
            .ct_eq(presented.as_slice());
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use rand::distr::{Alphanumeric, SampleString};

    use super::*;
    use crate::verify::test_vectors::{assert_no_secret, headers};

    const TOKEN: &str = "Bearer rc_webhook_7d1f0b9c";

    fn check(value: Option<&str>, tokens: &[&str]) -> Result<(), VerifyError> {
        let tokens: Vec<Secret> = tokens.iter().map(|t| Secret::new(*t)).collect();
        verify(&headers(value.map(|v| (HEADER, v))), &tokens)
    }

    #[test]
    fn the_configured_value_is_accepted_verbatim() {
        assert_eq!(check(Some(TOKEN), &[TOKEN]), Ok(()));
        // Verbatim: no scheme parsing, no trimming, case matters.
        for other in [
            "rc_webhook_7d1f0b9c",
            "bearer rc_webhook_7d1f0b9c",
            "Bearer rc_webhook_7d1f0b9",
            "Bearer rc_webhook_7d1f0b9cc",
        ] {
            assert_eq!(
                check(Some(other), &[TOKEN]),
                Err(VerifyError::Unauthorized),
                "{other}"
            );
        }
    }

    #[test]
    fn rotation_any_configured_token() {
        assert_eq!(check(Some(TOKEN), &["old", TOKEN]), Ok(()));
        assert_eq!(check(Some(TOKEN), &[TOKEN, "new"]), Ok(()));
        assert_eq!(check(Some("new"), &[TOKEN, "new"]), Ok(()));
        assert_eq!(
            check(Some("third"), &[TOKEN, "new"]),
            Err(VerifyError::Unauthorized)
        );
    }

    #[test]
    fn missing_empty_or_unconfigured_is_unauthorized() {
        let error = check(None, &[TOKEN]).expect_err("refused");
        assert_eq!((error.code(), error.http_status()), ("unauthorized", 401));
        assert_eq!(check(Some(TOKEN), &[]), Err(VerifyError::Unauthorized));
        // A blank configuration never lets an empty header in.
        assert_eq!(check(Some(""), &[""]), Err(VerifyError::Unauthorized));
        assert_eq!(check(Some(""), &[TOKEN]), Err(VerifyError::Unauthorized));
    }

    #[test]
    fn non_ascii_is_unauthorized_and_duplicates_are_refused() {
        let mut map = HeaderMap::new();
        map.insert(
            HEADER,
            HeaderValue::from_bytes(b"Bearer \xff").expect("header bytes"),
        );
        assert_eq!(
            verify(&map, &[Secret::new(TOKEN)]),
            Err(VerifyError::Unauthorized)
        );
        let twice = headers([(HEADER, TOKEN), ("Authorization", TOKEN)]);
        assert_eq!(
            verify(&twice, &[Secret::new(TOKEN)]),
            Err(VerifyError::DuplicateHeader { header: HEADER })
        );
    }

    #[test]
    fn random_tokens() {
        let mut rng = rand::rng();
        for len in [1, 16, 64, 300] {
            let token = Alphanumeric.sample_string(&mut rng, len);
            assert_eq!(check(Some(&token), &[&token]), Ok(()));
            assert_eq!(
                check(Some(&token), &[&format!("{token}x")]),
                Err(VerifyError::Unauthorized)
            );
        }
    }

    #[test]
    fn errors_never_show_the_token() {
        let error = check(Some("Bearer wrong"), &[TOKEN]).expect_err("refused");
        assert_no_secret(&error, TOKEN);
        assert_no_secret(&error, "wrong");
    }
}
