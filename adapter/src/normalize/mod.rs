//! Provider payloads to provider-neutral payment events, one module per provider.
//!
//! Normalisation runs after the signature has been verified: [`normalize`]
//! parses the raw body and produces a [`PaymentEvent`] in Fulfil's terms.
//! Rules every provider follows:
//!
//! - Unknown event types are not errors. They become [`Kind::Other`] with the
//!   event id, type and time set, so the caller can acknowledge them and
//!   record them as ignored. Known types in a state Fulfil does not act on
//!   (a pending Stripe refund) are `Other` too.
//! - Amounts are minor units and never negative ([`amount`]); currencies are
//!   upper-case ISO 4217 codes; an amount without a currency is an error.
//! - Errors ([`NormalizeError`]) name the JSON path of the field at fault and
//!   never echo payload values, so they are safe to log and to return.
//! - Every id and reference of the result is an identifier
//!   ([`fulfil_proto::Identifier`]: at most 256 bytes, no control
//!   character), checked once on the finished event so that no provider and
//!   no mapping can skip it; anything else is [`NormalizeError::InvalidIdentifier`]
//!   and nothing is sent on. Free text elsewhere in the body is no concern:
//!   the body travels as bytes.
//! - `payload` is left empty: the HTTP layer fills it with the raw body.
//! - Nothing here panics, whatever the input.

pub mod amount;
mod glassfy;
mod json;
pub mod mapping;
mod paypal;
mod revenuecat;
mod stripe;

#[cfg(test)]
mod testing;

use fulfil_proto::v1::PaymentEvent;
pub use fulfil_proto::v1::payment_event::Kind;
use fulfil_proto::{IdentifierError, Provider};
pub use mapping::{AmountFormat, Mapping};

use json::At;

/// The Stripe metadata key that holds Fulfil's order id unless configured
/// otherwise.
pub const DEFAULT_ORDER_REF_KEY: &str = "order_id";

/// What normalisation needs to know besides the body.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The adapter's configured source name, copied to `PaymentEvent.source`.
    pub source: &'a str,
    /// How to read the body.
    pub provider: Provider,
    /// Stripe: the metadata key holding the order id (empty means
    /// [`DEFAULT_ORDER_REF_KEY`]).
    pub order_ref_key: &'a str,
    /// Standard Webhooks and Paddle: how to read the body. Required for
    /// Standard; Paddle falls back to [`mapping::paddle_default`].
    pub mapping: Option<&'a Mapping>,
    /// Standard Webhooks: the verified `webhook-id` header, the event id
    /// unless the mapping points at one in the body.
    pub webhook_id: Option<&'a str>,
}

impl<'a> Context<'a> {
    /// A context with the defaults: order ids under `metadata.order_id`, no
    /// mapping, no webhook id.
    pub fn new(source: &'a str, provider: Provider) -> Self {
        Context {
            source,
            provider,
            order_ref_key: DEFAULT_ORDER_REF_KEY,
            mapping: None,
            webhook_id: None,
        }
    }

    fn order_ref_key(&self) -> &'a str {
        if self.order_ref_key.is_empty() {
            DEFAULT_ORDER_REF_KEY
        } else {
            self.order_ref_key
        }
    }
}

