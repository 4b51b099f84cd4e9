//! A small Stripe API client: form-encoded requests, a pinned
//! `Stripe-Version`, connection and request timeouts, and retries of
//! transient failures with the same `Idempotency-Key`.
//!
//! Only the calls checkout needs. The secret key is sent as a bearer token
//! and never logged: [`SecretKey`]'s Debug is redacted, and errors carry
//! Stripe's error object, never our request.

use std::sync::Arc;
use std::time::Duration;

use fulfil_telemetry::https_client::{self, Scheme};
use serde_json::Value;

/// The API version every request pins (Stripe's account default could
/// change under us otherwise). Ephemeral keys use the mobile SDK's own.
pub const DEFAULT_API_VERSION: &str = "2024-06-20";

/// A Stripe secret (or restricted) key.
#[derive(Clone)]
pub struct SecretKey(Arc<str>);

impl SecretKey {
    /// Wraps a key, trimmed of surrounding white space (files end in a
    /// newline).
    pub fn new(key: &str) -> Self {
        SecretKey(Arc::from(key.trim()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// How to reach Stripe.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `https://api.stripe.com` in production; a fake in tests.
    pub base_url: String,
    /// The secret key.
    pub secret_key: SecretKey,
    /// Returned to apps for the PaymentSheet (`pk_...`).
    pub publishable_key: String,
    /// `Stripe-Version` of every request.
    pub api_version: String,
    /// `Stripe-Version` of ephemeral keys when the app names none.
    pub mobile_api_version: String,
    /// Connecting, per attempt.
    pub connect_timeout: Duration,
    /// One whole exchange, per attempt.
    pub request_timeout: Duration,
    /// Retries of a transient failure after the first attempt.
    pub max_retries: u32,
    /// Pause before the first retry; doubled after each.
    pub backoff: Duration,
    /// PaymentIntents offer these payment method types; empty: the ones
    /// enabled in the Stripe Dashboard (`automatic_payment_methods`).
    pub payment_method_types: Vec<String>,
}

impl StripeConfig {
    /// Production defaults around a key.
    pub fn new(secret_key: SecretKey, publishable_key: String) -> Self {
        StripeConfig {
            base_url: "https://api.stripe.com".into(),
            secret_key,
            publishable_key,
            api_version: DEFAULT_API_VERSION.into(),
            mobile_api_version: DEFAULT_API_VERSION.into(),
            connect_timeout: Duration::from_secs(5),
            // Stripe's own libraries wait up to 80 s; a gRPC caller will not,
            // and a retry with the same key is safe.
            request_timeout: Duration::from_secs(20),
            max_retries: 2,
            backoff: Duration::from_millis(500),
            payment_method_types: Vec::new(),
        }
    }
}

/// What went wrong calling Stripe.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StripeError {
    /// Stripe refused the request (4xx): retrying the same request will not
    /// help. `code` is Stripe's error code (`card_declined`,
    /// `resource_missing`, ...), when it gave one.
    #[error("Stripe refused the request ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stripe's `error.type`.
        kind: String,
        /// Stripe's `error.code`.
        code: Option<String>,
        /// Stripe's `error.message`, meant for people.
        message: String,
    },
    /// Stripe refused our key (401/403): a configuration problem.
    #[error("Stripe refused the API key ({status})")]
    Credentials {
        /// HTTP status.
        status: u16,
    },
    /// No answer after the retries (connection errors, timeouts, 429, 5xx,
    /// a concurrent request with the same idempotency key).
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    /// An answer we cannot read (a bug, or not Stripe at the base URL).
    #[error("unexpected answer from Stripe: {0}")]
    Malformed(String),
}

/// A PaymentIntent, as far as checkout cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntent {
    /// `pi_...`.
    pub id: String,
    /// For the PaymentSheet.
    pub client_secret: String,
    /// `requires_payment_method`, `succeeded`, `canceled`, ...
    pub status: String,
}

/// A Checkout Session, as far as checkout cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// `cs_...`.
    pub id: String,
    /// The hosted page (absent once the session is complete or expired).
    pub url: Option<String>,
    /// `open`, `complete` or `expired`.
    pub status: String,
}

/// A form body in Stripe's bracket notation (`metadata[order_id]=...`).
pub type Form = Vec<(String, String)>;

/// The Stripe API.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    config: Arc<StripeConfig>,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("base_url", &self.config.base_url)
            .field("api_version", &self.config.api_version)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended.
enum Attempt {
    Done(Value),
    Retry {
        why: String,
        after: Option<Duration>,
    },
    Fail(StripeError),
}

