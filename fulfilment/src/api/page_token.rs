//! Opaque page tokens: the keyset position plus a fingerprint of the
//! listing's filter ("scope"), so a token cannot be replayed against a
//! different listing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const PREFIX: &str = "p1";

/// Encodes the position after which the next page starts. `scope` names
/// the listing and its filters, canonically (same filters, same scope).
pub fn encode(after: i64, scope: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}:{after}:{}", fingerprint(scope)))
}

/// Decodes a token from a previous response for the same scope.
pub fn decode(token: &str, scope: &str) -> Result<i64, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| "is not a token this service issued")?;
    let text = String::from_utf8(bytes).map_err(|_| "is not a token this service issued")?;
    let mut parts = text.splitn(3, ':');
    let (Some(PREFIX), Some(after), Some(fp)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("is not a token this service issued");
    };
    let after: i64 = after
        .parse()
        .map_err(|_| "is not a token this service issued")?;
    if fp != fingerprint(scope) {
        return Err("was issued for a request with different filters");
    }
    Ok(after)
}

fn fingerprint(scope: &str) -> String {
    Sha256::digest(scope.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_for_the_same_scope() {
        assert_eq!(
            decode(&encode(42, "orders|cus_1|PAID"), "orders|cus_1|PAID"),
            Ok(42)
        );
    }

    #[test]
    fn refuses_other_scopes_and_garbage() {
        let token = encode(7, "orders||");
        assert!(decode(&token, "orders|cus_2|").is_err());
        for bad in ["", "!!!", "cDE6eDp5", &URL_SAFE_NO_PAD.encode("p1:12")] {
            assert!(decode(bad, "orders||").is_err(), "{bad:?}");
        }
    }
}
