//! Streams that end when the caller's token expires.
//!
//! A token is checked when a stream starts; a stream may then run for
//! hours. So that an expired (or revoked and no longer renewed) token does
//! not keep reading changes, the stream ends with UNAUTHENTICATED
//! (`TOKEN_EXPIRED`) at the token's `exp`; the client reconnects with a
//! fresh token and its cursor.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use pin_project_lite::pin_project;
use tokio_stream::Stream;
use tonic::Status;

use super::AuthError;

pin_project! {
    /// `inner` until `deadline`, then one UNAUTHENTICATED error.
    pub struct UntilExpiry<S> {
        #[pin]
        inner: S,
        #[pin]
        deadline: tokio::time::Sleep,
        done: bool,
    }
}

impl<S, M> Stream for UntilExpiry<S>
where
    S: Stream<Item = Result<M, Status>>,
{
    type Item = Result<M, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if this.deadline.poll(cx).is_ready() {
            *this.done = true;
            return Poll::Ready(Some(Err(AuthError::TokenExpired.into())));
        }
        match this.inner.poll_next(cx) {
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

/// `stream`, ending at `expires_at` if there is one.
pub fn until_expiry<S, M>(
    stream: S,
    expires_at: Option<SystemTime>,
) -> Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>
where
    S: Stream<Item = Result<M, Status>> + Send + 'static,
    M: 'static,
{
    let Some(at) = expires_at else {
        return Box::pin(stream);
    };
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    Box::pin(UntilExpiry {
        inner: stream,
        deadline: tokio::time::sleep(left),
        done: false,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_stream::StreamExt;

    use super::*;

    #[tokio::test]
    async fn ends_with_unauthenticated_at_expiry() {
        let endless = tokio_stream::iter(std::iter::repeat_with(|| Ok::<u8, Status>(1)))
            .throttle(Duration::from_millis(10));
        let expires = SystemTime::now() + Duration::from_millis(100);
        let items: Vec<Result<u8, Status>> = until_expiry(endless, Some(expires)).collect().await;
        let last = items
            .last()
            .and_then(|r| r.as_ref().err())
            .map(Status::code);
        assert_eq!(last, Some(tonic::Code::Unauthenticated));
        assert!(items.len() > 1);
    }

    #[tokio::test]
    async fn a_stream_that_ends_first_ends_cleanly() {
        let short = tokio_stream::iter([Ok::<u8, Status>(1), Ok(2)]);
        let expires = SystemTime::now() + Duration::from_secs(60);
        let items: Vec<_> = until_expiry(short, Some(expires)).collect().await;
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(Result::is_ok));
    }
}
