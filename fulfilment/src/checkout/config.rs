//! Checkout options of `fulfilment serve` (and `fulfil up`). All optional:
//! without a Stripe key the server runs and CreateCheckout answers
//! FAILED_PRECONDITION (CHECKOUT_NOT_CONFIGURED).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::CheckoutSetup;
use super::catalogue::{CatalogueError, CatalogueHandle};
use super::domain::ReturnUrlPolicy;
use super::stripe::{self, SecretKey, StripeClient, StripeConfig};

/// Options of checkout.
#[derive(Debug, Clone, Args)]
pub struct CheckoutArgs {
    /// The Stripe secret key (sk_...). Prefer the _FILE variant.
    #[arg(long, env = "FULFIL_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<String>,
    /// A file holding the Stripe secret key (a mounted Secret).
    #[arg(
        long,
        env = "FULFIL_STRIPE_SECRET_KEY_FILE",
        conflicts_with = "stripe_secret_key"
    )]
    pub stripe_secret_key_file: Option<PathBuf>,
    /// The Stripe publishable key (pk_...), handed to apps for the
    /// PaymentSheet.
    #[arg(long, env = "FULFIL_STRIPE_PUBLISHABLE_KEY", default_value = "")]
    pub stripe_publishable_key: String,
    /// The Stripe API base URL (a local fake in tests and `fulfil up`).
    #[arg(
        long,
        env = "FULFIL_STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_base: String,
    /// Stripe-Version sent with every request.
    #[arg(long, env = "FULFIL_STRIPE_API_VERSION", default_value = stripe::DEFAULT_API_VERSION)]
    pub stripe_api_version: String,
    /// Stripe-Version of ephemeral keys when the app names none (the
    /// mobile SDK's version).
    #[arg(long, env = "FULFIL_STRIPE_MOBILE_API_VERSION", default_value = stripe::DEFAULT_API_VERSION)]
    pub stripe_mobile_api_version: String,
    /// Milliseconds one Stripe request may take, per attempt.
    #[arg(long, env = "FULFIL_STRIPE_TIMEOUT_MS", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub stripe_timeout_ms: u64,
    /// Retries of a transient Stripe failure (same idempotency key).
    #[arg(long, env = "FULFIL_STRIPE_MAX_RETRIES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub stripe_max_retries: u32,
    /// Payment method types of PaymentIntents (comma-separated, e.g.
    /// "card"). None: those enabled in the Stripe Dashboard.
    #[arg(
        long,
        env = "FULFIL_STRIPE_PAYMENT_METHOD_TYPES",
        value_delimiter = ','
    )]
    pub stripe_payment_method_types: Vec<String>,
    /// The product catalogue (TOML); reloaded on SIGHUP.
    #[arg(long, env = "FULFIL_CATALOGUE")]
    pub catalogue: Option<PathBuf>,
    /// Prefixes hosted-page return URLs must start with (comma-separated).
    /// None: any https URL.
    #[arg(
        long,
        env = "FULFIL_CHECKOUT_RETURN_URL_PREFIXES",
        value_delimiter = ','
    )]
    pub checkout_return_url_prefixes: Vec<String>,
}

impl Default for CheckoutArgs {
    fn default() -> Self {
        CheckoutArgs {
            stripe_secret_key: None,
            stripe_secret_key_file: None,
            stripe_publishable_key: String::new(),
            stripe_api_base: "https://api.stripe.com".into(),
            stripe_api_version: stripe::DEFAULT_API_VERSION.into(),
            stripe_mobile_api_version: stripe::DEFAULT_API_VERSION.into(),
            stripe_timeout_ms: 20_000,
            stripe_max_retries: 2,
            stripe_payment_method_types: Vec::new(),
            catalogue: None,
            checkout_return_url_prefixes: Vec::new(),
        }
    }
}

/// Why the checkout options are unusable (the server does not start).
#[derive(Debug, thiserror::Error)]
pub enum CheckoutConfigError {
    /// The key file could not be read.
    #[error("FULFIL_STRIPE_SECRET_KEY_FILE: cannot read {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key is not a Stripe secret or restricted key.
    #[error("the Stripe secret key must start with sk_ or rk_")]
    KeyFormat,
    /// The base URL is not http(s).
    #[error("FULFIL_STRIPE_API_BASE must be an http(s) URL")]
    BaseUrl,
    /// The HTTP client could not be built.
    #[error("Stripe client: {0}")]
    Client(String),
    /// The catalogue could not be loaded.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

impl CheckoutArgs {
    /// Loads the key and the catalogue; an unusable value fails the start
    /// with the variable's name (never the key).
    pub fn load(&self) -> Result<CheckoutSetup, CheckoutConfigError> {
        let key = match (&self.stripe_secret_key, &self.stripe_secret_key_file) {
            (Some(key), _) => Some(SecretKey::new(key)),
            (None, Some(path)) => Some(SecretKey::new(&std::fs::read_to_string(path).map_err(
                |source| CheckoutConfigError::KeyFile {
                    path: path.clone(),
                    source,
                },
            )?)),
            (None, None) => None,
        };
        let stripe = match key {
            None => None,
            Some(key) => {
                if !self.stripe_api_base.starts_with("https://")
                    && !self.stripe_api_base.starts_with("http://")
                {
                    return Err(CheckoutConfigError::BaseUrl);
                }
                if !key_looks_right(&key) {
                    return Err(CheckoutConfigError::KeyFormat);
                }
                let mut config = StripeConfig::new(key, self.stripe_publishable_key.clone());
                config.base_url = self.stripe_api_base.clone();
                config.api_version = self.stripe_api_version.clone();
                config.mobile_api_version = self.stripe_mobile_api_version.clone();
                config.request_timeout = Duration::from_millis(self.stripe_timeout_ms);
                config.max_retries = self.stripe_max_retries;
                config.payment_method_types = self
                    .stripe_payment_method_types
                    .iter()
                    .filter(|t| !t.is_empty())
                    .cloned()
                    .collect();
                Some(
                    StripeClient::new(config)
                        .map_err(|e| CheckoutConfigError::Client(e.to_string()))?,
                )
            }
        };
        let catalogue = self
            .catalogue
            .as_deref()
            .map(CatalogueHandle::open)
            .transpose()?;
        Ok(CheckoutSetup {
            stripe,
            catalogue,
            return_urls: ReturnUrlPolicy {
                allowed_prefixes: self
                    .checkout_return_url_prefixes
                    .iter()
                    .filter(|p| !p.is_empty())
                    .cloned()
                    .collect(),
            },
        })
    }
}

fn key_looks_right(key: &SecretKey) -> bool {
    let key = key.expose();
    key.starts_with("sk_") || key.starts_with("rk_")
}
