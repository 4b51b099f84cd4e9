//! Configured webhook sources, ready to verify and normalise deliveries.
//!
//! A source is a named endpoint (`/webhooks/{name}`) with a provider kind,
//! its secrets (several during a rotation) and its options. Secrets are
//! parsed once, at start, so a bad key fails the start, not a webhook.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fulfil_proto::Provider;
use fulfil_proto::v1::PaymentEvent;
use http::HeaderMap;

use crate::config::{ConfigError, SourceConfig};
use crate::normalize::{self, Context, Mapping, NormalizeError};
use crate::secret::Secret;
use crate::verify::{self, VerifyError};

/// How a source checks deliveries.
enum Verifier {
    Stripe {
        secrets: Vec<Secret>,
        tolerance: Duration,
    },
    Standard {
        keys: Vec<verify::standard::StandardKey>,
        tolerance: Duration,
    },
    Paddle {
        secrets: Vec<Secret>,
        tolerance: Duration,
    },
    Bearer {
        tokens: Vec<Secret>,
    },
    Paypal(verify::paypal::PaypalVerifier),
}

/// One configured source.
pub struct Source {
    /// Its name.
    pub name: String,
    /// Its provider kind.
    pub kind: Provider,
    verifier: Verifier,
    order_ref_key: String,
    mapping: Option<Mapping>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// What verification established about a delivery.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    /// Standard Webhooks: the signed `webhook-id` (the dedupe key).
    pub webhook_id: Option<String>,
}

impl Source {
    /// Builds a source, parsing its keys.
    pub fn new(config: SourceConfig) -> Result<Self, ConfigError> {
        let name = config.name.clone();
        let invalid = |problem: String| ConfigError::Invalid {
            source_name: name.clone(),
            problem,
        };
        let tolerance = |default: Duration| {
            config
                .file
                .tolerance_secs
                .map_or(default, Duration::from_secs)
        };
        let verifier = match config.file.kind {
            Provider::Stripe => Verifier::Stripe {
                secrets: config.secrets,
                tolerance: tolerance(verify::stripe::DEFAULT_TOLERANCE),
            },
            Provider::Paddle => Verifier::Paddle {
                secrets: config.secrets,
                tolerance: tolerance(verify::paddle::DEFAULT_TOLERANCE),
            },
            Provider::Standard => Verifier::Standard {
                keys: config
                    .secrets
                    .iter()
                    .map(verify::standard::StandardKey::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| invalid(e.to_string()))?,
                tolerance: tolerance(verify::standard::DEFAULT_TOLERANCE),
            },
            Provider::Revenuecat | Provider::Glassfy => Verifier::Bearer {
                tokens: config.secrets,
            },
            Provider::Paypal => {
                let webhook_id = config.file.webhook_id.clone().unwrap_or_default();
                let certificates: Arc<dyn verify::paypal::CertificateSource> =
                    match &config.file.certificate_file {
                        Some(path) => Arc::new(
                            verify::paypal::FileCertificateSource::open(path)
                                .map_err(|e| invalid(e.to_string()))?,
                        ),
                        None => Arc::new(
                            verify::paypal::HttpsCertificateSource::new()
                                .map_err(|e| invalid(e.to_string()))?,
                        ),
                    };
                Verifier::Paypal(
                    verify::paypal::PaypalVerifier::new(webhook_id, certificates)
                        .with_tolerance(tolerance(verify::paypal::DEFAULT_TOLERANCE)),
                )
            }
        };
        Ok(Source {
            name: config.name,
            kind: config.file.kind,
            verifier,
            order_ref_key: config.file.order_ref_key.unwrap_or_default(),
            mapping: config.file.mapping,
        })
    }

    /// Checks a delivery against the raw body, as of `now`.
    pub async fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Verified, VerifyError> {
        match &self.verifier {
            Verifier::Stripe { secrets, tolerance } => {
                verify::stripe::verify(headers, body, secrets, *tolerance, now)?;
            }
            Verifier::Paddle { secrets, tolerance } => {
                verify::paddle::verify(headers, body, secrets, *tolerance, now)?;
            }
            Verifier::Bearer { tokens } => verify::bearer::verify(headers, tokens)?,
            Verifier::Paypal(paypal) => paypal.verify(headers, body, now).await?,
            Verifier::Standard { keys, tolerance } => {
                let verified = verify::standard::verify(headers, body, keys, *tolerance, now)?;
                return Ok(Verified {
                    webhook_id: Some(verified.webhook_id),
                });
            }
        }
        Ok(Verified::default())
    }

    /// Turns a verified body into a payment event (raw payload attached).
    pub fn normalize(
        &self,
        body: &[u8],
        verified: &Verified,
    ) -> Result<PaymentEvent, NormalizeError> {
        let ctx = Context {
            source: &self.name,
            provider: self.kind,
            order_ref_key: &self.order_ref_key,
            mapping: self.mapping.as_ref(),
            webhook_id: verified.webhook_id.as_deref(),
        };
        let mut event = normalize::normalize(&ctx, body)?;
        event.payload = body.to_vec();
        Ok(event)
    }
}

/// Every configured source, by name.
#[derive(Debug, Clone, Default)]
pub struct Sources(HashMap<String, Arc<Source>>);

impl Sources {
    /// Builds every source; the first bad one fails the whole set.
    pub fn new(configs: Vec<SourceConfig>) -> Result<Self, ConfigError> {
        let mut sources = HashMap::with_capacity(configs.len());
        for config in configs {
            let source = Source::new(config)?;
            sources.insert(source.name.clone(), Arc::new(source));
        }
        Ok(Sources(sources))
    }

    /// The source with this name.
    pub fn get(&self, name: &str) -> Option<Arc<Source>> {
        self.0.get(name).cloned()
    }

    /// Names and kinds, sorted, for start-up logs.
    pub fn summary(&self) -> Vec<(String, Provider)> {
        let mut list: Vec<_> = self.0.values().map(|s| (s.name.clone(), s.kind)).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }
}
