//! Turning a client's CreateOrder input into a valid [`NewOrder`], or into the
//! list of everything wrong with it (all violations at once, not the first).

use std::collections::BTreeMap;

use fulfil_proto::Identifier;
use sha2::{Digest, Sha256};

use super::{Currency, LineItem, OrderId};

/// Most line items one order may have.
pub const MAX_LINE_ITEMS: usize = 100;
const MAX_QUANTITY: i64 = 1_000_000;
const MAX_METADATA_KEYS: usize = 50;
const MAX_METADATA_KEY_LEN: usize = 40;
const MAX_METADATA_VALUE_LEN: usize = 500;

/// One problem with one field of a request, as google.rpc.BadRequest reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, e.g. `line_items[2].quantity`.
    pub field: String,
    /// What is wrong, for a human.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// A line item as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineItemDraft {
    /// Product identifier.
    pub sku: String,
    /// Units.
    pub quantity: i64,
    /// Unit price, minor units.
    pub unit_amount: i64,
}

/// A CreateOrder request as the client sent it, not yet validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OrderDraft {
    /// Client-chosen id, or empty.
    pub order_id: String,
    /// Customer placing the order.
    pub customer_id: String,
    /// Items.
    pub line_items: Vec<LineItemDraft>,
    /// ISO 4217 code in any case.
    pub currency: String,
    /// Client key/value pairs.
    pub metadata: BTreeMap<String, String>,
    /// Idempotency key, or empty.
    #[serde(skip)]
    pub request_id: String,
}

/// A validated order, ready to be inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The id the client chose; `None` to generate one.
    pub order_id: Option<OrderId>,
    /// Customer placing the order.
    pub customer_id: String,
    /// Items, as given.
    pub line_items: Vec<LineItem>,
    /// Normalised currency.
    pub currency: Currency,
    /// Sum of quantity * unit_amount.
    pub amount_total: i64,
    /// Client key/value pairs.
    pub metadata: BTreeMap<String, String>,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// Fingerprint of the request content, to tell a retry from a reuse of
    /// the same `request_id` for something else.
    pub request_hash: String,
}

