//! `POST /webhooks/{source}`: read the raw body, verify it, normalise it,
//! record it, and answer 2xx only once the fulfilment service has committed.

use std::time::{Instant, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};

use fulfil_proto::v1::record_payment_event_response::Outcome;

use crate::error::WebhookError;
use crate::metrics::Delivery;
use crate::server::AppState;

/// Whether the Content-Type says JSON (`application/json`, with or without
/// parameters, or a `+json` type).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// What recording a delivery came to.
struct Recorded {
    outcome: &'static str,
    order_id: String,
}

/// The webhook endpoint: one span (an OpenTelemetry server span when
/// tracing is on) and one log line per delivery, never with the payload.
#[tracing::instrument(
    name = "webhook",
    skip_all,
    fields(
        otel.name = "POST /webhooks/{source}",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/webhooks/{source}",
        http.response.status_code,
        source = %source,
        event_id,
        outcome,
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<serde_json::Value>), WebhookError> {
    let started = Instant::now();
    let known_source = state.sources.get(&source).map(|_| source.as_str());
    let result = handle(&state, &source, &headers, body).await;
    let span = tracing::Span::current();
    let took = started.elapsed();
    let latency_ms = took.as_secs_f64() * 1000.0;
    let (status, outcome, verification_failure) = match &result {
        Ok(recorded) => (StatusCode::OK, recorded.outcome, None),
        Err(err) => (
            err.status(),
            err.code(),
            matches!(err, WebhookError::Verify(_)).then(|| err.code()),
        ),
    };
    span.record("http.response.status_code", status.as_u16());
    span.record("outcome", outcome);
    state.metrics.delivery(Delivery {
        source: known_source,
        outcome,
        status: status.as_u16(),
        verification_failure,
        took,
    });
    match result {
        Ok(recorded) => {
            tracing::info!(status = status.as_u16(), latency_ms, "webhook accepted");
            Ok((
                status,
                Json(serde_json::json!({
                    "outcome": recorded.outcome,
                    "order_id": recorded.order_id,
                })),
            ))
        }
        Err(err) => {
            // The code is on the line itself, not only on the span: where
            // the span is filtered out (`fulfil up` logs at warn) or not
            // printed, the line alone still says why.
            tracing::warn!(
                status = status.as_u16(),
                code = %err.code(),
                latency_ms,
                "webhook refused"
            );
            Err(err)
        }
    }
}

async fn handle(
    state: &AppState,
    source: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Recorded, WebhookError> {
    let source = state
        .sources
        .get(source)
        .ok_or(WebhookError::UnknownSource)?;
    if !is_json(headers) {
        return Err(WebhookError::NotJson);
    }
    // The exact bytes received: signatures cover them, not a re-serialisation.
    let read = state.body.read(headers, body).await?;
    let body = &read.bytes;

    let verified = source.verify(headers, body, SystemTime::now()).await?;
    let event = source.normalize(body, &verified)?;
    tracing::Span::current().record("event_id", event.event_id.as_str());

    let recorded = state.fulfilment.record(event).await?;
    // Every outcome is a success for the provider, duplicates included: the
    // event is durably recorded, so it must stop retrying.
    Ok(Recorded {
        outcome: outcome_name(recorded.outcome()),
        order_id: recorded.order.map(|o| o.order_id).unwrap_or_default(),
    })
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Unspecified => "unspecified",
        Outcome::Applied => "applied",
        Outcome::Duplicate => "duplicate",
        Outcome::Unmatched => "unmatched",
        Outcome::Ignored => "ignored",
        Outcome::Mismatch => "mismatch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        for (value, expected) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/vnd.paddle+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().expect("header"));
            assert_eq!(is_json(&headers), expected, "{value}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
