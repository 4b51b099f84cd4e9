//! `fulfil token`: mints an HS256 JWT for local testing, with the same
//! secret, issuer and audience the fulfilment service is configured with
//! (the `FULFIL_AUTH_JWT_*` variables by default). Prints only the token.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;

/// Options of `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The subject: an app client's customer id, or a service's name.
    #[arg(long)]
    pub sub: String,
    /// A scope to grant (repeatable, or space-separated): orders:read,
    /// orders:write, orders:admin, payment_events:write. None: an app client.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// The issuer (`iss`).
    #[arg(long, env = "FULFIL_AUTH_JWT_ISSUER")]
    pub issuer: String,
    /// The audience (`aud`).
    #[arg(long, env = "FULFIL_AUTH_JWT_AUDIENCE")]
    pub audience: String,
    /// Lifetime: a number with s, m, h or d (e.g. 15m, 12h).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// Environment variable holding the HS256 secret.
    #[arg(
        long,
        default_value = "FULFIL_AUTH_JWT_HS256_SECRET",
        conflicts_with = "secret_file"
    )]
    pub secret_env: String,
    /// File holding the HS256 secret (its first line).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
}

/// Scopes the service knows; others are refused to catch typos.
const KNOWN_SCOPES: [&str; 4] = [
    "orders:read",
    "orders:write",
    "orders:admin",
    "payment_events:write",
];

/// "90s", "15m", "12h", "7d" (or plain seconds).
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with s, m, h or d"))?;
    let seconds = match unit {
        "s" => number,
        "m" => number.saturating_mul(60),
        "h" => number.saturating_mul(3600),
        "d" => number.saturating_mul(86_400),
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    if seconds == 0 {
        return Err("the lifetime must be positive".to_owned());
    }
    Ok(Duration::from_secs(seconds))
}

fn secret(args: &TokenArgs) -> anyhow::Result<String> {
    let secret = match &args.secret_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --secret-file {}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        None => std::env::var(&args.secret_env).with_context(|| {
            format!(
                "{} is not set: give the HS256 secret there, or use --secret-env / --secret-file",
                args.secret_env
            )
        })?,
    };
    if secret.len() < 32 {
        bail!(
            "the HS256 secret must be at least 32 bytes (the fulfilment service refuses shorter ones)"
        );
    }
    Ok(secret)
}

/// The claims of the token `args` describe, issued at `now`.
pub fn claims(args: &TokenArgs, now: SystemTime) -> anyhow::Result<serde_json::Value> {
    let scopes: Vec<&str> = args
        .scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .collect();
    if let Some(unknown) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(s)) {
        bail!(
            "unknown scope {unknown:?}; known: {}",
            KNOWN_SCOPES.join(", ")
        );
    }
    if args.sub.trim().is_empty() {
        bail!("--sub must not be empty");
    }
    let iat = now.duration_since(UNIX_EPOCH)?.as_secs();
    let mut claims = serde_json::json!({
        "iss": args.issuer,
        "aud": args.audience,
        "sub": args.sub,
        "iat": iat,
        "nbf": iat,
        "exp": iat.saturating_add(args.ttl.as_secs()),
    });
    if !scopes.is_empty()
        && let Some(map) = claims.as_object_mut()
    {
        map.insert("scope".into(), scopes.join(" ").into());
    }
    Ok(claims)
}

/// Prints the token.
pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let claims = claims(args, SystemTime::now())?;
    let key = jsonwebtoken::EncodingKey::from_secret(secret(args)?.as_bytes())?;
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    println!("{}", jsonwebtoken::encode(&header, &claims, &key)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> TokenArgs {
        TokenArgs {
            sub: "user_42".into(),
            scopes: Vec::new(),
            issuer: "fulfil-local".into(),
            audience: "fulfil".into(),
            ttl: Duration::from_secs(600),
            secret_env: "UNUSED".into(),
            secret_file: None,
        }
    }

    #[test]
    fn ttl_accepts_units() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_ttl("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("5w").is_err());
        assert!(parse_ttl("h").is_err());
    }

    #[test]
    fn claims_hold_scopes_only_for_services() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let app = claims(&args(), now).expect("claims");
        assert_eq!(app["sub"], "user_42");
        assert_eq!(app["exp"], 1_600);
        assert!(app.get("scope").is_none());
        let service = TokenArgs {
            scopes: vec!["orders:read orders:write".into(), "orders:admin".into()],
            ..args()
        };
        let claims = claims(&service, now).expect("claims");
        assert_eq!(claims["scope"], "orders:read orders:write orders:admin");
        let typo = TokenArgs {
            scopes: vec!["order:read".into()],
            ..args()
        };
        assert!(super::claims(&typo, now).is_err());
    }
}
