//! Cursors: opaque to clients, a feed position inside.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const PREFIX: &str = "f1:";

/// Encodes a feed position.
pub fn encode(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}{seq}"))
}

/// Decodes a cursor this service issued.
pub fn decode(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(PREFIX)?
        .parse()
        .ok()
        .filter(|seq| *seq >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        for seq in [0, 1, 42, i64::MAX] {
            assert_eq!(decode(&encode(seq)), Some(seq));
        }
        for bad in [
            "",
            "42",
            "!!",
            &URL_SAFE_NO_PAD.encode("f1:-3"),
            &URL_SAFE_NO_PAD.encode("x:1"),
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
