//! A configured secret (webhook signing secret, bearer token, public key).

use std::fmt;

/// A secret value. `Debug` and `Display` never show it, so it cannot leak
/// into logs or error messages by accident; [`Secret::expose`] is the one,
/// greppable, way to read it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for verification code only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let secret = Secret::new("whsec_top");
        assert!(!format!("{secret:?} {secret}").contains("whsec_top"));
        assert_eq!(secret.expose(), "whsec_top");
    }
}
