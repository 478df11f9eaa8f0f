//! The key tokens are verified with: an HS256 secret, or an RS256/ES256 public key in
//! PEM. The algorithm is fixed by the key, so a token cannot choose it (`alg: none` and
//! algorithm confusion are refused). With no key configured, a random secret is made for
//! the process.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

/// Why the configured key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is neither an RSA nor an EC public key.
    #[error("{0} is neither an RSA nor an EC P-256 public key in PEM")]
    NotAPublicKey(String),
    /// The secret is too short to be safe.
    #[error("STREAMHUB_JWT_SECRET must be at least 32 bytes")]
    ShortSecret,
    /// The system's random source failed.
    #[error("no randomness for a process secret: {0}")]
    Random(getrandom::Error),
}

/// A verification key and the one algorithm it accepts.
#[derive(Clone)]
pub struct VerifyKey {
    /// The only algorithm tokens may use.
    pub algorithm: Algorithm,
    /// The key.
    pub key: DecodingKey,
    /// For a secret made at start: the signing half, to mint demo tokens.
    pub demo_signer: Option<EncodingKey>,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("algorithm", &self.algorithm)
            .field("demo", &self.demo_signer.is_some())
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// The key from the settings: a secret, a public key file, or (neither) a random
    /// secret for this process.
    pub fn from_settings(
        secret: Option<&str>,
        public_key_file: Option<&Path>,
    ) -> Result<VerifyKey, KeyError> {
        if let Some(secret) = secret {
            if secret.len() < 32 {
                return Err(KeyError::ShortSecret);
            }
            return Ok(VerifyKey {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
                demo_signer: None,
            });
        }
        if let Some(path) = public_key_file {
            let pem = std::fs::read(path).map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            })?;
            if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                return Ok(VerifyKey {
                    algorithm: Algorithm::RS256,
                    key,
                    demo_signer: None,
                });
            }
            if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                return Ok(VerifyKey {
                    algorithm: Algorithm::ES256,
                    key,
                    demo_signer: None,
                });
            }
            return Err(KeyError::NotAPublicKey(path.display().to_string()));
        }
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(KeyError::Random)?;
        Ok(VerifyKey {
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(&secret),
            demo_signer: Some(EncodingKey::from_secret(&secret)),
        })
    }
}
