//! The size limit of gRPC messages, and the status a call over it gets.
//!
//! tonic enforces the limit inside its codec and answers OUT_OF_RANGE
//! ("decoded message length too large") with no details. gRPC's status
//! table calls this RESOURCE_EXHAUSTED, and Fulfil keeps OUT_OF_RANGE for
//! CURSOR_EXPIRED. This layer rewrites exactly those statuses of tonic's,
//! wherever the status travels: in the response headers (a request over the
//! limit, refused before the handler runs) or in the trailers (a response
//! over it, refused after the headers went out).

use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderMap;
use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use tower::util::MapResponseLayer;

/// The default limit: 4 MiB, what gRPC clients accept by default
/// (grpc-go, grpc-java, grpcio, tonic). Requests stay far below it (the
/// adapter's default body limit is 1 MiB); a larger response would be
/// refused by most clients anyway.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The largest message a call may receive or send, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimit(pub usize);

impl Default for MessageLimit {
    fn default() -> Self {
        MessageLimit(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

/// A message over the limit. `api::status` maps it to RESOURCE_EXHAUSTED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageTooLarge {
    /// The client sent more than the limit.
    #[error("the request message is larger than {limit} bytes")]
    Request {
        /// The limit.
        limit: usize,
    },
    /// The answer would be larger than the limit.
    #[error(
        "the response would be larger than {limit} bytes; ask for a smaller page or without payloads"
    )]
    Response {
        /// The limit.
        limit: usize,
    },
}

/// tonic's messages for its two limits (`tonic::codec`), the only
/// OUT_OF_RANGE statuses without details this server produces.
const DECODE_LIMIT: &str = "Error, decoded message length too large";
const ENCODE_LIMIT: &str = "Error, encoded message length too large";

/// Replaces tonic's limit status in `headers` (response headers or
/// trailers), if that is what they carry.
fn rewrite(headers: &mut HeaderMap, limit: usize) {
    if headers.get("grpc-status").map(http::HeaderValue::as_bytes) != Some(b"11")
        || headers.contains_key("grpc-status-details-bin")
    {
        return;
    }
    let Some(status) = tonic::Status::from_header_map(headers) else {
        return;
    };
    let too_large = if status.message().starts_with(DECODE_LIMIT) {
        MessageTooLarge::Request { limit }
    } else if status.message().starts_with(ENCODE_LIMIT) {
        MessageTooLarge::Response { limit }
    } else {
        return;
    };
    if let Err(err) = tonic::Status::from(too_large).add_header(headers) {
        tracing::warn!(error = %err, "cannot rewrite a message size status");
    }
}

/// A layer over services configured with `limit` that rewrites tonic's
/// message size statuses (see the module docs). It goes inside the
/// metrics layer, which then counts the rewritten code.
pub fn layer(
    limit: MessageLimit,
) -> MapResponseLayer<
    impl Fn(http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> + Clone,
> {
    let limit = limit.0;
    MapResponseLayer::new(move |response: http::Response<tonic::body::Body>| {
        let (mut parts, inner) = response.into_parts();
        rewrite(&mut parts.headers, limit);
        http::Response::from_parts(parts, tonic::body::Body::new(LimitedBody { inner, limit }))
    })
}

pin_project! {
    /// A response body whose trailers are rewritten like the headers.
    struct LimitedBody<B> {
        #[pin]
        inner: B,
        limit: usize,
    }
}

impl<B: Body> Body for LimitedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &mut polled
            && let Some(trailers) = frame.trailers_mut()
        {
            rewrite(trailers, *this.limit);
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

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    fn headers_of(status: &tonic::Status) -> HeaderMap {
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).expect("status headers");
        headers
    }

    #[test]
    fn tonics_limit_statuses_become_resource_exhausted() {
        for (message, field) in [
            (
                "Error, decoded message length too large: found 5 bytes, the limit is: 4 bytes",
                "request",
            ),
            (
                "Error, encoded message length too large: found 5 bytes, the limit is: 4 bytes",
                "response",
            ),
        ] {
            let mut headers = headers_of(&tonic::Status::out_of_range(message));
            rewrite(&mut headers, 4);
            let status = tonic::Status::from_header_map(&headers).expect("a status");
            assert_eq!(status.code(), tonic::Code::ResourceExhausted);
            let info = status.get_details_error_info().expect("ErrorInfo");
            assert_eq!(info.reason, "MESSAGE_TOO_LARGE");
            assert_eq!(
                info.metadata.get("limit_bytes").map(String::as_str),
                Some("4")
            );
            assert_eq!(
                info.metadata.get("message").map(String::as_str),
                Some(field)
            );
        }
    }

    #[test]
    fn other_statuses_pass_unchanged() {
        let expired = tonic::Status::from(crate::stream::watch::StreamError::CursorExpired);
        for status in [
            expired,
            tonic::Status::out_of_range("some other range"),
            tonic::Status::internal(DECODE_LIMIT),
        ] {
            let mut headers = headers_of(&status);
            let before = headers.clone();
            rewrite(&mut headers, 4);
            assert_eq!(headers, before, "{status:?}");
        }
    }
}
