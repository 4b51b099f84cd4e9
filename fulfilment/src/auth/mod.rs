//! Authorization of gRPC calls with bearer JWTs.
//!
//! Authentication happens once per call, in [`AuthLayer`]: it verifies the
//! `authorization: Bearer …` metadata and puts the [`Principal`] into the
//! request's extensions, or answers UNAUTHENTICATED. Authorization happens
//! in the handlers, where the resource is known, with one line each:
//!
//! ```ignore
//! auth::caller(&request)?.require(Scope::OrdersWrite)?;
//! ```
//!
//! - [`config`]: the `FULFIL_AUTH_*` options.
//! - [`keys`]: reading verification keys.
//! - [`jwks`]: keys from an identity provider's JWKS URL, cached and refreshed.
//! - [`token`]: verifying a JWT and reading its claims.
//! - [`principal`]: who is calling and what they may do.
//! - [`layer`]: the tower layer that authenticates every call.
//! - [`expiry`]: streams that end when their token expires.

pub mod config;
mod error;
pub mod expiry;
pub mod jwks;
pub mod keys;
pub mod layer;
pub mod principal;
pub mod token;

use std::sync::Arc;

use futures::future::BoxFuture;

pub use config::AuthArgs;
pub use error::{AuthError, InvalidToken};
pub use layer::AuthLayer;
pub use principal::{Caller, Principal, Scope, Scopes};
pub use token::Verifier;

/// Turns a call's metadata into a [`Principal`]; off lets everyone in.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    verifier: Option<Arc<Verifier>>,
}

impl Authenticator {
    /// No authorization: every caller is [`Caller::Anyone`].
    pub fn off() -> Self {
        Authenticator { verifier: None }
    }

    /// Tokens are required and checked by `verifier`.
    pub fn on(verifier: Verifier) -> Self {
        Authenticator {
            verifier: Some(Arc::new(verifier)),
        }
    }

    /// Whether tokens are required.
    pub fn is_on(&self) -> bool {
        self.verifier.is_some()
    }

    /// The verifier, when on.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_deref()
    }

    /// Fetches the JWKS, if one is configured, so the first calls need
    /// not wait for it. A failure is logged and the service starts anyway:
    /// tokens are then refused until a later refresh brings keys.
    pub async fn load_keys(&self) {
        if let Some(jwks) = self.verifier.as_deref().and_then(Verifier::jwks)
            && jwks.load().await.is_err()
        {
            tracing::warn!(
                url = %jwks.display_url(),
                "the JWKS could not be loaded at start; tokens are refused until it can be"
            );
        }
    }

    /// The principal behind a call's headers: at once when the keys at
    /// hand decide, or after a JWKS refresh when the token names a `kid`
    /// they lack.
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Authentication {
        let Some(verifier) = &self.verifier else {
            return Authentication::Done(Ok(Principal::anyone()));
        };
        let token = match headers
            .get(http::header::AUTHORIZATION)
            .ok_or(AuthError::TokenMissing)
            .and_then(bearer)
        {
            Ok(token) => token,
            Err(err) => return Authentication::Done(Err(err)),
        };
        if verifier.unknown_kid(token).is_none() {
            return Authentication::Done(verifier.verify(token));
        }
        let verifier = Arc::clone(verifier);
        let token = token.to_owned();
        Authentication::Refresh(Box::pin(async move { verifier.verify_fresh(&token).await }))
    }
}

/// What [`Authenticator::authenticate`] came to.
pub enum Authentication {
    /// Decided with the keys at hand.
    Done(Result<Principal, AuthError>),
    /// Waiting for a JWKS refresh (bounded by its fetch timeout).
    Refresh(BoxFuture<'static, Result<Principal, AuthError>>),
}

impl std::fmt::Debug for Authentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authentication::Done(result) => f.debug_tuple("Done").field(result).finish(),
            Authentication::Refresh(_) => f.write_str("Refresh(..)"),
        }
    }
}

impl Authentication {
    /// The outcome, waiting for the refresh if there is one.
    pub async fn outcome(self) -> Result<Principal, AuthError> {
        match self {
            Authentication::Done(result) => result,
            Authentication::Refresh(refresh) => refresh.await,
        }
    }
}

/// The token of an `authorization: Bearer <token>` value (the scheme in
/// any case, RFC 7235).
fn bearer(value: &http::HeaderValue) -> Result<&str, AuthError> {
    let text = value.to_str().map_err(|_| InvalidToken::NotBearer)?;
    let (scheme, token) = text.trim().split_once(' ').ok_or(InvalidToken::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(InvalidToken::NotBearer.into());
    }
    Ok(token)
}

/// The verified caller of a request. A request that did not pass through
/// [`AuthLayer`] has none and is refused, so a service mounted without the
/// layer fails closed.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<&Principal, AuthError> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or(AuthError::TokenMissing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        let ok = http::HeaderValue::from_static("bearer abc.def.ghi");
        assert_eq!(bearer(&ok), Ok("abc.def.ghi"));
        for bad in ["Basic dXNlcg==", "Bearer", "Bearer ", "abc.def.ghi"] {
            let value = http::HeaderValue::from_static(bad);
            assert_eq!(
                bearer(&value),
                Err(AuthError::TokenInvalid(InvalidToken::NotBearer)),
                "{bad}"
            );
        }
    }

    #[test]
    fn off_lets_anyone_in_and_on_needs_a_token() {
        let headers = http::HeaderMap::new();
        assert!(matches!(
            Authenticator::off().authenticate(&headers),
            Authentication::Done(Ok(p)) if p == Principal::anyone()
        ));
        let secret = "s".repeat(40);
        let key = keys::hs256_key(&secret).into_iter().collect();
        let on = Authenticator::on(Verifier::new(
            key,
            "i".into(),
            "a".into(),
            std::time::Duration::ZERO,
        ));
        assert!(matches!(
            on.authenticate(&headers),
            Authentication::Done(Err(AuthError::TokenMissing))
        ));
    }
}
