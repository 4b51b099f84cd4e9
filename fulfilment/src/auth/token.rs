//! Verifying a bearer JWT and reading the principal from its claims.
//!
//! A token must be signed by a configured key of the algorithm family its
//! header names (HS256 with the shared secret; RS*/PS* with an RSA public
//! key; EdDSA with an Ed25519 one; ES256/ES384 with a P-256/P-384 key from
//! a JWKS), come from the configured issuer, name the configured audience,
//! and carry `exp`; `nbf` is honoured. A small leeway absorbs clock skew. A
//! `kid` in the header picks the keys labelled with it; without one (or
//! with an unknown one) every key of the family is tried. With a JWKS URL,
//! an unknown `kid` first refreshes the JWKS ([`super::jwks`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::jwks::JwksSource;
use super::keys::VerificationKey;
use super::{AuthError, Caller, InvalidToken, Principal, Scope, Scopes};

/// The claim naming an app client's customer unless configured otherwise.
pub const DEFAULT_CUSTOMER_CLAIM: &str = "sub";

/// Checks tokens against the configured keys, issuer and audience.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<VerificationKey>,
    jwks: Option<Arc<JwksSource>>,
    issuer: String,
    audience: String,
    leeway: Duration,
    customer_claim: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys)
            .field("jwks", &self.jwks)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .field("customer_claim", &self.customer_claim)
            .finish()
    }
}

/// The claims Fulfil reads; `iss`, `aud`, `exp` and `nbf` are checked by
/// the validation. The others are kept for a configured customer claim.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    scope: Option<ScopeClaim>,
    #[serde(default)]
    scp: Option<ScopeClaim>,
    #[serde(flatten)]
    other: HashMap<String, serde_json::Value>,
}

/// `scope` is a space-separated string (RFC 8693); some issuers send an
/// array, usually as `scp`. Both claims, in either form, are read.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    Text(String),
    List(Vec<String>),
}

impl ScopeClaim {
    fn words(&self) -> Vec<&str> {
        match self {
            ScopeClaim::Text(text) => text.split_whitespace().collect(),
            ScopeClaim::List(items) => items.iter().flat_map(|i| i.split_whitespace()).collect(),
        }
    }
}

impl Verifier {
    /// A verifier over `keys` (at least one) for tokens from `issuer` to
    /// `audience`.
    pub fn new(
        keys: Vec<VerificationKey>,
        issuer: String,
        audience: String,
        leeway: Duration,
    ) -> Self {
        Verifier {
            keys,
            jwks: None,
            issuer,
            audience,
            leeway,
            customer_claim: DEFAULT_CUSTOMER_CLAIM.to_owned(),
        }
    }

    /// Also trusts the keys of `source`.
    pub fn with_jwks(mut self, source: Arc<JwksSource>) -> Self {
        self.jwks = Some(source);
        self
    }

    /// App clients' customer id comes from `claim` (a top-level string
    /// claim) instead of `sub`; empty keeps `sub`.
    pub fn with_customer_claim(mut self, claim: &str) -> Self {
        let claim = claim.trim();
        if !claim.is_empty() {
            claim.clone_into(&mut self.customer_claim);
        }
        self
    }

    /// The configured keys (kinds and labels only are of interest); JWKS
    /// keys are in [`Verifier::jwks`].
    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    /// The JWKS source, if one is configured.
    pub fn jwks(&self) -> Option<&Arc<JwksSource>> {
        self.jwks.as_ref()
    }

    /// The claim naming an app client's customer.
    pub fn customer_claim(&self) -> &str {
        &self.customer_claim
    }

