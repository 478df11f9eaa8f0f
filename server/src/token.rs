//! `streamhub token`: prints a JWT signed with the configured key, for demos and tests.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::TokenArgs;

/// The claims StreamHub reads: `sub` (user id), `login`, `roles`.
#[derive(Debug, Serialize)]
struct Claims<'a> {
    sub: &'a str,
    login: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    roles: &'a [String],
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// Signs a token for `args` and returns it.
pub fn sign(args: &TokenArgs) -> anyhow::Result<String> {
    let (alg, key) = match (&args.jwt_secret, &args.jwt_private_key_file) {
        (Some(secret), None) => {
            if secret.len() < 32 {
                bail!("STREAMHUB_JWT_SECRET must be at least 32 bytes (the server refuses shorter ones)");
            }
            (Algorithm::HS256, EncodingKey::from_secret(secret.as_bytes()))
        }
        (None, Some(path)) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the private key {}", path.display()))?;
            if let Ok(key) = EncodingKey::from_rsa_pem(&pem) {
                (Algorithm::RS256, key)
            } else if let Ok(key) = EncodingKey::from_ec_pem(&pem) {
                (Algorithm::ES256, key)
            } else {
                bail!("{} is neither an RSA nor an EC P-256 private key in PEM", path.display());
            }
        }
        _ => bail!(
            "no signing key: set STREAMHUB_JWT_SECRET (HS256) or STREAMHUB_JWT_PRIVATE_KEY_FILE (RS256/ES256)"
        ),
    };
    for role in &args.roles {
        if role != "admin" {
            bail!("unknown role `{role}`: the only role is `admin`");
        }
    }
    sign_with(alg, &key, &args.sub, &args.login, &args.roles, args.ttl)
}

/// Signs a token for a user with `key`, valid from now for `ttl`.
pub fn sign_with(
    alg: Algorithm,
    key: &EncodingKey,
    sub: &str,
    login: &str,
    roles: &[String],
    ttl: std::time::Duration,
) -> anyhow::Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let claims = Claims {
        sub,
        login,
        roles,
        iat: now,
        nbf: now,
        exp: now + ttl.as_secs(),
    };
    encode(&Header::new(alg), &claims, key).context("signing the token")
}

/// Prints the token on stdout.
pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let token = sign(args)?;
    writeln!(std::io::stdout(), "{token}").context("writing the token")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};
    use std::time::Duration;

    const SECRET: &str = "a test secret of at least 32 bytes";

    fn args() -> TokenArgs {
        TokenArgs {
            sub: "u1".into(),
            login: "alice".into(),
            roles: vec!["admin".into()],
            ttl: Duration::from_secs(3600),
            jwt_secret: Some(SECRET.into()),
            jwt_private_key_file: None,
        }
    }

    #[test]
    fn hs256_token_carries_the_claims() {
        let token = sign(&args()).unwrap();
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        let data =
            decode::<serde_json::Value>(&token, &DecodingKey::from_secret(SECRET.as_bytes()), &v)
                .unwrap();
        assert_eq!(data.claims["sub"], "u1");
        assert_eq!(data.claims["login"], "alice");
        assert_eq!(data.claims["roles"][0], "admin");
        let exp = data.claims["exp"].as_u64().unwrap();
        let iat = data.claims["iat"].as_u64().unwrap();
        assert_eq!(exp - iat, 3600);
    }

    #[test]
    fn no_key_and_unknown_roles_are_refused() {
        let mut a = args();
        a.jwt_secret = None;
        assert!(sign(&a).unwrap_err().to_string().contains("no signing key"));
        let mut a = args();
        a.jwt_secret = Some("short".into());
        assert!(sign(&a)
            .unwrap_err()
            .to_string()
            .contains("at least 32 bytes"));
        let mut a = args();
        a.roles = vec!["root".into()];
        assert!(sign(&a).unwrap_err().to_string().contains("unknown role"));
    }
}
