//! The local sources file: one source of each kind Fulfil can sign for,
//! with random secrets, written once and reused so a provider CLI or
//! `fulfil trigger` keeps working across restarts.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

/// Default file name, in the working directory.
pub const DEFAULT_PATH: &str = "fulfil-sources.toml";

fn random(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh sources document with new random secrets.
pub fn generate() -> String {
    let stripe = format!("whsec_{}", hex(&random(16)));
    let standard = format!("whsec_{}", STANDARD.encode(random(24)));
    let paddle = format!("pdl_ntfset_{}", hex(&random(16)));
    let revenuecat = format!("Bearer rc_{}", hex(&random(16)));
    let glassfy = format!("Bearer gf_{}", hex(&random(16)));
    format!(
        r#"# Local webhook sources for `fulfil up`, generated with random secrets.
# Point a provider's CLI (e.g. `stripe listen --forward-to`) or
# `fulfil trigger SOURCE TYPE` at http://127.0.0.1:8080/webhooks/SOURCE.
# Never use these secrets anywhere but on this machine.

[sources.stripe]
kind = "stripe"
secrets = ["{stripe}"]

[sources.standard]
kind = "standard"
secrets = ["{standard}"]

[sources.standard.mapping]
event_type = "/type"
order_ref = "/data/order_id"
payment_ref = "/data/payment_id"
refund_ref = "/data/refund_id"
amount = "/data/amount"
currency = "/data/currency"
succeeded = ["payment.succeeded"]
failed = ["payment.failed"]
processing = ["payment.processing"]
refunded = ["payment.refunded"]

[sources.paddle]
kind = "paddle"
secrets = ["{paddle}"]

[sources.revenuecat]
kind = "revenuecat"
secrets = ["{revenuecat}"]

[sources.glassfy]
kind = "glassfy"
secrets = ["{glassfy}"]
"#
    )
}

/// Reads the file, creating it first if it does not exist.
pub fn load_or_create(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        std::fs::write(path, generate())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads an existing file.
pub fn load(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {} (start `fulfil up` first, or pass --sources)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_sources_are_valid_and_unique() {
        let text = generate();
        let sources = adapter::config::parse_sources(&text, &|_| None).expect("valid sources");
        assert_eq!(sources.len(), 5);
        adapter::source::Sources::new(sources).expect("keys parse");
        assert_ne!(generate(), text, "secrets are random");
    }
}
