//! The payment providers Fulfil understands: one list for the adapter's
//! sources file (`kind = "stripe"`), its normalisation and the `provider`
//! metrics label.
//!
//! On the wire `PaymentEvent.provider` stays a string, [`Provider::as_str`];
//! a name that [`Provider::parse`] does not know is not an error there, only
//! something callers cannot act on.

use std::fmt;

/// A payment provider: its signature scheme and payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Stripe events (`evt_…`, `Stripe-Signature`).
    Stripe,
    /// PayPal webhook events (`WH-…`, certificate-signed), Orders and
    /// Payments v2 resources.
    Paypal,
    /// RevenueCat webhooks (`{"api_version": "1.0", "event": {…}}`,
    /// Authorization header).
    Revenuecat,
    /// Glassfy webhooks (Authorization header).
    Glassfy,
    /// Any Standard Webhooks sender (v1 HMAC, v1a ed25519), read through a
    /// configured mapping.
    Standard,
    /// Paddle Billing (`Paddle-Signature`), read through a mapping (Paddle's
    /// own unless one is configured).
    Paddle,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 6] = [
        Provider::Stripe,
        Provider::Paypal,
        Provider::Revenuecat,
        Provider::Glassfy,
        Provider::Standard,
        Provider::Paddle,
    ];

    /// The name written in configuration, in `PaymentEvent.provider` and in
    /// metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Paypal => "paypal",
            Provider::Revenuecat => "revenuecat",
            Provider::Glassfy => "glassfy",
            Provider::Standard => "standard",
            Provider::Paddle => "paddle",
        }
    }

    /// The provider named `name` exactly as [`Provider::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: widths such as `{:<10}` apply.
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Provider;

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.as_str()), Some(provider));
            assert_eq!(provider.to_string(), provider.as_str());
        }
        assert_eq!(format!("{:<8}|", Provider::Paddle), "paddle  |");
        assert_eq!(Provider::parse("Stripe"), None);
        assert_eq!(Provider::parse(""), None);
    }

    #[test]
    fn serde_uses_the_same_names() {
        for provider in Provider::ALL {
            let parsed: Provider =
                serde_json::from_str(&format!("\"{}\"", provider.as_str())).expect("known name");
            assert_eq!(parsed, provider);
        }
        assert!(serde_json::from_str::<Provider>("\"Stripe\"").is_err());
    }
}
