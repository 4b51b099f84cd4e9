//! The rules of checkout, in pure code: flows and providers, attempt states
//! and what may follow what, the idempotency keys sent to providers, and
//! which return URLs are acceptable.

use std::fmt;

/// A payment provider that Fulfil starts payments at. Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sea_orm::EnumIter, sea_orm::DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum PaymentProvider {
    /// Stripe.
    #[sea_orm(string_value = "stripe")]
    Stripe,
    /// PayPal (not built yet; the tables already have room for it).
    #[sea_orm(string_value = "paypal")]
    Paypal,
}

impl PaymentProvider {
    /// The name in ErrorInfo metadata and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentProvider::Stripe => "stripe",
            PaymentProvider::Paypal => "paypal",
        }
    }
}

/// How the customer pays: the provider and its product. Stored as the proto
/// value name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sea_orm::EnumIter, sea_orm::DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum Flow {
    /// Stripe's mobile PaymentSheet: a PaymentIntent plus customer and
    /// ephemeral key.
    #[sea_orm(string_value = "STRIPE_PAYMENT_SHEET")]
    StripePaymentSheet,
    /// A Stripe-hosted Checkout Session.
    #[sea_orm(string_value = "STRIPE_CHECKOUT_SESSION")]
    StripeCheckoutSession,
    /// A PayPal order (approval page).
    #[sea_orm(string_value = "PAYPAL_ORDER")]
    PaypalOrder,
}

impl Flow {
    /// The provider the flow pays at.
    pub fn provider(self) -> PaymentProvider {
        match self {
            Flow::StripePaymentSheet | Flow::StripeCheckoutSession => PaymentProvider::Stripe,
            Flow::PaypalOrder => PaymentProvider::Paypal,
        }
    }

    /// The proto value name.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::StripePaymentSheet => "STRIPE_PAYMENT_SHEET",
            Flow::StripeCheckoutSession => "STRIPE_CHECKOUT_SESSION",
            Flow::PaypalOrder => "PAYPAL_ORDER",
        }
    }

    /// The provider operation that creates this flow's payment, part of its
    /// idempotency key.
    fn create_operation(self) -> &'static str {
        match self {
            Flow::StripePaymentSheet => "payment-intent",
            Flow::StripeCheckoutSession => "checkout-session",
            Flow::PaypalOrder => "paypal-order",
        }
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a checkout attempt is. Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sea_orm::EnumIter, sea_orm::DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum AttemptState {
    /// Claimed; its payment exists at the provider or is being created.
    #[sea_orm(string_value = "OPEN")]
    Open,
    /// The provider took the payment.
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    /// The provider gave up on it (an expired session).
    #[sea_orm(string_value = "FAILED")]
    Failed,
    /// Cancelled (CancelOrder, or cancelled at the provider).
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

impl AttemptState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Open => "OPEN",
            AttemptState::Succeeded => "SUCCEEDED",
            AttemptState::Failed => "FAILED",
            AttemptState::Cancelled => "CANCELLED",
        }
    }

    /// Whether a new attempt may start after this one: only once it is over
    /// without a payment. A SUCCEEDED attempt paid the order.
    pub fn allows_new_attempt(self) -> bool {
        matches!(self, AttemptState::Failed | AttemptState::Cancelled)
    }

    /// Whether the attempt may move to `next`: only an open attempt ends,
    /// and an ended one stays as it is (a late report changes nothing).
    pub fn may_become(self, next: AttemptState) -> bool {
        self == AttemptState::Open && next != AttemptState::Open
    }
}

/// What the provider says about an open attempt's payment when we look
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderStatus {
    /// Still payable: return it to the client again.
    Open,
    /// Paid (or being paid): the order's webhooks follow.
    Paid,
    /// Cancelled at the provider.
    Cancelled,
    /// Expired (sessions).
    Expired,
}

impl ProviderStatus {
    /// The attempt state this status ends an open attempt in, if any.
    pub fn ends_attempt(self) -> Option<AttemptState> {
        match self {
            ProviderStatus::Open => None,
            ProviderStatus::Paid => Some(AttemptState::Succeeded),
            ProviderStatus::Cancelled => Some(AttemptState::Cancelled),
            ProviderStatus::Expired => Some(AttemptState::Failed),
        }
    }
}

/// The idempotency key of the provider call that creates attempt `attempt`
/// of `order_id` with `flow`: a retry of the call, from this process or
/// another replica, sends the same key, so the provider creates the payment
/// once. Order ids are `[A-Za-z0-9_-]`, so the key is unambiguous.
pub fn payment_key(order_id: &str, attempt: i64, flow: Flow) -> String {
    format!("fulfil-{order_id}-{attempt}-{}", flow.create_operation())
}

/// The idempotency key of the call that cancels (or expires) that payment.
pub fn cancel_key(order_id: &str, attempt: i64, flow: Flow) -> String {
    format!(
        "fulfil-{order_id}-{attempt}-{}-cancel",
        flow.create_operation()
    )
}

