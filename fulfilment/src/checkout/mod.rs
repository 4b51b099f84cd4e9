//! Checkout: starting a payment at a provider for an order.
//!
//! - [`domain`]: flows, attempt states, idempotency keys, return URLs (pure).
//! - [`catalogue`]: what app clients may buy, at the server's prices.
//! - [`stripe`]: the Stripe API client.
//! - [`Checkouts`]: the steps, each either a claim in the writer's
//!   transaction or a provider call outside any transaction.
//!
//! Idempotency by construction: the database lets an order have one OPEN
//! attempt, and every provider call that creates something carries a key
//! derived from the order, the attempt and the operation. A retried or
//! concurrent CreateCheckout therefore claims the same attempt and gets the
//! same PaymentIntent from Stripe. The PaymentIntent's client secret is not
//! stored: a repeated call reads it back from Stripe, so the database holds
//! nothing that could complete a payment.

pub mod catalogue;
mod config;
pub mod domain;
pub mod stripe;

use crate::auth::AuthError;
use crate::order::{Order, OrderError, Refusal};
use crate::storage::{
    Attempt, ClaimAttempt, Database, EndAttempt, RecordProviderPayment, SaveProviderCustomer,
};

pub use catalogue::{Catalogue, CatalogueHandle, RequestedItem};
pub use config::CheckoutArgs;
pub use domain::{AttemptState, Flow, PaymentProvider, ProviderStatus, ReturnUrlPolicy};
pub use stripe::{StripeClient, StripeConfig, StripeError};

/// What the server was configured with; all optional, so that a server
/// without Stripe still starts (and answers CHECKOUT_NOT_CONFIGURED).
#[derive(Debug, Clone, Default)]
pub struct CheckoutSetup {
    /// The Stripe API, when a key is configured.
    pub stripe: Option<StripeClient>,
    /// The product catalogue, when a file is configured.
    pub catalogue: Option<CatalogueHandle>,
    /// Where hosted pages may return to.
    pub return_urls: ReturnUrlPolicy,
}

/// Why a checkout failed. Mapped once to a gRPC status in `api::status`.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The server lacks what the request needs (`what`: "stripe",
    /// "catalogue").
    #[error("checkout is not configured on this server: no {0}")]
    NotConfigured(&'static str),
    /// The flow is not built yet.
    #[error("checkout flow {0} is not available yet")]
    FlowUnavailable(Flow),
    /// The order's open attempt uses another flow.
    #[error(
        "order {order_id:?} has an open {open} checkout; cancel the order or finish that payment"
    )]
    InProgress {
        /// The order.
        order_id: String,
        /// The open attempt's flow.
        open: Flow,
    },
    /// The provider refused or could not be reached.
    #[error("{provider}: {source}", provider = .provider.as_str())]
    Provider {
        /// Which provider.
        provider: PaymentProvider,
        /// What happened.
        source: StripeError,
    },
    /// The order cannot be checked out (not found, not payable, invalid
    /// request).
    #[error(transparent)]
    Order(#[from] OrderError),
    /// The caller may not do this.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<StripeError> for CheckoutError {
    fn from(source: StripeError) -> Self {
        CheckoutError::Provider {
            provider: PaymentProvider::Stripe,
            source,
        }
    }
}

/// A checkout's result, ready for the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutResult {
    /// The attempt number.
    pub attempt: i64,
    /// `pi_...` / `cs_...`.
    pub provider_payment_id: String,
    /// The PaymentIntent client secret (PaymentSheet).
    pub client_secret: String,
    /// `pk_...` (PaymentSheet).
    pub publishable_key: String,
    /// `cus_...`.
    pub provider_customer_id: String,
    /// The ephemeral key secret (PaymentSheet).
    pub ephemeral_key_secret: String,
    /// The hosted page (Checkout Session).
    pub url: String,
}

/// What a checkout asks for, validated.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    /// The flow.
    pub flow: Flow,
    /// Hosted page returns (Checkout Session only).
    pub success_url: String,
    /// Hosted page returns (Checkout Session only).
    pub cancel_url: String,
    /// The mobile SDK's API version, for the ephemeral key.
    pub stripe_api_version: Option<String>,
}

/// The checkout steps over a database and the configured providers.
#[derive(Debug, Clone)]
pub struct Checkouts {
    db: Database,
    setup: CheckoutSetup,
}

