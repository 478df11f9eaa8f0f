//! Who is calling: JWT bearer tokens verified at the edge, cached per shard.
//!
//! A request without credentials is anonymous; a request with a bad token is refused
//! with `UNAUTHENTICATED`, never treated as anonymous. [`policy`] decides what a
//! verified viewer may do.

pub mod key;
pub mod policy;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Validation};
use serde::Deserialize;

use key::VerifyKey;

/// How many tokens a shard remembers; past it, expired entries go, then everything.
const CACHE_CAPACITY: usize = 4096;
/// How long a refused token is remembered as refused.
const REFUSED_FOR: Duration = Duration::from_secs(60);

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The user id (`sub`).
    pub id: Rc<str>,
    /// The login (`login`).
    pub login: Rc<str>,
    /// Whether the token grants the global `admin` role.
    pub admin: bool,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The `Authorization` header is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <token>`")]
    NotBearer,
    /// The token is not a well-formed JWT.
    #[error("the token is malformed")]
    Malformed,
    /// The token uses another algorithm than the configured key's.
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// The signature does not match the key.
    #[error("the token's signature is invalid")]
    Signature,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` has not come yet.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A required claim is missing or has the wrong type.
    #[error("the token lacks a required claim (sub, login, exp)")]
    Claims,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    login: String,
    #[serde(default)]
    roles: Vec<String>,
    exp: u64,
}

#[derive(Debug, Clone)]
enum Cached {
    Valid { viewer: Rc<Viewer>, exp: u64 },
    Refused { error: AuthError, until: u64 },
}

/// Verifies tokens for one shard and remembers the results until they expire, so the
/// hot path does not verify the same token twice.
#[derive(Debug)]
pub struct Authenticator {
    key: VerifyKey,
    validation: Validation,
    leeway: u64,
    /// Keyed by the token's bytes, so a hit needs no UTF-8 check; foldhash with a
    /// per-process random seed (SipHash cost ~420 instructions a request, measured).
    cache: RefCell<HashMap<Box<[u8]>, Cached, foldhash::fast::RandomState>>,
}

impl Authenticator {
    /// An authenticator for `key`, allowing `leeway` of clock skew on `exp` and `nbf`.
    pub fn new(key: VerifyKey, leeway: Duration) -> Authenticator {
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp", "sub"].iter().map(|s| (*s).to_owned()).collect();
        Authenticator {
            key,
            validation,
            leeway: leeway.as_secs(),
            cache: RefCell::default(),
        }
    }

    /// The viewer of an `Authorization` header value.
    pub fn authenticate(&self, header: &[u8]) -> Result<Rc<Viewer>, AuthError> {
        let token = bearer(header).ok_or(AuthError::NotBearer)?;
        self.verify(token)
    }

    /// The viewer of a token, from the cache or by verifying it.
    pub fn verify(&self, token: &[u8]) -> Result<Rc<Viewer>, AuthError> {
        let now = unix_now();
        if let Some(hit) = self.cache.borrow().get(token) {
            match hit {
                Cached::Valid { viewer, exp } if now <= exp + self.leeway => {
                    return Ok(Rc::clone(viewer))
                }
                Cached::Refused { error, until } if now < *until => return Err(error.clone()),
                _ => {}
            }
        }
        let result = std::str::from_utf8(token)
            .map_err(|_| AuthError::Malformed)
            .and_then(|t| self.verify_uncached(t));
        match &result {
            Ok((viewer, exp)) => {
                let entry = Cached::Valid {
                    viewer: Rc::clone(viewer),
                    exp: *exp,
                };
                self.remember(token, entry, now);
            }
            // A token that is not valid yet may become valid: verify it again next time.
            Err(AuthError::NotYetValid) => {}
            Err(error) => {
                let entry = Cached::Refused {
                    error: error.clone(),
                    until: now + REFUSED_FOR.as_secs(),
                };
                self.remember(token, entry, now);
            }
        }
        result.map(|(viewer, _)| viewer)
    }

