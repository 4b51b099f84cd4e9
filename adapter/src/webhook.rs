//! `POST /webhooks/{source}`: read the raw body, verify it, normalise it,
//! record it, and answer 2xx only once the fulfilment service has committed.

use std::time::{Instant, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};

use crate::error::WebhookError;
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

/// The webhook endpoint.
#[tracing::instrument(skip_all, fields(source = %source, event_id, outcome, status))]
pub async fn receive(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<serde_json::Value>), WebhookError> {
    let started = Instant::now();
    let result = handle(&state, &source, &headers, body).await;
    let span = tracing::Span::current();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match &result {
        Ok((status, _)) => {
            span.record("status", status.as_u16());
            tracing::info!(latency_ms, "webhook accepted");
        }
        Err(err) => {
            span.record("status", err.status().as_u16());
            tracing::warn!(code = err.code(), latency_ms, "webhook refused");
        }
    }
    result
}

async fn handle(
    state: &AppState,
    source: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<serde_json::Value>), WebhookError> {
    let source = state
        .sources
        .get(source)
        .ok_or(WebhookError::UnknownSource)?;
    if !is_json(headers) {
        return Err(WebhookError::NotJson);
    }
    // The exact bytes received: signatures cover them, not a re-serialisation.
    let body = axum::body::to_bytes(body, state.body_limit)
        .await
        .map_err(|err| {
            let too_large = std::error::Error::source(&err)
                .is_some_and(|inner| inner.is::<http_body_util::LengthLimitError>());
            if too_large {
                WebhookError::TooLarge(state.body_limit)
            } else {
                WebhookError::BadBody
            }
        })?;

    let verified = source.verify(headers, &body, SystemTime::now()).await?;
    let event = source.normalize(&body, &verified)?;
    let span = tracing::Span::current();
    span.record("event_id", event.event_id.as_str());

    let recorded = state.fulfilment.record(event).await?;
    let outcome = recorded.outcome();
    span.record("outcome", outcome.as_str_name());
    // Every outcome is a success for the provider, duplicates included: the
    // event is durably recorded, so it must stop retrying.
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({
            "outcome": outcome.as_str_name().to_ascii_lowercase(),
            "order_id": recorded.order.map(|o| o.order_id).unwrap_or_default(),
        })),
    ))
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