impl Checkouts {
    /// Checkout over `db` with what `setup` configures.
    pub fn new(db: Database, setup: CheckoutSetup) -> Self {
        Checkouts { db, setup }
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The catalogue, or NotConfigured.
    pub fn catalogue(&self) -> Result<std::sync::Arc<Catalogue>, CheckoutError> {
        self.setup
            .catalogue
            .as_ref()
            .map(CatalogueHandle::get)
            .ok_or(CheckoutError::NotConfigured("catalogue (FULFIL_CATALOGUE)"))
    }

    /// The return URL policy.
    pub fn return_urls(&self) -> &ReturnUrlPolicy {
        &self.setup.return_urls
    }

    fn stripe(&self) -> Result<&StripeClient, CheckoutError> {
        self.setup
            .stripe
            .as_ref()
            .ok_or(CheckoutError::NotConfigured(
                "Stripe key (FULFIL_STRIPE_SECRET_KEY)",
            ))
    }

    /// Refuses flows that cannot run here, before anything is written.
    pub fn check_available(&self, flow: Flow) -> Result<(), CheckoutError> {
        match flow.provider() {
            PaymentProvider::Paypal => Err(CheckoutError::FlowUnavailable(flow)),
            PaymentProvider::Stripe => self.stripe().map(|_| ()),
        }
    }

    /// Starts (or returns the open) checkout of `order_id`.
    pub async fn checkout(
        &self,
        order_id: &str,
        request: &CheckoutRequest,
    ) -> Result<(Order, CheckoutResult), CheckoutError> {
        let stripe = self.stripe()?;
        // At most twice: an open attempt the provider reports ended makes
        // room for one new attempt.
        let mut claimed = self.claim(order_id, request.flow).await?;
        if let Some(ended) = self.ended_at_provider(stripe, &claimed.attempt).await? {
            self.db
                .writer()
                .submit(EndAttempt {
                    attempt_id: claimed.attempt.id,
                    state: ended,
                })
                .await?;
            claimed = self.claim(order_id, request.flow).await?;
        }
        let (order, attempt) = (claimed.order, claimed.attempt);
        // An open attempt of an order that can no longer take a payment
        // (paid meanwhile, say) is not handed out again.
        order
            .state
            .checkout()
            .map_err(|refusal| OrderError::Refused {
                order_id: order_id.to_owned(),
                state: order.state,
                refusal,
            })?;
        if attempt.flow != request.flow {
            return Err(CheckoutError::InProgress {
                order_id: order_id.to_owned(),
                open: attempt.flow,
            });
        }
        let customer = self.stripe_customer(stripe, &order.customer_id).await?;
        let mut result = CheckoutResult {
            attempt: attempt.attempt,
            provider_customer_id: customer.clone(),
            ..CheckoutResult::default()
        };
        match request.flow {
            Flow::StripePaymentSheet => {
                let intent = match &attempt.provider_payment_id {
                    Some(id) => stripe.payment_intent(id).await?,
                    None => {
                        let form = payment_intent_form(
                            &order,
                            &attempt,
                            &customer,
                            &stripe.config().payment_method_types,
                        );
                        let key = domain::payment_key(order_id, attempt.attempt, attempt.flow);
                        let intent = stripe.create_payment_intent(&form, &key).await?;
                        self.record_payment(&attempt, &intent.id).await?;
                        intent
                    }
                };
                let version = request
                    .stripe_api_version
                    .as_deref()
                    .unwrap_or(&stripe.config().mobile_api_version);
                result.ephemeral_key_secret =
                    stripe.create_ephemeral_key(&customer, version).await?;
                result.provider_payment_id = intent.id;
                result.client_secret = intent.client_secret;
                result.publishable_key = stripe.config().publishable_key.clone();
            }
            Flow::StripeCheckoutSession => {
                let session = match &attempt.provider_payment_id {
                    Some(id) => stripe.checkout_session(id).await?,
                    None => {
                        let catalogue = self.setup.catalogue.as_ref().map(CatalogueHandle::get);
                        let form = checkout_session_form(
                            &order,
                            &attempt,
                            &customer,
                            catalogue.as_deref(),
                            request,
                        );
                        let key = domain::payment_key(order_id, attempt.attempt, attempt.flow);
                        let session = stripe.create_checkout_session(&form, &key).await?;
                        self.record_payment(&attempt, &session.id).await?;
                        session
                    }
                };
                result.provider_payment_id = session.id;
                result.url = session.url.unwrap_or_default();
            }
            Flow::PaypalOrder => return Err(CheckoutError::FlowUnavailable(request.flow)),
        }
        Ok((order, result))
    }

    async fn claim(
        &self,
        order_id: &str,
        flow: Flow,
    ) -> Result<crate::storage::Claimed, CheckoutError> {
        Ok(self
            .db
            .writer()
            .submit(ClaimAttempt {
                order_id: order_id.to_owned(),
                flow,
            })
            .await?)
    }

    /// How the provider reports an open attempt's payment, when it ended.
    async fn ended_at_provider(
        &self,
        stripe: &StripeClient,
        attempt: &Attempt,
    ) -> Result<Option<AttemptState>, CheckoutError> {
        let Some(id) = &attempt.provider_payment_id else {
            return Ok(None);
        };
        let status = match attempt.flow {
            Flow::StripePaymentSheet => intent_status(&stripe.payment_intent(id).await?.status),
            Flow::StripeCheckoutSession => {
                session_status(&stripe.checkout_session(id).await?.status)
            }
            Flow::PaypalOrder => ProviderStatus::Open,
        };
        Ok(status.ends_attempt())
    }

    /// Records the payment on its attempt; if the order was cancelled while
    /// it was being created, cancels it at the provider and refuses.
    async fn record_payment(
        &self,
        attempt: &Attempt,
        payment_id: &str,
    ) -> Result<(), CheckoutError> {
        let now = self
            .db
            .writer()
            .submit(RecordProviderPayment {
                attempt_id: attempt.id,
                provider_payment_id: payment_id.to_owned(),
            })
            .await?;
        if now.state == AttemptState::Open {
            return Ok(());
        }
        self.cancel_at_provider(&now).await?;
        Err(OrderError::Refused {
            order_id: attempt.order_id.clone(),
            state: crate::order::OrderState::Cancelled,
            refusal: Refusal::Cancelled,
        }
        .into())
    }

    /// The Stripe Customer of a Fulfil customer, created on first use. Two
    /// racing first checkouts send Stripe the same idempotency key (one
    /// Customer), and the database keeps the first id recorded either way.
    async fn stripe_customer(
        &self,
        stripe: &StripeClient,
        customer_id: &str,
    ) -> Result<String, CheckoutError> {
        if let Some(id) = self
            .db
            .provider_customer(customer_id, PaymentProvider::Stripe)
            .await
            .map_err(OrderError::from)?
        {
            return Ok(id);
        }
        let created = stripe
            .create_customer(customer_id, &domain::customer_key(customer_id))
            .await?;
        Ok(self
            .db
            .writer()
            .submit(SaveProviderCustomer {
                customer_id: customer_id.to_owned(),
                provider: PaymentProvider::Stripe,
                provider_customer_id: created,
            })
            .await?)
    }

    /// Before CancelOrder: cancels the order's open payment at the provider.
    /// If the provider cannot be reached the cancel fails (UNAVAILABLE) and
    /// nothing changes, so the customer can never pay an order that says
    /// it is cancelled; the caller retries.
    pub async fn cancel_open_payment(&self, order_id: &str) -> Result<(), CheckoutError> {
        let Some(attempt) = self
            .db
            .open_attempt(order_id)
            .await
            .map_err(OrderError::from)?
        else {
            return Ok(());
        };
        self.cancel_at_provider(&attempt).await
    }

    async fn cancel_at_provider(&self, attempt: &Attempt) -> Result<(), CheckoutError> {
        let Some(id) = &attempt.provider_payment_id else {
            // Being created right now: its creator finds the attempt
            // cancelled when it records the payment, and cancels it then.
            return Ok(());
        };
        let Ok(stripe) = self.stripe() else {
            tracing::warn!(
                order_id = %attempt.order_id,
                payment = %id,
                "order has an open Stripe payment but Stripe is not configured; it is not cancelled there"
            );
            return Ok(());
        };
        let key = domain::cancel_key(&attempt.order_id, attempt.attempt, attempt.flow);
        let outcome = match attempt.flow {
            Flow::StripePaymentSheet => stripe.cancel_payment_intent(id, &key).await.map(|_| ()),
            Flow::StripeCheckoutSession => {
                stripe.expire_checkout_session(id, &key).await.map(|_| ())
            }
            Flow::PaypalOrder => Ok(()),
        };
        match outcome {
            Ok(()) => Ok(()),
            // Stripe refuses to cancel what already ended (cancelled, paid,
            // expired); that is fine here: look at what it is now.
            Err(err @ StripeError::Refused { .. }) => {
                match self.ended_at_provider(stripe, attempt).await? {
                    Some(_) => Ok(()),
                    None => Err(err.into()),
                }
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// What a PaymentIntent's status means for its attempt.
pub fn intent_status(status: &str) -> ProviderStatus {
    match status {
        "canceled" => ProviderStatus::Cancelled,
        "succeeded" | "processing" | "requires_capture" => ProviderStatus::Paid,
        _ => ProviderStatus::Open,
    }
}

/// What a Checkout Session's status means for its attempt.
pub fn session_status(status: &str) -> ProviderStatus {
    match status {
        "expired" => ProviderStatus::Expired,
        "complete" => ProviderStatus::Paid,
        _ => ProviderStatus::Open,
    }
}

fn metadata(form: &mut stripe::Form, prefix: &str, order: &Order, attempt: &Attempt) {
    form.push((
        format!("{prefix}[order_id]"),
        order.order_id.as_str().to_owned(),
    ));
    form.push((format!("{prefix}[customer_id]"), order.customer_id.clone()));
    form.push((
        format!("{prefix}[checkout_attempt]"),
        attempt.attempt.to_string(),
    ));
}

/// The PaymentIntent of a PaymentSheet attempt: the order's amount, and
/// the order id in its metadata (how webhooks find the order).
pub fn payment_intent_form(
    order: &Order,
    attempt: &Attempt,
    customer: &str,
    payment_method_types: &[String],
) -> stripe::Form {
    let mut form = vec![
        ("amount".to_owned(), order.amount_total.to_string()),
        (
            "currency".to_owned(),
            order.currency.as_str().to_ascii_lowercase(),
        ),
        ("customer".to_owned(), customer.to_owned()),
    ];
    if payment_method_types.is_empty() {
        form.push((
            "automatic_payment_methods[enabled]".to_owned(),
            "true".to_owned(),
        ));
    }
    for (i, kind) in payment_method_types.iter().enumerate() {
        form.push((format!("payment_method_types[{i}]"), kind.clone()));
    }
    metadata(&mut form, "metadata", order, attempt);
    form
}

/// The Checkout Session of a hosted attempt: one line per order line, with
/// the catalogue's Stripe Price where it has one at the same amount, else
/// inline price data.
pub fn checkout_session_form(
    order: &Order,
    attempt: &Attempt,
    customer: &str,
    catalogue: Option<&Catalogue>,
    request: &CheckoutRequest,
) -> stripe::Form {
    let mut form = vec![
        ("mode".to_owned(), "payment".to_owned()),
        (
            "client_reference_id".to_owned(),
            order.order_id.as_str().to_owned(),
        ),
        ("customer".to_owned(), customer.to_owned()),
        ("success_url".to_owned(), request.success_url.clone()),
        ("cancel_url".to_owned(), request.cancel_url.clone()),
    ];
    metadata(&mut form, "metadata", order, attempt);
    // The PaymentIntent the session makes carries the order id too, so its
    // own events (payment_intent.succeeded) find the order.
    metadata(&mut form, "payment_intent_data[metadata]", order, attempt);
    let currency = order.currency.as_str().to_ascii_lowercase();
    for (i, line) in order.line_items.iter().enumerate() {
        let product = catalogue.and_then(|c| c.product(&line.sku));
        let price = product
            .filter(|p| p.unit_amount == line.unit_amount && p.currency == order.currency)
            .and_then(|p| p.stripe_price.clone());
        match price {
            Some(price) => form.push((format!("line_items[{i}][price]"), price)),
            None => {
                let name = product.map_or_else(|| line.sku.clone(), |p| p.name.clone());
                form.push((
                    format!("line_items[{i}][price_data][currency]"),
                    currency.clone(),
                ));
                form.push((
                    format!("line_items[{i}][price_data][unit_amount]"),
                    line.unit_amount.to_string(),
                ));
                form.push((
                    format!("line_items[{i}][price_data][product_data][name]"),
                    name,
                ));
            }
        }
        form.push((
            format!("line_items[{i}][quantity]"),
            line.quantity.to_string(),
        ));
    }
    form
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{OrderId, UnixMicros};

    fn order() -> Order {
        let draft = crate::order::OrderDraft {
            customer_id: "user_42".into(),
            currency: "eur".into(),
            line_items: vec![
                crate::order::LineItemDraft {
                    sku: "tee".into(),
                    quantity: 2,
                    unit_amount: 1950,
                },
                crate::order::LineItemDraft {
                    sku: "mug".into(),
                    quantity: 1,
                    unit_amount: 900,
                },
            ],
            ..Default::default()
        };
        let new = draft.validate().expect("valid");
        Order::new(&new, OrderId::parse("ord_1").expect("id"), UnixMicros(0))
    }

    fn attempt(flow: Flow) -> Attempt {
        Attempt {
            id: 1,
            order_id: "ord_1".into(),
            attempt: 3,
            customer_id: "user_42".into(),
            provider: flow.provider(),
            flow,
            state: AttemptState::Open,
            provider_payment_id: None,
            create_time: 0,
            update_time: 0,
        }
    }

    fn get<'a>(form: &'a stripe::Form, key: &str) -> Option<&'a str> {
        form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn payment_intents_carry_the_order() {
        let form = payment_intent_form(&order(), &attempt(Flow::StripePaymentSheet), "cus_1", &[]);
        assert_eq!(get(&form, "amount"), Some("4800"));
        assert_eq!(get(&form, "currency"), Some("eur"));
        assert_eq!(get(&form, "customer"), Some("cus_1"));
        assert_eq!(get(&form, "metadata[order_id]"), Some("ord_1"));
        assert_eq!(get(&form, "metadata[customer_id]"), Some("user_42"));
        assert_eq!(get(&form, "metadata[checkout_attempt]"), Some("3"));
        assert_eq!(
            get(&form, "automatic_payment_methods[enabled]"),
            Some("true")
        );
        let cards = payment_intent_form(
            &order(),
            &attempt(Flow::StripePaymentSheet),
            "cus_1",
            &["card".to_owned()],
        );
        assert_eq!(get(&cards, "automatic_payment_methods[enabled]"), None);
        assert_eq!(get(&cards, "payment_method_types[0]"), Some("card"));
    }

    #[test]
    fn sessions_use_catalogue_prices_only_when_they_match() {
        let catalogue = Catalogue::parse(
            "[products.tee]\nname='T-shirt'\nunit_amount=1950\ncurrency='eur'\nstripe_price='price_tee'\n\
             [products.mug]\nname='Mug'\nunit_amount=800\ncurrency='eur'\nstripe_price='price_mug'\n",
        )
        .expect("catalogue");
        let request = CheckoutRequest {
            flow: Flow::StripeCheckoutSession,
            success_url: "https://shop.example/ok".into(),
            cancel_url: "https://shop.example/no".into(),
            stripe_api_version: None,
        };
        let form = checkout_session_form(
            &order(),
            &attempt(Flow::StripeCheckoutSession),
            "cus_1",
            Some(&catalogue),
            &request,
        );
        assert_eq!(get(&form, "mode"), Some("payment"));
        assert_eq!(get(&form, "client_reference_id"), Some("ord_1"));
        assert_eq!(get(&form, "metadata[order_id]"), Some("ord_1"));
        assert_eq!(
            get(&form, "payment_intent_data[metadata][order_id]"),
            Some("ord_1")
        );
        assert_eq!(get(&form, "line_items[0][price]"), Some("price_tee"));
        assert_eq!(get(&form, "line_items[0][quantity]"), Some("2"));
        // The mug's catalogue price changed since the order: the order's
        // amount is what the customer pays.
        assert_eq!(get(&form, "line_items[1][price]"), None);
        assert_eq!(
            get(&form, "line_items[1][price_data][unit_amount]"),
            Some("900")
        );
        assert_eq!(
            get(&form, "line_items[1][price_data][product_data][name]"),
            Some("Mug")
        );
        assert_eq!(get(&form, "success_url"), Some("https://shop.example/ok"));
    }

    #[test]
    fn provider_statuses() {
        assert_eq!(
            intent_status("requires_payment_method"),
            ProviderStatus::Open
        );
        assert_eq!(intent_status("canceled"), ProviderStatus::Cancelled);
        assert_eq!(intent_status("succeeded"), ProviderStatus::Paid);
        assert_eq!(session_status("open"), ProviderStatus::Open);
        assert_eq!(session_status("expired"), ProviderStatus::Expired);
        assert_eq!(session_status("complete"), ProviderStatus::Paid);
    }
}