/// Why a verified body could not be normalised. The message names the field
/// (as a JSON path, or the configured JSON pointer) and never repeats what
/// the payload held there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// Not JSON: a syntax error, invalid UTF-8, or nesting deeper than the
    /// parser allows.
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// A field the event type needs is absent, `null` or empty.
    #[error("missing field {path}")]
    MissingField {
        /// Where it should have been.
        path: String,
    },
    /// A field holds the wrong JSON type (e.g. an amount as a string).
    #[error("wrong type at {path}: expected {expected}")]
    WrongType {
        /// The field.
        path: String,
        /// The JSON type the field must have.
        expected: &'static str,
    },
    /// A field has the right type but an unusable value (a negative amount,
    /// too many decimals for the currency, a bad date).
    #[error("invalid value at {path}: {reason}")]
    InvalidValue {
        /// The field.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An id or reference of the event is not an identifier (empty where
    /// one is required, too long, or holding a control character such as
    /// U+0000). Named by its `PaymentEvent` field: it may come from a
    /// mapping's pointer or be made of several values.
    #[error("invalid identifier in {field}: {problem}")]
    InvalidIdentifier {
        /// The `PaymentEvent` field (`order_ref`, `event_id`, …).
        field: String,
        /// What is wrong with it.
        problem: IdentifierError,
    },
    /// The provider is read through a mapping and none is configured (a
    /// configuration error, not the sender's).
    #[error("provider {provider} needs a mapping and none is configured")]
    NoMapping {
        /// The provider's name.
        provider: &'static str,
    },
}

impl NormalizeError {
    /// A stable, machine-readable code for logs, metrics and responses.
    pub fn code(&self) -> &'static str {
        match self {
            NormalizeError::MalformedJson(_) => "malformed_json",
            NormalizeError::MissingField { .. } => "missing_field",
            NormalizeError::WrongType { .. } => "wrong_type",
            NormalizeError::InvalidValue { .. } => "invalid_value",
            NormalizeError::InvalidIdentifier { .. } => "invalid_identifier",
            NormalizeError::NoMapping { .. } => "no_mapping",
        }
    }
}

/// Turns a verified webhook body into a provider-neutral payment event.
///
/// `source` and `provider` come from `ctx`; `payload` is left empty for the
/// caller to fill with the raw body.
pub fn normalize(ctx: &Context<'_>, body: &[u8]) -> Result<PaymentEvent, NormalizeError> {
    let value = parse(body)?;
    let root = At::root(&value);
    root.object()?;
    let mut event = match ctx.provider {
        Provider::Stripe => stripe::normalize(&root, ctx.order_ref_key())?,
        Provider::Paypal => paypal::normalize(&root)?,
        Provider::Revenuecat => revenuecat::normalize(&root)?,
        Provider::Glassfy => glassfy::normalize(&root)?,
        Provider::Standard => {
            let mapping = ctx.mapping.ok_or(NormalizeError::NoMapping {
                provider: Provider::Standard.as_str(),
            })?;
            mapping::normalize(mapping, &value, ctx.webhook_id)?
        }
        Provider::Paddle => match ctx.mapping {
            Some(mapping) => mapping::normalize(mapping, &value, ctx.webhook_id)?,
            None => mapping::normalize(&mapping::paddle_default(), &value, ctx.webhook_id)?,
        },
    };
    ctx.source.clone_into(&mut event.source);
    event.provider = ctx.provider.as_str().to_owned();
    if let Some(bad) = event.invalid_identifiers().into_iter().next() {
        return Err(NormalizeError::InvalidIdentifier {
            field: bad.field,
            problem: bad.problem,
        });
    }
    Ok(event)
}

fn parse(body: &[u8]) -> Result<serde_json::Value, NormalizeError> {
    // serde_json checks UTF-8 itself, but only inside strings and with a
    // less helpful message; checking first names the byte offset.
    if let Err(err) = std::str::from_utf8(body) {
        return Err(NormalizeError::MalformedJson(format!(
            "not UTF-8 (invalid byte at offset {})",
            err.valid_up_to()
        )));
    }
    // serde_json's messages give a position and a category ("expected
    // value", "recursion limit exceeded"), never the input itself. Its
    // recursion limit (128 levels) turns absurd nesting into this error
    // instead of a stack overflow.
    serde_json::from_slice(body).map_err(|err| NormalizeError::MalformedJson(err.to_string()))
}

/// An event of `kind` with the envelope fields every provider has.
fn event(
    kind: Kind,
    event_id: &str,
    event_type: &str,
    occur_time: prost_types::Timestamp,
) -> PaymentEvent {
    let mut event = PaymentEvent {
        event_id: event_id.to_owned(),
        event_type: event_type.to_owned(),
        occur_time: Some(occur_time),
        ..PaymentEvent::default()
    };
    event.set_kind(kind);
    event
}

