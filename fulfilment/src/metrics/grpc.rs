//! A tower layer that counts gRPC calls by method and status code, times
//! unary calls, and tracks calls in flight (open streams for `Watch*`).
//!
//! The status of a call is known only at its end: in the response headers
//! for an immediate error, otherwise in the trailers after the last
//! message. So the response body is wrapped, and the call is recorded when
//! the trailers pass or when the body is dropped (the client went away).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{CallLabels, MethodLabels, Metrics};

/// The paths (`/package.Service/Method`) of every method in the encoded
/// descriptor sets.
pub fn method_paths(descriptor_sets: &[&[u8]]) -> std::collections::HashSet<String> {
    use prost::Message;
    let mut paths = std::collections::HashSet::new();
    for set in descriptor_sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
            continue;
        };
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    paths.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    paths
}

/// Wraps a gRPC service with call metrics.
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    metrics: Metrics,
}

impl GrpcMetricsLayer {
    /// Records into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`GrpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let call = Call::start(self.metrics.clone(), request.uri().path());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let (parts, body) = response.into_parts();
            let mut call = call;
            if let Some(code) = status_in(&parts.headers) {
                call.code = Some(code);
            }
            Ok(http::Response::from_parts(
                parts,
                MeteredBody {
                    inner: body,
                    call: Some(call),
                },
            ))
        })
    }
}

pin_project! {
    /// A response body that records its call when it ends.
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }
}

impl<B: Body> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(call)) = (frame.trailers_ref(), this.call.as_mut())
                    && let Some(code) = status_in(trailers)
                {
                    call.code = Some(code);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                // Ended: record now rather than whenever the body is dropped.
                this.call.take();
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// One call in progress; recorded when dropped.
pub struct Call {
    metrics: Metrics,
    method: Option<MethodLabels>,
    started: Instant,
    code: Option<&'static str>,
}

impl Call {
    fn start(metrics: Metrics, path: &str) -> Self {
        // gRPC paths are "/package.Service/Method"; anything else (CORS
        // preflight, a stray request) is not a gRPC call. Methods this
        // server does not have share one label, so callers cannot grow the
        // label set.
        let method =
            path.strip_prefix('/')
                .and_then(|p| p.split_once('/'))
                .map(|(service, method)| {
                    if metrics.0.methods.contains(path) {
                        MethodLabels {
                            service: service.to_owned(),
                            method: method.to_owned(),
                        }
                    } else {
                        MethodLabels {
                            service: "unknown".to_owned(),
                            method: "unknown".to_owned(),
                        }
                    }
                });
        if let Some(labels) = &method {
            metrics.0.in_flight.get_or_create(labels).inc();
        }
        Self {
            metrics,
            method,
            started: Instant::now(),
            code: None,
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let Some(labels) = self.method.take() else {
            return;
        };
        let inner = &self.metrics.0;
        inner.in_flight.get_or_create(&labels).dec();
        if !labels.method.starts_with("Watch") {
            inner
                .durations
                .get_or_create(&labels)
                .observe(self.started.elapsed().as_secs_f64());
        }
        // No status seen: the client went away before the call ended.
        let code = self.code.unwrap_or("CANCELLED");
        inner
            .calls
            .get_or_create(&CallLabels {
                service: labels.service,
                method: labels.method,
                code,
            })
            .inc();
    }
}

fn status_in(headers: &http::HeaderMap) -> Option<&'static str> {
    let code: i32 = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    Some(code_name(code))
}

/// The canonical name of a gRPC status code.
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}
