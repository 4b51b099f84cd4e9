//! The OpenTelemetry tracer provider, configured by the standard
//! environment variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`, …).

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::TelemetryError;

/// Where traces go, if anywhere.
pub fn endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
}

/// A provider exporting over OTLP/gRPC, or None when no endpoint is set.
pub fn provider(service: &str) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    if endpoint().is_none() {
        return Ok(None);
    }
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|err| TelemetryError::Exporter(err.to_string()))?;
    // OTEL_SERVICE_NAME, when set, wins over the default name.
    let resource = match std::env::var("OTEL_SERVICE_NAME") {
        Ok(name) if !name.trim().is_empty() => Resource::builder().build(),
        _ => Resource::builder()
            .with_service_name(service.to_owned())
            .build(),
    };
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}