/// The idempotency key of the call creating the provider's customer for a
/// Fulfil customer. Customer ids may hold any printable character, so the
/// id is hex-encoded when it is not plain.
pub fn customer_key(customer_id: &str) -> String {
    let plain = customer_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain && customer_id.len() <= 200 {
        format!("fulfil-customer-{customer_id}")
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(customer_id.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("fulfil-customer-sha256-{hex}")
    }
}

/// Which URLs the hosted page may send customers back to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnUrlPolicy {
    /// Allowed prefixes (`https://shop.example/checkout/`); empty: any
    /// https URL (http only for localhost).
    pub allowed_prefixes: Vec<String>,
}

impl ReturnUrlPolicy {
    /// Checks one return URL; the error says why, for a BadRequest.
    pub fn check(&self, url: &str) -> Result<(), &'static str> {
        if url.is_empty() {
            return Err("is required for STRIPE_CHECKOUT_SESSION");
        }
        if url.len() > 2048 {
            return Err("must be at most 2048 characters");
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("must not contain spaces or control characters");
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err("must be an absolute http(s) URL");
        };
        let host = rest
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default()
            .rsplit('@')
            .next()
            .unwrap_or_default();
        let host_name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        if host_name.is_empty() {
            return Err("must name a host");
        }
        let local = matches!(host_name, "localhost" | "127.0.0.1" | "[::1]");
        match scheme {
            "https" => {}
            "http" if local => {}
            _ => return Err("must use https (http only for localhost)"),
        }
        if !self.allowed_prefixes.is_empty()
            && !self.allowed_prefixes.iter().any(|p| url.starts_with(p))
        {
            return Err("is not under an allowed return URL prefix");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_derived_from_order_attempt_and_operation() {
        assert_eq!(
            payment_key("ord_1", 1, Flow::StripePaymentSheet),
            "fulfil-ord_1-1-payment-intent"
        );
        assert_eq!(
            payment_key("ord_1", 2, Flow::StripeCheckoutSession),
            "fulfil-ord_1-2-checkout-session"
        );
        assert_ne!(
            payment_key("ord_1", 1, Flow::StripePaymentSheet),
            payment_key("ord_1", 2, Flow::StripePaymentSheet)
        );
        assert_eq!(
            cancel_key("ord_1", 1, Flow::StripePaymentSheet),
            "fulfil-ord_1-1-payment-intent-cancel"
        );
        assert_eq!(customer_key("user_42"), "fulfil-customer-user_42");
        let odd = customer_key("user 42/ö");
        assert!(odd.starts_with("fulfil-customer-sha256-"));
        assert_eq!(odd, customer_key("user 42/ö"));
        assert_ne!(odd, customer_key("user 42/o"));
    }

    #[test]
    fn only_ended_unpaid_attempts_allow_a_new_one() {
        assert!(!AttemptState::Open.allows_new_attempt());
        assert!(!AttemptState::Succeeded.allows_new_attempt());
        assert!(AttemptState::Failed.allows_new_attempt());
        assert!(AttemptState::Cancelled.allows_new_attempt());
    }

    #[test]
    fn only_open_attempts_end() {
        use AttemptState::*;
        for next in [Succeeded, Failed, Cancelled] {
            assert!(Open.may_become(next));
            for ended in [Succeeded, Failed, Cancelled] {
                assert!(!ended.may_become(next), "{ended:?} -> {next:?}");
            }
        }
        assert!(!Open.may_become(Open));
        assert_eq!(ProviderStatus::Open.ends_attempt(), None);
        assert_eq!(ProviderStatus::Expired.ends_attempt(), Some(Failed));
        assert_eq!(ProviderStatus::Cancelled.ends_attempt(), Some(Cancelled));
        assert_eq!(ProviderStatus::Paid.ends_attempt(), Some(Succeeded));
    }

    #[test]
    fn flows_name_their_provider() {
        assert_eq!(Flow::StripePaymentSheet.provider(), PaymentProvider::Stripe);
        assert_eq!(
            Flow::StripeCheckoutSession.provider(),
            PaymentProvider::Stripe
        );
        assert_eq!(Flow::PaypalOrder.provider(), PaymentProvider::Paypal);
    }

    #[test]
    fn return_urls() {
        let any = ReturnUrlPolicy::default();
        assert!(any.check("https://shop.example/done?x=1").is_ok());
        assert!(any.check("http://localhost:3000/done").is_ok());
        assert!(any.check("http://127.0.0.1/done").is_ok());
        for bad in [
            "",
            "http://shop.example/done",
            "javascript:alert(1)",
            "ftp://shop.example/",
            "https:///nohost",
            "https://shop.example/a b",
            "/relative",
        ] {
            assert!(any.check(bad).is_err(), "{bad:?}");
        }
        let strict = ReturnUrlPolicy {
            allowed_prefixes: vec!["https://shop.example/checkout/".into()],
        };
        assert!(strict.check("https://shop.example/checkout/ok").is_ok());
        assert!(
            strict
                .check("https://shop.example.evil/checkout/ok")
                .is_err()
        );
        assert!(strict.check("https://evil.example/checkout/").is_err());
    }
}
