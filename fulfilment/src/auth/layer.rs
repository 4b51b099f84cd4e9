//! The tower layer that authenticates every gRPC call once, before routing:
//! a verified [`Principal`] goes into the request's extensions for the
//! handlers; a missing or bad token is answered UNAUTHENTICATED here.
//! Health and reflection stay open (probes, `grpcurl list`). Most calls are
//! decided at once; one whose token names a `kid` the JWKS cache lacks
//! waits for the refresh (bounded) before it goes on.

use std::task::{Context, Poll};

use futures::future::{BoxFuture, Either, Ready, ready};
use tower::{Layer, Service};

use super::{AuthError, Authentication, Authenticator, Principal};

/// Services callable without a token.
const OPEN_SERVICES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Authenticates calls with an [`Authenticator`].
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Authenticator,
}

impl AuthLayer {
    /// A layer checking tokens with `auth` (off: everyone passes).
    pub fn new(auth: Authenticator) -> Self {
        AuthLayer { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Authenticate<S> {
    inner: S,
    auth: Authenticator,
}

type Answer<S, B> =
    Result<<S as Service<http::Request<B>>>::Response, <S as Service<http::Request<B>>>::Error>;

impl<S, B> Service<http::Request<B>> for Authenticate<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Either<S::Future, Ready<Answer<S, B>>>, BoxFuture<'static, Answer<S, B>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if OPEN_SERVICES.iter().any(|open| path.starts_with(open)) {
            return Either::Left(Either::Left(self.inner.call(request)));
        }
        match self.auth.authenticate(request.headers()) {
            Authentication::Done(Ok(principal)) => {
                request.extensions_mut().insert(principal);
                Either::Left(Either::Left(self.inner.call(request)))
            }
            Authentication::Done(Err(err)) => {
                Either::Left(Either::Right(ready(Ok(refuse(path, err)))))
            }
            Authentication::Refresh(outcome) => {
                // The service that was polled ready goes into the future;
                // a clone takes its place for the next call.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Either::Right(Box::pin(async move {
                    let principal: Result<Principal, AuthError> = outcome.await;
                    match principal {
                        Ok(principal) => {
                            request.extensions_mut().insert(principal);
                            inner.call(request).await
                        }
                        Err(err) => Ok(refuse(request.uri().path(), err)),
                    }
                }))
            }
        }
    }
}

fn refuse(method: &str, err: AuthError) -> http::Response<tonic::body::Body> {
    log_refusal(method, &err);
    tonic::Status::from(err).into_http()
}

fn log_refusal(method: &str, err: &AuthError) {
    match err {
        // Routine for scanners and misconfigured clients.
        AuthError::TokenMissing => tracing::debug!(method, "call refused: no bearer token"),
        AuthError::TokenInvalid(problem) => {
            tracing::info!(
                method,
                problem = problem.as_str(),
                "call refused: invalid token"
            );
        }
        _ => tracing::info!(method, error = %err, "call refused"),
    }
}