fn text_problem(value: &str, max: usize) -> Option<String> {
    if value.is_empty() {
        Some("must not be empty".into())
    } else if value.chars().count() > max {
        Some(format!("must be at most {max} characters"))
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else {
        None
    }
}

impl OrderDraft {
    /// Validates every field and computes the total.
    pub fn validate(self) -> Result<NewOrder, Vec<FieldViolation>> {
        let mut violations = Vec::new();

        let order_id = if self.order_id.is_empty() {
            None
        } else {
            match OrderId::parse(&self.order_id) {
                Ok(id) => Some(id),
                Err(why) => {
                    violations.push(FieldViolation::new("order_id", why));
                    None
                }
            }
        };

        if let Err(problem) = Identifier::parse(&self.customer_id) {
            violations.push(FieldViolation::new("customer_id", problem.to_string()));
        }

        let currency = Currency::parse(&self.currency);
        if currency.is_none() {
            violations.push(FieldViolation::new(
                "currency",
                format!(
                    "{:?} is not an ISO 4217 currency code",
                    truncate(&self.currency)
                ),
            ));
        }

        if self.line_items.is_empty() {
            violations.push(FieldViolation::new(
                "line_items",
                "at least one line item is required",
            ));
        } else if self.line_items.len() > MAX_LINE_ITEMS {
            violations.push(FieldViolation::new(
                "line_items",
                format!("at most {MAX_LINE_ITEMS} line items are allowed"),
            ));
        }
        let mut total: Option<i64> = Some(0);
        for (i, item) in self.line_items.iter().enumerate() {
            if let Err(problem) = Identifier::parse(&item.sku) {
                violations.push(FieldViolation::new(
                    format!("line_items[{i}].sku"),
                    problem.to_string(),
                ));
            }
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                violations.push(FieldViolation::new(
                    format!("line_items[{i}].quantity"),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                ));
            }
            if item.unit_amount < 0 {
                violations.push(FieldViolation::new(
                    format!("line_items[{i}].unit_amount"),
                    "must not be negative",
                ));
            }
            total = total.and_then(|t| item.quantity.checked_mul(item.unit_amount)?.checked_add(t));
        }
        if total.is_none() {
            violations.push(FieldViolation::new(
                "line_items",
                "the order total overflows a 64-bit amount",
            ));
        }

        if self.metadata.len() > MAX_METADATA_KEYS {
            violations.push(FieldViolation::new(
                "metadata",
                format!("at most {MAX_METADATA_KEYS} keys are allowed"),
            ));
        }
        for (key, value) in &self.metadata {
            if let Some(problem) = text_problem(key, MAX_METADATA_KEY_LEN) {
                violations.push(FieldViolation::new(
                    "metadata",
                    format!("key {:?} {problem}", truncate(key)),
                ));
            }
            if value.chars().count() > MAX_METADATA_VALUE_LEN {
                violations.push(FieldViolation::new(
                    format!("metadata[{}]", truncate(key)),
                    format!("must be at most {MAX_METADATA_VALUE_LEN} characters"),
                ));
            }
        }

        let request_id = match Identifier::parse_optional(&self.request_id) {
            Ok(id) => id.map(Identifier::into_string),
            Err(problem) => {
                violations.push(FieldViolation::new("request_id", problem.to_string()));
                None
            }
        };

        match (currency, total) {
            (Some(currency), Some(amount_total)) if violations.is_empty() => {
                let request_hash = self.fingerprint(currency);
                Ok(NewOrder {
                    order_id,
                    customer_id: self.customer_id,
                    line_items: self
                        .line_items
                        .into_iter()
                        .map(|d| LineItem {
                            sku: d.sku,
                            quantity: d.quantity,
                            unit_amount: d.unit_amount,
                        })
                        .collect(),
                    currency,
                    amount_total,
                    metadata: self.metadata,
                    request_id,
                    request_hash,
                })
            }
            _ => Err(violations),
        }
    }

    /// SHA-256 over the canonical JSON of the content (currency normalised,
    /// metadata sorted), excluding the request id itself.
    fn fingerprint(&self, currency: Currency) -> String {
        let canonical = serde_json::json!({
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "line_items": self.line_items,
            "currency": currency.as_str(),
            "metadata": self.metadata,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Echo at most a short prefix of client input in error messages.
fn truncate(value: &str) -> String {
    value.chars().take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> OrderDraft {
        OrderDraft {
            order_id: String::new(),
            customer_id: "cus_1".into(),
            line_items: vec![
                LineItemDraft {
                    sku: "tee".into(),
                    quantity: 2,
                    unit_amount: 1500,
                },
                LineItemDraft {
                    sku: "mug".into(),
                    quantity: 1,
                    unit_amount: 900,
                },
            ],
            currency: "eur".into(),
            metadata: BTreeMap::from([("channel".into(), "ios".into())]),
            request_id: String::new(),
        }
    }

    fn fields(draft: OrderDraft) -> Vec<String> {
        draft
            .validate()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn valid_draft_totals_and_normalises() -> Result<(), Vec<FieldViolation>> {
        let order = draft().validate()?;
        assert_eq!(order.amount_total, 3900);
        assert_eq!(order.currency.as_str(), "EUR");
        assert_eq!(order.order_id, None);
        assert_eq!(order.request_hash.len(), 64);
        Ok(())
    }

    #[test]
    fn fingerprint_ignores_currency_case_but_not_content() -> Result<(), Vec<FieldViolation>> {
        let a = draft().validate()?;
        let b = OrderDraft {
            currency: "EUR".into(),
            ..draft()
        }
        .validate()?;
        assert_eq!(a.request_hash, b.request_hash);
        let mut other = draft();
        other.line_items[0].quantity = 3;
        assert_ne!(a.request_hash, other.validate()?.request_hash);
        Ok(())
    }

    #[test]
    fn reports_every_violation_at_once() {
        let bad = OrderDraft {
            order_id: "no spaces".into(),
            customer_id: String::new(),
            line_items: vec![LineItemDraft {
                sku: String::new(),
                quantity: 0,
                unit_amount: -1,
            }],
            currency: "EURO".into(),
            metadata: BTreeMap::new(),
            request_id: String::new(),
        };
        assert_eq!(
            fields(bad),
            [
                "order_id",
                "customer_id",
                "currency",
                "line_items[0].sku",
                "line_items[0].quantity",
                "line_items[0].unit_amount"
            ]
        );
    }

    #[test]
    fn empty_and_too_many_line_items() {
        assert_eq!(
            fields(OrderDraft {
                line_items: vec![],
                ..draft()
            }),
            ["line_items"]
        );
        let many = vec![
            LineItemDraft {
                sku: "x".into(),
                quantity: 1,
                unit_amount: 1
            };
            MAX_LINE_ITEMS + 1
        ];
        assert_eq!(
            fields(OrderDraft {
                line_items: many,
                ..draft()
            }),
            ["line_items"]
        );
    }

    #[test]
    fn total_overflow_is_refused() {
        let items = vec![LineItemDraft {
            sku: "a".into(),
            quantity: MAX_QUANTITY,
            unit_amount: i64::MAX / 2,
        }];
        assert_eq!(
            fields(OrderDraft {
                line_items: items,
                ..draft()
            }),
            ["line_items"]
        );
        let items = vec![
            LineItemDraft {
                sku: "a".into(),
                quantity: 1,
                unit_amount: i64::MAX,
            },
            LineItemDraft {
                sku: "b".into(),
                quantity: 1,
                unit_amount: 1,
            },
        ];
        assert_eq!(
            fields(OrderDraft {
                line_items: items,
                ..draft()
            }),
            ["line_items"]
        );
    }

    #[test]
    fn oversized_metadata_is_refused() {
        let many: BTreeMap<_, _> = (0..=MAX_METADATA_KEYS)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert_eq!(
            fields(OrderDraft {
                metadata: many,
                ..draft()
            }),
            ["metadata"]
        );
        let long_value = BTreeMap::from([("k".into(), "v".repeat(MAX_METADATA_VALUE_LEN + 1))]);
        assert_eq!(
            fields(OrderDraft {
                metadata: long_value,
                ..draft()
            }),
            ["metadata[k]"]
        );
        let long_key = BTreeMap::from([("k".repeat(MAX_METADATA_KEY_LEN + 1), "v".into())]);
        assert_eq!(
            fields(OrderDraft {
                metadata: long_key,
                ..draft()
            }),
            ["metadata"]
        );
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(
            fields(OrderDraft {
                customer_id: "a\nb".into(),
                ..draft()
            }),
            ["customer_id"]
        );
    }

    #[test]
    fn identifiers_follow_the_shared_rule() {
        let mut bad = draft();
        bad.customer_id = "cus\0x".into();
        bad.line_items[1].sku = "s".repeat(Identifier::MAX_BYTES + 1);
        bad.request_id = "req\0".into();
        assert_eq!(
            fields(bad),
            ["customer_id", "line_items[1].sku", "request_id"]
        );
        let mut longest = draft();
        longest.customer_id = "c".repeat(Identifier::MAX_BYTES);
        assert!(longest.validate().is_ok());
    }
}
