//! Why a call is refused. `api::status` turns these into UNAUTHENTICATED
//! and PERMISSION_DENIED with an ErrorInfo reason. No variant carries the
//! token, a claim value or key material.

use super::Scope;

/// A refused call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization: Bearer …` metadata.
    #[error("this call needs a bearer token (authorization: Bearer <JWT>)")]
    TokenMissing,
    /// The token cannot be trusted.
    #[error("the bearer token is invalid: {0}")]
    TokenInvalid(InvalidToken),
    /// The token was valid once; its `exp` has passed.
    #[error("the bearer token has expired; get a new one")]
    TokenExpired,
    /// The caller is known but lacks the scope the call needs.
    #[error("this call needs the scope {}", .0.as_str())]
    ScopeRequired(super::Scope),
    /// An app client named an order or a customer other than its own.
    #[error("app clients may only reach their own orders and entitlements")]
    CustomerMismatch,
}

impl AuthError {
    /// The scope a refused call needed, if that is why.
    pub fn required_scope(&self) -> Option<Scope> {
        match self {
            AuthError::ScopeRequired(scope) => Some(*scope),
            _ => None,
        }
    }
}

/// What is wrong with an invalid token, for the caller and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    /// The metadata is not `Bearer <token>`.
    #[error("the authorization metadata is not \"Bearer <JWT>\"")]
    NotBearer,
    /// Not three base64url parts with a JSON header.
    #[error("it is not a well-formed JWT")]
    Malformed,
    /// Signed with an algorithm no configured key accepts (e.g. `none`, or
    /// HS256 when only public keys are configured).
    #[error("its signing algorithm is not accepted")]
    Algorithm,
    /// No configured key verifies the signature.
    #[error("its signature does not verify with any configured key")]
    Signature,
    /// `iss` is not the configured issuer.
    #[error("its issuer is not accepted")]
    Issuer,
    /// `aud` does not name this service.
    #[error("its audience does not include this service")]
    Audience,
    /// `nbf` is in the future.
    #[error("it is not valid yet")]
    NotYetValid,
    /// A required claim is absent.
    #[error("it lacks the claim {0}")]
    MissingClaim(&'static str),
    /// The claims are not the expected JSON types.
    #[error("its claims are malformed")]
    Claims,
}

impl InvalidToken {
    /// A stable word for ErrorInfo metadata (`problem`) and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidToken::NotBearer => "not_bearer",
            InvalidToken::Malformed => "malformed",
            InvalidToken::Algorithm => "algorithm",
            InvalidToken::Signature => "signature",
            InvalidToken::Issuer => "issuer",
            InvalidToken::Audience => "audience",
            InvalidToken::NotYetValid => "not_yet_valid",
            InvalidToken::MissingClaim(_) => "missing_claim",
            InvalidToken::Claims => "claims",
        }
    }
}

impl From<InvalidToken> for AuthError {
    fn from(problem: InvalidToken) -> Self {
        AuthError::TokenInvalid(problem)
    }
}