    /// The expected issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The expected audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = self.leeway.as_secs();
        validation
    }

    /// The `kid` of a token that only a JWKS refresh could verify: one the
    /// keys at hand do not label. None without a JWKS, for tokens without
    /// a `kid`, and for malformed ones (verifying them says why).
    pub fn unknown_kid(&self, token: &str) -> Option<String> {
        let jwks = self.jwks.as_ref()?;
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        let known =
            self.keys.iter().any(|k| k.kid.as_deref() == Some(&kid)) || jwks.keys().knows(&kid);
        (!known).then_some(kid)
    }

    /// The principal a token stands for, or why it is refused, with the
    /// keys at hand. Stale JWKS keys start a refresh in the background.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidToken::Malformed)?;
        let jwks = self.jwks.as_ref().map(|source| {
            source.refresh_if_stale();
            source.keys()
        });
        let all = self
            .keys
            .iter()
            .chain(jwks.iter().flat_map(|set| set.keys.iter()));
        let family: Vec<&VerificationKey> = all.filter(|k| k.accepts(header.alg)).collect();
        if family.is_empty() {
            return Err(InvalidToken::Algorithm.into());
        }
        let labelled: Vec<&VerificationKey> = match header.kid.as_deref() {
            Some(kid) => family
                .iter()
                .copied()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None => Vec::new(),
        };
        let candidates = if labelled.is_empty() {
            family
        } else {
            labelled
        };
        let validation = self.validation(header.alg);
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return principal(data.claims, &self.customer_claim),
                // Another key may have signed it.
                Err(err)
                    if matches!(
                        err.kind(),
                        ErrorKind::InvalidSignature
                            | ErrorKind::InvalidAlgorithm
                            | ErrorKind::InvalidKeyFormat
                            | ErrorKind::InvalidRsaKey(_)
                            | ErrorKind::InvalidEcdsaKey
                            | ErrorKind::InvalidEddsaKey
                    ) => {}
                // The signature verified (claims are checked after it), so
                // this is the answer.
                Err(err) => return Err(refusal(err.kind())),
            }
        }
        Err(InvalidToken::Signature.into())
    }

    /// [`Verifier::verify`], after a JWKS refresh when the token names a
    /// `kid` the keys at hand lack (rate-limited, waiting at most the fetch
    /// timeout).
    pub async fn verify_fresh(&self, token: &str) -> Result<Principal, AuthError> {
        if let (Some(kid), Some(jwks)) = (self.unknown_kid(token), &self.jwks) {
            jwks.refresh_for_unknown_kid(&kid).await;
        }
        self.verify(token)
    }
}

fn refusal(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::TokenExpired,
        ErrorKind::InvalidIssuer => InvalidToken::Issuer.into(),
        ErrorKind::InvalidAudience => InvalidToken::Audience.into(),
        ErrorKind::ImmatureSignature => InvalidToken::NotYetValid.into(),
        ErrorKind::MissingRequiredClaim(claim) => {
            InvalidToken::MissingClaim(match claim.as_str() {
                "exp" => "exp",
                "iss" => "iss",
                "aud" => "aud",
                _ => "a required claim",
            })
            .into()
        }
        ErrorKind::Json(_) => InvalidToken::Claims.into(),
        _ => InvalidToken::Malformed.into(),
    }
}

fn principal(claims: Claims, customer_claim: &str) -> Result<Principal, AuthError> {
    let scopes: Scopes = [&claims.scope, &claims.scp]
        .into_iter()
        .flatten()
        .flat_map(ScopeClaim::words)
        .filter_map(Scope::parse)
        .collect();
    let expires_at = claims
        .exp
        .filter(|exp| exp.is_finite() && *exp >= 0.0)
        .and_then(|exp| UNIX_EPOCH.checked_add(Duration::from_secs_f64(exp.min(1e12))));
    let subject = claims.sub.filter(|s| !s.is_empty());
    let caller = if scopes.is_empty() {
        // An app client is its customer: without the claim it is nobody,
        // and with one that is not an identifier no order could be its.
        let customer = if customer_claim == DEFAULT_CUSTOMER_CLAIM {
            subject.ok_or(InvalidToken::MissingClaim(DEFAULT_CUSTOMER_CLAIM))?
        } else {
            match claims.other.get(customer_claim) {
                Some(serde_json::Value::String(id)) if !id.is_empty() => id.clone(),
                Some(serde_json::Value::String(_) | serde_json::Value::Null) | None => {
                    return Err(InvalidToken::MissingClaim("the customer claim").into());
                }
                Some(_) => return Err(InvalidToken::Claims.into()),
            }
        };
        let customer =
            fulfil_proto::Identifier::parse_owned(customer).map_err(|_| InvalidToken::Claims)?;
        Caller::Customer(customer.into_string())
    } else {
        Caller::Service {
            subject: subject.unwrap_or_default(),
            scopes,
        }
    };
    Ok(Principal { caller, expires_at })
}

