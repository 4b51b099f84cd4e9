//! Reading a webhook body within limits: its size, the time between two
//! reads, and the memory all bodies in flight may take together.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use http::{HeaderMap, header};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::WebhookError;

/// Largest memory budget the semaphore can count (its permit limit).
const MAX_BUDGET: usize = usize::MAX >> 4;

/// The limits on webhook bodies, shared by every request.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Largest accepted body.
    pub limit: usize,
    /// Longest wait for the next piece of a body.
    pub read_timeout: Duration,
    /// Bytes reserved by the bodies being read or handled.
    in_flight: Arc<Semaphore>,
}

/// A body read whole, with its share of the memory budget (released on drop).
#[derive(Debug)]
pub struct ReadBody {
    /// The exact bytes received.
    pub bytes: Bytes,
    _reserved: OwnedSemaphorePermit,
}

impl BodyLimits {
    /// Bodies of at most `limit` bytes, at most `read_timeout` between two
    /// reads, and `budget` bytes for all bodies in flight together.
    pub fn new(limit: usize, read_timeout: Duration, budget: usize) -> Self {
        BodyLimits {
            limit,
            read_timeout,
            in_flight: Arc::new(Semaphore::new(budget.min(MAX_BUDGET))),
        }
    }

    /// Reads `body`. A declared length above the limit is refused before
    /// anything is read; a body declaring no length reserves the limit.
    pub async fn read(&self, headers: &HeaderMap, body: Body) -> Result<ReadBody, WebhookError> {
        let declared = declared_length(headers)?;
        if declared.is_some_and(|len| len > self.limit) {
            return Err(WebhookError::TooLarge(self.limit));
        }
        let reserve = declared.unwrap_or(self.limit);
        // Over the budget the provider is asked to come back rather than
        // queued: a queue would hold its connection and its bytes anyway.
        let reserved = u32::try_from(reserve)
            .ok()
            .and_then(|n| self.in_flight.clone().try_acquire_many_owned(n).ok())
            .ok_or(WebhookError::Overloaded)?;

        let mut body = body;
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
        loop {
            let frame = tokio::time::timeout(self.read_timeout, body.frame())
                .await
                .map_err(|_| WebhookError::BodyTimeout)?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|_| WebhookError::BadBody)?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > self.limit {
                    return Err(WebhookError::TooLarge(self.limit));
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(ReadBody {
            bytes: Bytes::from(bytes),
            _reserved: reserved,
        })
    }
}

/// The `Content-Length`, if the request has one; a malformed one is a bad
/// body (hyper refuses most before they reach us).
fn declared_length(headers: &HeaderMap) -> Result<Option<usize>, WebhookError> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        // Larger than memory can hold is larger than any limit.
        .map(|len| Some(usize::try_from(len).unwrap_or(usize::MAX)))
        .ok_or(WebhookError::BadBody)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(len: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(len) = len {
            headers.insert(header::CONTENT_LENGTH, len.parse().expect("value"));
        }
        headers
    }

    #[tokio::test]
    async fn reads_a_body_within_the_limits() {
        let limits = BodyLimits::new(16, Duration::from_secs(5), 64);
        let read = limits
            .read(&headers(Some("5")), Body::from("hello"))
            .await
            .expect("read");
        assert_eq!(&read.bytes[..], b"hello");
    }

    #[tokio::test]
    async fn refuses_oversized_bodies_declared_or_not() {
        let limits = BodyLimits::new(4, Duration::from_secs(5), 64);
        let declared = limits.read(&headers(Some("5")), Body::from("hello")).await;
        assert!(matches!(declared, Err(WebhookError::TooLarge(4))));
        let undeclared = limits.read(&headers(None), Body::from("hello")).await;
        assert!(matches!(undeclared, Err(WebhookError::TooLarge(4))));
    }

    #[tokio::test]
    async fn the_memory_budget_is_shared_and_given_back() {
        let limits = BodyLimits::new(10, Duration::from_secs(5), 15);
        let first = limits
            .read(&headers(Some("10")), Body::from("0123456789"))
            .await
            .expect("first");
        let second = limits
            .read(&headers(Some("10")), Body::from("0123456789"))
            .await;
        assert!(matches!(second, Err(WebhookError::Overloaded)));
        drop(first);
        limits
            .read(&headers(Some("10")), Body::from("0123456789"))
            .await
            .expect("budget back once the first is done");
    }
}
