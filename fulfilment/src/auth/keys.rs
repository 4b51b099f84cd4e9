//! Reading JWT verification keys: the PEM public keys file
//! (`FULFIL_AUTH_JWT_PUBLIC_KEYS_FILE`) and the HS256 shared secret. Keys
//! from a JWKS URL are read in [`super::jwks`].
//!
//! The file holds one or more `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY`
//! (PKCS#1) blocks, RSA (at least 2048 bits) or Ed25519. A line
//! `kid: NAME` (or `# kid: NAME`) before a block names that key, so a token
//! whose header carries that `kid` is checked against it first. Other text
//! between blocks is ignored. Private keys are refused: only public keys
//! belong on the server.

use jsonwebtoken::{Algorithm, DecodingKey};

/// Shortest accepted HS256 secret, in bytes (RFC 7518 3.2: a key of at
/// least the hash size).
pub const MIN_HS256_SECRET_LEN: usize = 32;
/// Smallest accepted RSA modulus, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The family of a verification key, which fixes the algorithms it
/// verifies: a key never verifies a token of another family, so an HS256
/// token "signed" with an RSA public key's bytes finds no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The shared secret: HS256.
    Hs256,
    /// An RSA public key: RS256/384/512 and PS256/384/512.
    Rsa,
    /// An Ed25519 public key: EdDSA.
    Ed25519,
    /// A P-256 public key: ES256 (from a JWKS only).
    EcP256,
    /// A P-384 public key: ES384 (from a JWKS only).
    EcP384,
}

impl KeyKind {
    /// Whether this key verifies tokens signed with `alg`.
    pub fn accepts(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Hs256 => alg == HS256,
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::Ed25519 => alg == EdDSA,
            KeyKind::EcP256 => alg == ES256,
            KeyKind::EcP384 => alg == ES384,
        }
    }
}

/// One key that verifies tokens.
#[derive(Clone)]
pub struct VerificationKey {
    /// The name a token's `kid` selects it by, if labelled.
    pub kid: Option<String>,
    /// Which algorithms it verifies.
    pub kind: KeyKind,
    /// The one algorithm it verifies, when its source names one (a JWK's
    /// `alg`); otherwise every algorithm of its kind.
    pub alg: Option<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

impl VerificationKey {
    /// Whether this key verifies tokens signed with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.accepts(alg) && self.alg.is_none_or(|only| only == alg)
    }
}

impl std::fmt::Debug for VerificationKey {
    // Key material stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why the keys file cannot be used. Messages give line numbers, never
/// key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// No PEM block at all.
    #[error("holds no PEM public key")]
    NoKeys,
    /// A private key: it must not be on the server.
    #[error("line {0}: a private key; put only public keys in this file")]
    PrivateKey(usize),
    /// A PEM block of another type (a certificate, …).
    #[error("line {line}: a {label:?} block; expected \"PUBLIC KEY\" or \"RSA PUBLIC KEY\"")]
    Unsupported {
        /// Where the block starts.
        line: usize,
        /// Its label.
        label: String,
    },
    /// Not a parsable RSA or Ed25519 public key.
    #[error("line {0}: not a valid RSA or Ed25519 public key")]
    Invalid(usize),
    /// An RSA key too small to trust.
    #[error("line {line}: RSA key of {bits} bits; at least {MIN_RSA_BITS} are required")]
    WeakRsa {
        /// Where the block starts.
        line: usize,
        /// Its modulus size.
        bits: usize,
    },
    /// A BEGIN line without its END.
    #[error("line {0}: PEM block without an END line")]
    Unterminated(usize),
}

/// Parses the keys file's text.
pub fn parse_public_keys(text: &str) -> Result<Vec<VerificationKey>, KeyFileError> {
    let mut keys = Vec::new();
    let mut kid: Option<String> = None;
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let line = line.trim();
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            let start = index + 1;
            let mut block = String::from(line);
            block.push('\n');
            let mut closed = false;
            for (_, body) in lines.by_ref() {
                let body = body.trim();
                block.push_str(body);
                block.push('\n');
                if body.starts_with("-----END ") {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(KeyFileError::Unterminated(start));
            }
            let (kind, key) = public_key(label, &block, start)?;
            keys.push(VerificationKey {
                kid: kid.take(),
                kind,
                alg: None,
                key,
            });
        } else if let Some(name) = line
            .trim_start_matches('#')
            .trim()
            .strip_prefix("kid:")
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            kid = Some(name.to_owned());
        }
    }
    if keys.is_empty() {
        return Err(KeyFileError::NoKeys);
    }
    Ok(keys)
}