impl StripeClient {
    /// A client for `config`; plain http only when the base URL says so
    /// (a local fake).
    pub fn new(config: StripeConfig) -> Result<Self, https_client::HttpsClientError> {
        let scheme = if config.base_url.starts_with("http://") {
            Scheme::AllowHttp
        } else {
            Scheme::HttpsOnly
        };
        let http =
            https_client::build_with(None, config.connect_timeout, config.request_timeout, scheme)?;
        Ok(StripeClient {
            http,
            config: Arc::new(config),
        })
    }

    /// The configuration (for the publishable key and versions).
    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    /// POSTs `form` to `path` with `idempotency_key`, retrying transient
    /// failures with the same key.
    pub async fn post(
        &self,
        path: &str,
        form: &Form,
        idempotency_key: &str,
        version: Option<&str>,
    ) -> Result<Value, StripeError> {
        let body = encode(form);
        self.with_retries(|| {
            self.http
                .post(self.url(path))
                .header("Idempotency-Key", idempotency_key)
                .header(
                    "Stripe-Version",
                    version.unwrap_or(&self.config.api_version),
                )
                .header("Content-Type", "application/x-www-form-urlencoded")
                .bearer_auth(self.config.secret_key.expose())
                .body(body.clone())
        })
        .await
    }

    /// GETs `path` (reads are safe to retry).
    pub async fn get(&self, path: &str) -> Result<Value, StripeError> {
        self.with_retries(|| {
            self.http
                .get(self.url(path))
                .header("Stripe-Version", &self.config.api_version)
                .bearer_auth(self.config.secret_key.expose())
        })
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    async fn with_retries(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Value, StripeError> {
        let mut pause = self.config.backoff;
        let mut attempt = 0;
        loop {
            let outcome = match request().send().await {
                Ok(response) => read(response).await,
                Err(err) => Attempt::Retry {
                    why: describe(err),
                    after: None,
                },
            };
            match outcome {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(err) => return Err(err),
                Attempt::Retry { why, after } => {
                    if attempt >= self.config.max_retries {
                        return Err(StripeError::Unavailable(why));
                    }
                    attempt += 1;
                    let wait = after.unwrap_or(pause).min(Duration::from_secs(5));
                    tracing::warn!(
                        attempt,
                        reason = %why,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "Stripe call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    pause = pause.saturating_mul(2);
                }
            }
        }
    }

    /// Creates a Customer for a Fulfil customer; `key` makes racing
    /// creators get the same one.
    pub async fn create_customer(
        &self,
        customer_id: &str,
        key: &str,
    ) -> Result<String, StripeError> {
        let form = vec![("metadata[customer_id]".to_owned(), customer_id.to_owned())];
        let value = self.post("/v1/customers", &form, key, None).await?;
        string(&value, "id")
    }

    /// Creates a PaymentIntent from `form`.
    pub async fn create_payment_intent(
        &self,
        form: &Form,
        key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        payment_intent(&self.post("/v1/payment_intents", form, key, None).await?)
    }

    /// Reads a PaymentIntent again (its client secret, its status).
    pub async fn payment_intent(&self, id: &str) -> Result<PaymentIntent, StripeError> {
        payment_intent(
            &self
                .get(&format!("/v1/payment_intents/{}", path_id(id)?))
                .await?,
        )
    }

    /// Cancels a PaymentIntent.
    pub async fn cancel_payment_intent(
        &self,
        id: &str,
        key: &str,
    ) -> Result<PaymentIntent, StripeError> {
        let path = format!("/v1/payment_intents/{}/cancel", path_id(id)?);
        payment_intent(&self.post(&path, &Vec::new(), key, None).await?)
    }

    /// An ephemeral key for the mobile SDK, in the SDK's API version.
    pub async fn create_ephemeral_key(
        &self,
        customer: &str,
        version: &str,
    ) -> Result<String, StripeError> {
        let form = vec![("customer".to_owned(), customer.to_owned())];
        // A fresh key per call (each is short-lived and harmless), yet one
        // key across this call's retries.
        let key = format!("fulfil-ephemeral-{}", uuid::Uuid::new_v4().simple());
        let value = self
            .post("/v1/ephemeral_keys", &form, &key, Some(version))
            .await?;
        string(&value, "secret")
    }

    /// Creates a Checkout Session from `form`.
    pub async fn create_checkout_session(
        &self,
        form: &Form,
        key: &str,
    ) -> Result<CheckoutSession, StripeError> {
        checkout_session(&self.post("/v1/checkout/sessions", form, key, None).await?)
    }

    /// Reads a Checkout Session again.
    pub async fn checkout_session(&self, id: &str) -> Result<CheckoutSession, StripeError> {
        checkout_session(
            &self
                .get(&format!("/v1/checkout/sessions/{}", path_id(id)?))
                .await?,
        )
    }

    /// Expires an open Checkout Session.
    pub async fn expire_checkout_session(
        &self,
        id: &str,
        key: &str,
    ) -> Result<CheckoutSession, StripeError> {
        let path = format!("/v1/checkout/sessions/{}/expire", path_id(id)?);
        checkout_session(&self.post(&path, &Vec::new(), key, None).await?)
    }
}

/// An id put in a URL path: Stripe ids are `[A-Za-z0-9_]`.
fn path_id(id: &str) -> Result<&str, StripeError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(id)
    } else {
        Err(StripeError::Malformed(format!("not a Stripe id: {id:?}")))
    }
}

fn encode(form: &Form) -> String {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form {
        body.append_pair(key, value);
    }
    body.finish()
}

/// A transport error, without the URL (it names our fake or Stripe, and
/// reqwest never puts headers in it, but keep messages short).
fn describe(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "could not connect".into()
    } else {
        format!("request failed: {}", err.without_url())
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = response
        .headers()
        .get("Retry-After")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

async fn read(response: reqwest::Response) -> Attempt {
    let status = response.status();
    // Stripe says itself whether a retry can help; it wins when present.
    let should_retry = response
        .headers()
        .get("Stripe-Should-Retry")
        .and_then(|v| v.to_str().ok())
        .map(|v| v == "true");
    let after = retry_after(&response);
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(err) => {
            return Attempt::Retry {
                why: describe(err),
                after,
            };
        }
    };
    let value: Option<Value> = serde_json::from_slice(&body).ok();
    if status.is_success() {
        return match value {
            Some(value) => Attempt::Done(value),
            None => Attempt::Fail(StripeError::Malformed(format!(
                "{status} with a body that is not JSON"
            ))),
        };
    }
    let error = value.as_ref().and_then(|v| v.get("error"));
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    // As Stripe's own libraries: 409 is a conflict such as a concurrent
    // request with the same idempotency key still running (retried with the
    // same key, it gets that request's answer), 429 a rate limit.
    let transient = matches!(status.as_u16(), 409 | 429) || status.is_server_error();
    if should_retry.unwrap_or(transient) {
        return Attempt::Retry {
            why: format!("HTTP {status}"),
            after,
        };
    }
    if matches!(status.as_u16(), 401 | 403) {
        return Attempt::Fail(StripeError::Credentials {
            status: status.as_u16(),
        });
    }
    Attempt::Fail(StripeError::Refused {
        status: status.as_u16(),
        kind: field("type").unwrap_or_else(|| "unknown".into()),
        code: field("code"),
        message: field("message").unwrap_or_else(|| format!("HTTP {status}")),
    })
}

fn string(value: &Value, name: &str) -> Result<String, StripeError> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| StripeError::Malformed(format!("no string {name:?}")))
}

