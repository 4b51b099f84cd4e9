//! Paging of list calls (AIP-158): the page size, and opaque page tokens
//! holding the keyset position plus a fingerprint of the listing's filter
//! ("scope"), so a token cannot be replayed against a different listing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::order::FieldViolation;

const PREFIX: &str = "p1";

/// Items listed per page when the client does not say.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Most items listed per page; larger requests are clamped.
pub const MAX_PAGE_SIZE: u64 = 500;

/// The paging of one list request, parsed: how many items, after which
/// position, within which listing.
#[derive(Debug, Clone)]
pub struct Paging {
    /// Items to return.
    pub size: u64,
    /// Keyset position to continue after; `None` for the first page.
    pub after: Option<i64>,
    scope: String,
}

impl Paging {
    /// Reads `page_size` (0 means the default, above the maximum is
    /// clamped) and `page_token` (empty for the first page) of a request
    /// whose filters `scope` names canonically; problems become violations.
    pub fn parse(
        page_size: i32,
        page_token: &str,
        scope: String,
        violations: &mut Vec<FieldViolation>,
    ) -> Self {
        let size = match u64::try_from(page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) => n.min(MAX_PAGE_SIZE),
            Err(_) => {
                violations.push(FieldViolation::new("page_size", "must not be negative"));
                DEFAULT_PAGE_SIZE
            }
        };
        let after = if page_token.is_empty() {
            None
        } else {
            decode(page_token, &scope)
                .map_err(|why| violations.push(FieldViolation::new("page_token", why)))
                .ok()
        };
        Paging { size, after, scope }
    }

    /// The `next_page_token` of the response: empty on the last page.
    pub fn next_token(&self, next_after: Option<i64>) -> String {
        next_after
            .map(|after| encode(after, &self.scope))
            .unwrap_or_default()
    }
}

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
    fn page_sizes_default_and_clamp() {
        let mut violations = Vec::new();
        let size = |n, v: &mut Vec<FieldViolation>| Paging::parse(n, "", "s".into(), v).size;
        assert_eq!(size(0, &mut violations), DEFAULT_PAGE_SIZE);
        assert_eq!(size(7, &mut violations), 7);
        assert_eq!(size(i32::MAX, &mut violations), MAX_PAGE_SIZE);
        assert!(violations.is_empty());
        assert_eq!(size(-1, &mut violations), DEFAULT_PAGE_SIZE);
        assert_eq!(violations.len(), 1);
    }

    #[test]
    fn next_tokens_continue_the_same_listing() {
        let mut violations = Vec::new();
        let first = Paging::parse(10, "", "orders|cus_1|".into(), &mut violations);
        assert_eq!(first.after, None);
        assert_eq!(first.next_token(None), "");
        let token = first.next_token(Some(42));
        let second = Paging::parse(10, &token, "orders|cus_1|".into(), &mut violations);
        assert_eq!(second.after, Some(42));
        let other = Paging::parse(10, &token, "orders|cus_2|".into(), &mut violations);
        assert_eq!(other.after, None);
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["page_token"]);
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