/// Seconds since the Unix epoch, for minting tokens.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::auth::keys::hs256_key;

    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

    fn verifier() -> Verifier {
        let key = hs256_key(SECRET).into_iter().collect();
        Verifier::new(key, "iss".into(), "aud".into(), Duration::from_secs(5))
    }

    fn token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
        )
        .unwrap_or_default()
    }

    fn claims(extra: serde_json::Value) -> serde_json::Value {
        let mut base = serde_json::json!({"iss": "iss", "aud": "aud", "exp": unix_now() + 60});
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        base
    }

    #[test]
    fn scopes_come_from_scope_or_scp_in_either_form() {
        let v = verifier();
        for extra in [
            serde_json::json!({"scope": "openid orders:read"}),
            serde_json::json!({"scp": ["orders:read"]}),
            serde_json::json!({"scope": ["orders:read profile"]}),
        ] {
            let p = v.verify(&token(claims(extra))).expect("valid");
            assert!(
                matches!(p.caller, Caller::Service { scopes, .. } if scopes.grant(Scope::OrdersRead))
            );
        }
        let p = v
            .verify(&token(claims(
                serde_json::json!({"sub": "u1", "scope": "openid"}),
            )))
            .expect("valid");
        assert_eq!(p.caller, Caller::Customer("u1".into()));
        assert!(p.expires_at.is_some());
    }

    #[test]
    fn refusals_name_the_problem() {
        let v = verifier();
        let mut no_exp = claims(serde_json::json!({"sub": "u"}));
        if let Some(map) = no_exp.as_object_mut() {
            map.remove("exp");
        }
        assert_eq!(
            v.verify(&token(no_exp)),
            Err(InvalidToken::MissingClaim("exp").into())
        );
        assert_eq!(
            v.verify(&token(claims(serde_json::json!({"exp": unix_now() - 60})))),
            Err(AuthError::TokenExpired)
        );
        assert_eq!(
            v.verify(&token(claims(
                serde_json::json!({"sub": "u", "iss": "other"})
            ))),
            Err(InvalidToken::Issuer.into())
        );
        assert_eq!(
            v.verify(&token(claims(
                serde_json::json!({"sub": "u", "aud": "other"})
            ))),
            Err(InvalidToken::Audience.into())
        );
        assert_eq!(
            v.verify(&token(claims(
                serde_json::json!({"sub": "u", "nbf": unix_now() + 60})
            ))),
            Err(InvalidToken::NotYetValid.into())
        );
        assert_eq!(
            v.verify(&token(claims(serde_json::json!({})))),
            Err(InvalidToken::MissingClaim("sub").into())
        );
        assert_eq!(
            v.verify(&token(claims(serde_json::json!({"sub": "cus\u{0}x"})))),
            Err(InvalidToken::Claims.into()),
            "an app client's sub is a customer id, so an identifier"
        );
        assert_eq!(v.verify("not.a.jwt"), Err(InvalidToken::Malformed.into()));
        // Within the leeway an expired token still passes.
        assert!(
            v.verify(&token(claims(
                serde_json::json!({"sub": "u", "exp": unix_now() - 2})
            )))
            .is_ok()
        );
        let other = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(serde_json::json!({"sub": "u"})),
            &EncodingKey::from_secret(b"another-secret-another-secret-another").expect("key"),
        )
        .unwrap_or_default();
        assert_eq!(v.verify(&other), Err(InvalidToken::Signature.into()));
    }
}