fn payment_intent(value: &Value) -> Result<PaymentIntent, StripeError> {
    Ok(PaymentIntent {
        id: string(value, "id")?,
        client_secret: string(value, "client_secret")?,
        status: string(value, "status")?,
    })
}

fn checkout_session(value: &Value) -> Result<CheckoutSession, StripeError> {
    Ok(CheckoutSession {
        id: string(value, "id")?,
        url: value.get("url").and_then(Value::as_str).map(str::to_owned),
        status: string(value, "status")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_use_brackets_and_escape_values() {
        let body = encode(&vec![
            ("metadata[order_id]".into(), "ord 1&x".into()),
            ("amount".into(), "3900".into()),
        ]);
        assert_eq!(body, "metadata%5Border_id%5D=ord+1%26x&amount=3900");
    }

    #[test]
    fn the_key_never_shows() {
        let config = StripeConfig::new(SecretKey::new("sk_test_hunter2\n"), "pk_test_1".into());
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.secret_key.expose(), "sk_test_hunter2");
        let client = StripeClient::new(config).expect("client");
        assert!(!format!("{client:?}").contains("hunter2"));
    }

    #[test]
    fn ids_in_paths_are_plain() {
        assert!(path_id("pi_123abc").is_ok());
        for bad in ["", "pi_1/../x", "pi 1", "pi_1?x=1"] {
            assert!(path_id(bad).is_err(), "{bad:?}");
        }
    }
}