fn public_key(
    label: &str,
    block: &str,
    line: usize,
) -> Result<(KeyKind, DecodingKey), KeyFileError> {
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    use rsa::pkcs1::{DecodeRsaPublicKey as _, EncodeRsaPublicKey as _};
    use rsa::traits::PublicKeyParts as _;

    let rsa = match label {
        "PUBLIC KEY" => match rsa::PublicKey::from_public_key_pem(block) {
            Ok(key) => Some(key),
            Err(_) => {
                let ed = ed25519_dalek::VerifyingKey::from_public_key_pem(block)
                    .map_err(|_| KeyFileError::Invalid(line))?;
                return Ok((KeyKind::Ed25519, DecodingKey::from_ed_der(ed.as_bytes())));
            }
        },
        "RSA PUBLIC KEY" => rsa::PublicKey::from_pkcs1_pem(block).ok(),
        label if label.contains("PRIVATE KEY") => return Err(KeyFileError::PrivateKey(line)),
        label => {
            return Err(KeyFileError::Unsupported {
                line,
                label: label.to_owned(),
            });
        }
    };
    let rsa = rsa.ok_or(KeyFileError::Invalid(line))?;
    let bits = rsa.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(KeyFileError::WeakRsa { line, bits });
    }
    let der = rsa
        .to_pkcs1_der()
        .map_err(|_| KeyFileError::Invalid(line))?;
    Ok((KeyKind::Rsa, DecodingKey::from_rsa_der(der.as_bytes())))
}

/// The HS256 key from the shared secret (its UTF-8 bytes, used as they
/// are), or None when it is too short to be safe.
pub fn hs256_key(secret: &str) -> Option<VerificationKey> {
    if secret.len() < MIN_HS256_SECRET_LEN {
        return None;
    }
    let key = DecodingKey::from_secret(secret.as_bytes()).ok()?;
    Some(VerificationKey {
        kid: None,
        kind: KeyKind::Hs256,
        alg: None,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_public_key() {
        assert_eq!(parse_public_keys("").err(), Some(KeyFileError::NoKeys));
        assert_eq!(
            parse_public_keys("x\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .err(),
            Some(KeyFileError::PrivateKey(2))
        );
        assert!(matches!(
            parse_public_keys("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
            Err(KeyFileError::Unsupported { line: 1, .. })
        ));
        assert_eq!(
            parse_public_keys("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").err(),
            Some(KeyFileError::Invalid(1))
        );
        assert_eq!(
            parse_public_keys("-----BEGIN PUBLIC KEY-----\nAAAA\n").err(),
            Some(KeyFileError::Unterminated(1))
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(hs256_key(&"x".repeat(MIN_HS256_SECRET_LEN - 1)).is_none());
        assert!(hs256_key(&"x".repeat(MIN_HS256_SECRET_LEN)).is_some());
    }

    #[test]
    fn key_kinds_fix_their_algorithms() {
        assert!(KeyKind::Hs256.accepts(Algorithm::HS256));
        assert!(!KeyKind::Rsa.accepts(Algorithm::HS256));
        assert!(!KeyKind::Ed25519.accepts(Algorithm::HS256));
        assert!(KeyKind::Rsa.accepts(Algorithm::RS256));
        assert!(!KeyKind::Hs256.accepts(Algorithm::RS256));
        assert!(KeyKind::Ed25519.accepts(Algorithm::EdDSA));
        assert!(KeyKind::EcP256.accepts(Algorithm::ES256));
        assert!(!KeyKind::EcP256.accepts(Algorithm::ES384));
        assert!(!KeyKind::EcP384.accepts(Algorithm::ES256));
    }
}