/// Sets amount and currency, refusing an amount with no currency (the
/// fulfilment side could not compare it with an order).
fn set_money(
    event: &mut PaymentEvent,
    amount: i64,
    currency: Option<String>,
    missing_currency: impl FnOnce() -> NormalizeError,
) -> Result<(), NormalizeError> {
    if amount != 0 && currency.is_none() {
        return Err(missing_currency());
    }
    event.amount = amount;
    event.currency = currency.unwrap_or_default();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::testing::{ctx, run};
    use super::*;

    #[test]
    fn malformed_bodies_are_malformed_json_for_every_provider() {
        let bodies: [&[u8]; 6] = [
            b"",
            b"{",
            b"{\"id\": }",
            b"not json",
            b"{\"id\": \"evt_1\"} trailing",
            b"\xff\xfe{}",
        ];
        for provider in Provider::ALL {
            for body in bodies {
                let err = run(&ctx(provider), body).unwrap_err();
                assert_eq!(err.code(), "malformed_json", "{provider:?} {body:?}");
            }
        }
    }

    #[test]
    fn invalid_utf8_inside_a_string_is_malformed_json() {
        let err = run(&ctx(Provider::Stripe), b"{\"id\": \"evt_\xc3\x28\"}").unwrap_err();
        assert_eq!(err.code(), "malformed_json");
        assert!(err.to_string().contains("offset 12"), "{err}");
    }

    #[test]
    fn absurd_nesting_is_malformed_json_not_a_stack_overflow() {
        let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep_objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        let wrapped = format!("{{\"id\": \"evt_1\", \"data\": {deep_arrays}}}");
        for provider in Provider::ALL {
            for body in [&deep_arrays, &deep_objects, &wrapped] {
                let err = run(&ctx(provider), body.as_bytes()).unwrap_err();
                assert_eq!(err.code(), "malformed_json", "{provider:?}");
                assert!(err.to_string().contains("recursion limit"), "{err}");
            }
        }
    }

    #[test]
    fn a_body_that_is_not_an_object_is_the_wrong_type() {
        for body in ["[]", "\"evt\"", "42", "null", "true"] {
            let err = run(&ctx(Provider::Paypal), body.as_bytes()).unwrap_err();
            assert_eq!(err.code(), "wrong_type", "{body}");
            assert!(err.to_string().contains('$'), "{err}");
        }
    }

    #[test]
    fn standard_webhooks_without_a_mapping_is_a_configuration_error() {
        let err = run(&ctx(Provider::Standard), b"{\"type\": \"x\"}").unwrap_err();
        assert_eq!(err.code(), "no_mapping");
    }

    #[test]
    fn source_and_provider_come_from_the_context_and_payload_stays_empty() {
        let body = br#"{"id": "evt_1", "type": "customer.created", "created": 1700000000,
                        "data": {"object": {}}}"#;
        let mut context = ctx(Provider::Stripe);
        context.source = "stripe-eu";
        let event = run(&context, body).unwrap();
        assert_eq!(event.source, "stripe-eu");
        assert_eq!(event.provider, "stripe");
        assert_eq!(event.kind(), Kind::Other);
        assert!(event.payload.is_empty());
    }

    /// A body of each provider (Paddle read through its default mapping)
    /// with the JSON pointer of its event id.
    fn one_event_per_provider() -> Vec<(Provider, serde_json::Value, &'static str)> {
        use super::testing::fixture;
        let mut stripe = fixture("stripe/event.json");
        super::testing::set(&mut stripe, "/created", serde_json::json!(1_721_948_600));
        vec![
            (Provider::Stripe, stripe, "/id"),
            (
                Provider::Paypal,
                fixture("normalize/paypal-capture-completed.json"),
                "/id",
            ),
            (
                Provider::Revenuecat,
                fixture("normalize/revenuecat-initial-purchase.json"),
                "/event/id",
            ),
            (
                Provider::Glassfy,
                fixture("normalize/glassfy-in-app-purchase.json"),
                "/id",
            ),
            (
                Provider::Paddle,
                fixture("normalize/paddle-transaction-completed.json"),
                "/event_id",
            ),
        ]
    }

    #[test]
    fn event_ids_that_are_not_identifiers_are_refused_for_every_provider() {
        use super::testing::{run_json, set};
        for (provider, body, id_at) in one_event_per_provider() {
            assert!(
                run_json(&ctx(provider), &body).is_ok(),
                "{provider:?} fixture"
            );
            for (id, problem) in [
                ("evt\u{0}1", IdentifierError::ControlCharacter),
                ("evt\n1", IdentifierError::ControlCharacter),
                (
                    &"e".repeat(fulfil_proto::Identifier::MAX_BYTES + 1),
                    IdentifierError::TooLong,
                ),
            ] {
                let mut bad = body.clone();
                set(&mut bad, id_at, serde_json::json!(id));
                let err = run_json(&ctx(provider), &bad).unwrap_err();
                assert_eq!(
                    err,
                    NormalizeError::InvalidIdentifier {
                        field: "event_id".into(),
                        problem
                    },
                    "{provider:?}"
                );
                assert_eq!(err.code(), "invalid_identifier");
                assert!(!err.to_string().contains("evt"), "no echo: {err}");
            }
        }
    }

    #[test]
    fn stripe_references_are_identifiers_and_free_text_is_not() {
        use super::testing::{fixture, run_json, set};
        let mut body = fixture("stripe/event.json");
        let mut object = fixture("stripe/payment_intent.json");
        set(&mut object, "/status", serde_json::json!("succeeded"));
        set(&mut object, "/amount_received", serde_json::json!(1099));
        set(
            &mut object,
            "/metadata",
            serde_json::json!({"order_id": "ord_42"}),
        );
        set(&mut object, "/description", serde_json::json!("a\u{0}b\nc"));
        set(
            &mut body,
            "/type",
            serde_json::json!("payment_intent.succeeded"),
        );
        set(&mut body, "/created", serde_json::json!(1_721_948_600));
        set(&mut body, "/data/object", object);
        let event = run_json(&ctx(Provider::Stripe), &body).expect("NUL in free text is fine");
        assert_eq!(event.order_ref, "ord_42");

        for (at, field) in [
            ("/data/object/metadata/order_id", "order_ref"),
            ("/data/object/id", "payment_ref"),
            ("/type", "event_type"),
        ] {
            let mut bad = body.clone();
            set(&mut bad, at, serde_json::json!("x\u{0}y"));
            assert_eq!(
                run_json(&ctx(Provider::Stripe), &bad).unwrap_err(),
                NormalizeError::InvalidIdentifier {
                    field: field.into(),
                    problem: IdentifierError::ControlCharacter
                },
                "{at}"
            );
        }
    }

    #[test]
    fn error_messages_never_echo_payload_values() {
        let secret = "S".repeat(5_000);
        let bodies = [
            format!(
                r#"{{"id": "evt_1", "type": "payment_intent.succeeded", "created": 1,
                        "data": {{"object": {{"id": "pi_1", "amount_received": "{secret}"}}}}}}"#
            ),
            format!(
                r#"{{"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED",
                        "create_time": "2024-01-01T00:00:00Z",
                        "resource": {{"id": "c", "amount": {{"value": "{secret}", "currency_code": "USD"}}}}}}"#
            ),
            format!(r#"{{"id": "WH-1", "event_type": "X", "create_time": "{secret}"}}"#),
        ];
        let providers = [Provider::Stripe, Provider::Paypal, Provider::Paypal];
        for (body, provider) in bodies.iter().zip(providers) {
            let err = run(&ctx(provider), body.as_bytes()).unwrap_err();
            let message = err.to_string();
            assert!(!message.contains("SSSS"), "{message}");
            assert!(message.len() < 200, "{message}");
        }
    }
}