    fn verify_uncached(&self, token: &str) -> Result<(Rc<Viewer>, u64), AuthError> {
        let data = decode::<Claims>(token, &self.key.key, &self.validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidSignature => AuthError::Signature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::Algorithm,
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => AuthError::Claims,
            _ => AuthError::Malformed,
        })?;
        let c = data.claims;
        if c.sub.is_empty() || c.login.is_empty() {
            return Err(AuthError::Claims);
        }
        let viewer = Viewer {
            id: c.sub.into(),
            login: c.login.into(),
            admin: c.roles.iter().any(|r| r == "admin"),
        };
        Ok((Rc::new(viewer), c.exp))
    }

    fn remember(&self, token: &[u8], entry: Cached, now: u64) {
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_CAPACITY {
            let leeway = self.leeway;
            cache.retain(|_, c| match c {
                Cached::Valid { exp, .. } => now <= *exp + leeway,
                Cached::Refused { until, .. } => now < *until,
            });
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(token.into(), entry);
    }

    /// How many tokens are remembered (for tests and metrics).
    pub fn cached(&self) -> usize {
        self.cache.borrow().len()
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
pub fn bearer(header: &[u8]) -> Option<&[u8]> {
    let header = header.trim_ascii();
    let (scheme, token) = header.split_at_checked(6)?;
    let token = token.trim_ascii_start();
    let separated = header.get(6).is_some_and(u8::is_ascii_whitespace);
    (scheme.eq_ignore_ascii_case(b"bearer") && separated && !token.is_empty()).then_some(token)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn auth() -> Authenticator {
        Authenticator::new(
            VerifyKey::from_settings(Some(SECRET), None).unwrap(),
            Duration::from_secs(30),
        )
    }

    fn token(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn claims(exp_from_now: i64) -> serde_json::Value {
        serde_json::json!({"sub": "u1", "login": "alice", "roles": ["admin"], "exp": unix_now() as i64 + exp_from_now})
    }

    #[test]
    fn a_valid_token_gives_its_viewer_and_is_cached() {
        let a = auth();
        let t = token(claims(3600));
        let v = a.verify(t.as_bytes()).unwrap();
        assert_eq!(&*v.id, "u1");
        assert_eq!(&*v.login, "alice");
        assert!(v.admin);
        assert_eq!(a.cached(), 1);
        // The second time comes from the cache: the same allocation.
        assert!(Rc::ptr_eq(&v, &a.verify(t.as_bytes()).unwrap()));
    }

    #[test]
    fn bad_tokens_are_refused_with_their_reason() {
        let a = auth();
        assert_eq!(
            a.verify(token(claims(-3600)).as_bytes()),
            Err(AuthError::Expired)
        );
        let mut c = claims(3600);
        c["nbf"] = serde_json::json!(unix_now() + 3600);
        assert_eq!(a.verify(token(c).as_bytes()), Err(AuthError::NotYetValid));
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &claims(3600),
            &EncodingKey::from_secret(b"another secret of 32 bytes......"),
        )
        .unwrap();
        assert_eq!(a.verify(forged.as_bytes()), Err(AuthError::Signature));
        let mut no_login = claims(3600);
        no_login.as_object_mut().unwrap().remove("login");
        assert_eq!(a.verify(token(no_login).as_bytes()), Err(AuthError::Claims));
        assert_eq!(a.verify(b"not.a.jwt"), Err(AuthError::Malformed));
        // alg none: header {"alg":"none"} with an empty signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsImxvZ2luIjoiYWxpY2UiLCJleHAiOjQxMDI0NDQ4MDB9.";
        assert!(a.verify(none.as_bytes()).is_err());
    }

    #[test]
    fn leeway_admits_a_token_just_past_exp() {
        let a = auth();
        assert!(a.verify(token(claims(-10)).as_bytes()).is_ok());
        assert_eq!(
            a.verify(token(claims(-100)).as_bytes()),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn bearer_scheme_is_parsed() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer   abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearerabc"), None);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            VerifyKey::from_settings(Some("short"), None),
            Err(key::KeyError::ShortSecret)
        ));
    }
}
