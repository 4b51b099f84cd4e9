//! What an identifier is, decided once for the adapter and the fulfilment
//! service: 1 to [`Identifier::MAX_BYTES`] bytes of UTF-8 with no control
//! character (Unicode category Cc: U+0000–U+001F, U+007F–U+009F).
//!
//! Identifiers are the strings Fulfil stores, indexes and looks up: customer
//! ids, SKUs, request ids, source names, provider event ids and the
//! references an event carries. Refusing control characters at the boundary
//! keeps SQLite and PostgreSQL alike (PostgreSQL cannot store U+0000 in text
//! at all) and keeps ids safe to print in logs. Free text (descriptions in a
//! provider's payload) is not an identifier: the payload is stored as bytes.

use std::fmt;

use crate::v1::PaymentEvent;

/// A valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);

/// Why a string is not an identifier. The message says what is wrong
/// without repeating the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierError {
    /// The empty string.
    Empty,
    /// Longer than [`Identifier::MAX_BYTES`].
    TooLong,
    /// Holds a control character (U+0000 among them).
    ControlCharacter,
}

impl fmt::Display for IdentifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentifierError::Empty => f.write_str("must not be empty"),
            IdentifierError::TooLong => {
                write!(f, "must be at most {} bytes", Identifier::MAX_BYTES)
            }
            IdentifierError::ControlCharacter => f.write_str("must not contain control characters"),
        }
    }
}

impl std::error::Error for IdentifierError {}

impl Identifier {
    /// Longest identifier, in bytes of UTF-8: room for any provider's ids
    /// (Stripe's are at most 255 characters of ASCII), small enough for
    /// every index.
    pub const MAX_BYTES: usize = 256;

    /// Parses `raw`.
    pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
        check(raw)?;
        Ok(Identifier(raw.to_owned()))
    }

    /// Parses an owned string without copying it.
    pub fn parse_owned(raw: String) -> Result<Self, IdentifierError> {
        check(&raw)?;
        Ok(Identifier(raw))
    }

    /// An optional identifier, where the empty string means "not given"
    /// (proto3 strings have no null).
    pub fn parse_optional(raw: &str) -> Result<Option<Self>, IdentifierError> {
        if raw.is_empty() {
            Ok(None)
        } else {
            Self::parse(raw).map(Some)
        }
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identifier as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

fn check(raw: &str) -> Result<(), IdentifierError> {
    if raw.is_empty() {
        Err(IdentifierError::Empty)
    } else if raw.len() > Identifier::MAX_BYTES {
        Err(IdentifierError::TooLong)
    } else if raw.chars().any(char::is_control) {
        Err(IdentifierError::ControlCharacter)
    } else {
        Ok(())
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Identifier {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Identifier> for String {
    fn from(id: Identifier) -> Self {
        id.0
    }
}

/// One identifier of a payment event that does not parse: the field, as a
/// path relative to the event (`order_ref`, `entitlements[0].entitlement_id`),
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    /// Where, relative to the event.
    pub field: String,
    /// What is wrong.
    pub problem: IdentifierError,
}

impl PaymentEvent {
    /// Every identifier of the event that is not valid: `source`,
    /// `provider` and `event_id` are required; `event_type`, the references
    /// and entitlement ids may be empty (not given) and must otherwise be
    /// identifiers. The adapter checks its own events with this before
    /// sending them, the fulfilment service every event it receives.
    pub fn invalid_identifiers(&self) -> Vec<InvalidField> {
        let required = [
            ("source", &self.source),
            ("provider", &self.provider),
            ("event_id", &self.event_id),
        ];
        let optional = [
            ("event_type", &self.event_type),
            ("order_ref", &self.order_ref),
            ("payment_ref", &self.payment_ref),
            ("refund_ref", &self.refund_ref),
            ("customer_ref", &self.customer_ref),
            ("product_ref", &self.product_ref),
        ];
        let required = required
            .into_iter()
            .map(|(field, value)| (field.to_owned(), Identifier::parse(value).map(drop)));
        let optional = optional.into_iter().map(|(field, value)| {
            (
                field.to_owned(),
                Identifier::parse_optional(value).map(drop),
            )
        });
        let grants = self.entitlements.iter().enumerate().map(|(i, grant)| {
            (
                format!("entitlements[{i}].entitlement_id"),
                Identifier::parse(&grant.entitlement_id).map(drop),
            )
        });
        required
            .chain(optional)
            .chain(grants)
            .filter_map(|(field, parsed)| {
                parsed.err().map(|problem| InvalidField { field, problem })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::Entitlement;

    #[test]
    fn the_rule() {
        for good in [
            "cus_1",
            "a",
            "évènement 42",
            "$RCAnonymousID:8f1c",
            "ch_1#cumulative",
        ] {
            assert_eq!(
                Identifier::parse(good).map(|id| id.into_string()),
                Ok(good.to_owned())
            );
        }
        assert_eq!(
            Identifier::parse(&"x".repeat(Identifier::MAX_BYTES)).map(|id| id.as_str().len()),
            Ok(Identifier::MAX_BYTES)
        );
        assert_eq!(
            Identifier::parse(&"x".repeat(Identifier::MAX_BYTES + 1)),
            Err(IdentifierError::TooLong)
        );
        // The bound is in bytes: 129 two-byte characters are 258 bytes.
        assert_eq!(
            Identifier::parse(&"é".repeat(129)),
            Err(IdentifierError::TooLong)
        );
        assert_eq!(Identifier::parse(""), Err(IdentifierError::Empty));
        for bad in [
            "cus\0x", "\0", "a\nb", "tab\t", "\u{7f}", "\u{85}", "\u{9f}",
        ] {
            assert_eq!(
                Identifier::parse(bad),
                Err(IdentifierError::ControlCharacter),
                "{bad:?}"
            );
        }
        assert_eq!(Identifier::parse_optional(""), Ok(None));
        assert_eq!(
            Identifier::parse_optional("a\0"),
            Err(IdentifierError::ControlCharacter)
        );
    }

    #[test]
    fn messages_do_not_echo_the_input() {
        for problem in [
            IdentifierError::Empty,
            IdentifierError::TooLong,
            IdentifierError::ControlCharacter,
        ] {
            assert!(problem.to_string().starts_with("must "), "{problem}");
        }
    }

    fn event() -> PaymentEvent {
        PaymentEvent {
            source: "stripe".into(),
            provider: "stripe".into(),
            event_id: "evt_1".into(),
            ..PaymentEvent::default()
        }
    }

    #[test]
    fn an_event_names_each_bad_identifier() {
        assert_eq!(event().invalid_identifiers(), []);
        let bad = PaymentEvent {
            event_id: String::new(),
            order_ref: "ord\0".into(),
            payment_ref: "p".repeat(300),
            entitlements: vec![
                Entitlement {
                    entitlement_id: "pro".into(),
                    expire_time: None,
                },
                Entitlement {
                    entitlement_id: String::new(),
                    expire_time: None,
                },
            ],
            ..event()
        };
        let found: Vec<(String, IdentifierError)> = bad
            .invalid_identifiers()
            .into_iter()
            .map(|f| (f.field, f.problem))
            .collect();
        assert_eq!(
            found,
            [
                ("event_id".to_owned(), IdentifierError::Empty),
                ("order_ref".to_owned(), IdentifierError::ControlCharacter),
                ("payment_ref".to_owned(), IdentifierError::TooLong),
                (
                    "entitlements[1].entitlement_id".to_owned(),
                    IdentifierError::Empty
                ),
            ]
        );
    }
}
