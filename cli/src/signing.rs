//! Signing a body the way each provider does, with a source's secret.

use adapter::config::SourceConfig;
use adapter::verify::sign;
use fulfil_proto::Provider;

/// Headers that make `body` verify for `source` at `now` (unix seconds).
pub fn headers(
    source: &SourceConfig,
    body: &[u8],
    now: i64,
) -> anyhow::Result<Vec<(String, String)>> {
    let secret = source
        .secrets
        .first()
        .ok_or_else(|| anyhow::anyhow!("source {} has no secret to sign with", source.name))?
        .expose();
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    match source.file.kind {
        Provider::Stripe => headers.push((
            "stripe-signature".into(),
            sign::stripe_header(secret, now, body),
        )),
        Provider::Paddle => headers.push((
            "paddle-signature".into(),
            sign::paddle_header(secret, now, body),
        )),
        Provider::Standard => {
            let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            for (name, value) in sign::standard_headers(secret, &id, now, body)? {
                headers.push((name.to_owned(), value));
            }
        }
        Provider::Revenuecat | Provider::Glassfy => {
            headers.push(("authorization".into(), secret.to_owned()))
        }
        Provider::Paypal => anyhow::bail!("PayPal webhooks are signed with PayPal's private key"),
    }
    Ok(headers)
}
