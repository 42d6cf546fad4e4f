//! Access tokens: HMAC-signed JWTs (RFC 8725) with `typ: at+jwt` and a `kid` naming the key, checked against one
//! configured algorithm and a key ring of the current and the previous secret (rotation).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::{Config, JwtAlgorithm};

/// The audience every token is issued for and must name.
pub const AUDIENCE: &str = "reference-server";
/// How far token times may be off (shared/API.md: at most 30 s).
const LEEWAY_SECS: i64 = 30;
const TOKEN_TYPE: &str = "at+jwt";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer (`JWT_ISSUER`).
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user's id.
    pub sub: Uuid,
    /// The user's organization.
    pub org: Uuid,
    /// The user's role.
    pub role: String,
    /// The rate-limit tier, from the organization's plan.
    pub tier: String,
    /// The session, checked against the live session on every request.
    pub sid: Uuid,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// The token's own id.
    pub jti: Uuid,
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The signing key and the keys still accepted for verification.
pub struct KeyRing {
    algorithm: Algorithm,
    issuer: String,
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("KeyRing")
            .field("algorithm", &self.algorithm)
            .field("kids", &kids)
            .finish()
    }
}

/// The key id: lowercase hex of the first 8 bytes of SHA-256 of the key, so every instance derives the same.
#[must_use]
pub fn key_id(secret: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(secret)[..8])
}

/// Why a token was refused. Never shown to the client (it gets a plain 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWS compact token, or its header is unreadable.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm other than the configured one (including `none`).
    #[error("algorithm not allowed")]
    Algorithm,
    /// The header's `typ` is not `at+jwt`.
    #[error("wrong token type")]
    Type,
    /// No key of the ring has the header's `kid`.
    #[error("unknown key id")]
    UnknownKey,
    /// Signature, issuer, audience or claim shapes are wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` has passed.
    #[error("expired")]
    Expired,
    /// `iat` lies in the future.
    #[error("issued in the future")]
    NotYetValid,
}

impl KeyRing {
    /// The ring from `JWT_SECRET` (signing) and `JWT_SECRET_PREVIOUS` (verification only).
    #[must_use]
    pub fn from_config(config: &Config) -> Self {
        let algorithm = match config.jwt_algorithm {
            JwtAlgorithm::Hs256 => Algorithm::HS256,
            JwtAlgorithm::Hs384 => Algorithm::HS384,
            JwtAlgorithm::Hs512 => Algorithm::HS512,
        };
        let keys = std::iter::once(&config.jwt_secret)
            .chain(config.jwt_secret_previous.as_ref())
            .map(|secret| Key {
                kid: key_id(secret.expose()),
                encoding: EncodingKey::from_secret(secret.expose()),
                decoding: DecodingKey::from_secret(secret.expose()),
            })
            .collect();
        Self {
            algorithm,
            issuer: config.jwt_issuer.clone(),
            keys,
        }
    }

    /// The issuer written into tokens.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs `claims` with the current key.
    ///
    /// # Errors
    ///
    /// When signing fails (it does not for HMAC keys).
    pub fn sign(&self, claims: &Claims) -> Result<String, String> {
        let key = self.keys.first().ok_or("no signing key")?;
        let mut header = Header::new(self.algorithm);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| e.to_string())
    }

    /// Verifies a token's header, signature and claims at time `now` (seconds since the epoch).
    ///
    /// # Errors
    ///
    /// Every reason a token is refused; see [`TokenError`].
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != self.algorithm {
            return Err(TokenError::Algorithm);
        }
        if header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(TokenError::Type);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKey)?;

        let mut validation = Validation::new(self.algorithm);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Times are checked below against the server's clock, which tests can move.
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?
            .claims;
        if now >= claims.exp.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::Expired);
        }
        if claims.iat > now.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn ring(vars: &[(&str, &str)]) -> KeyRing {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        KeyRing::from_config(&Config::from_vars(&vars).unwrap())
    }

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "reference-server".into(),
            aud: AUDIENCE.into(),
            sub: Uuid::now_v7(),
            org: Uuid::now_v7(),
            role: "owner".into(),
            tier: "authenticated".into(),
            sid: Uuid::now_v7(),
            iat: now,
            exp: now + 900,
            jti: Uuid::now_v7(),
        }
    }

    const A: &str = "a-secret-of-at-least-thirty-two-bytes-0001";
    const B: &str = "b-secret-of-at-least-thirty-two-bytes-0002";

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let ring = ring(&[("JWT_SECRET", A)]);
        let c = claims(1_000_000);
        let token = ring.sign(&c).unwrap();
        assert_eq!(ring.verify(&token, 1_000_001), Ok(c));
        assert_eq!(
            ring.verify(&token, 1_000_000 + 900 + 30),
            Err(TokenError::Expired)
        );
        assert_eq!(
            ring.verify(&token, 1_000_000 - 31),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn kid_is_the_hex_of_the_first_eight_bytes_of_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea...
        assert_eq!(key_id(b"abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn rotation_accepts_tokens_of_the_previous_key_and_not_of_a_stranger() {
        let old = ring(&[("JWT_SECRET", A)]);
        let token = old.sign(&claims(1_000_000)).unwrap();
        let rotated = ring(&[("JWT_SECRET", B), ("JWT_SECRET_PREVIOUS", A)]);
        assert!(rotated.verify(&token, 1_000_001).is_ok());
        let stranger = ring(&[("JWT_SECRET", B)]);
        assert_eq!(
            stranger.verify(&token, 1_000_001),
            Err(TokenError::UnknownKey)
        );
    }

    fn b64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }

    #[test]
    fn alg_none_another_algorithm_wrong_audience_and_tampering_are_refused() {
        let ring = ring(&[("JWT_SECRET", A)]);
        let c = claims(1_000_000);
        let payload = b64(serde_json::to_string(&c).unwrap().as_bytes());

        let none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"at+jwt"}"#));
        assert!(matches!(
            ring.verify(&none, 1_000_001),
            Err(TokenError::Malformed | TokenError::Algorithm)
        ));

        let hs512 = ring_with_alg(A, "HS512").sign(&c).unwrap();
        assert_eq!(ring.verify(&hs512, 1_000_001), Err(TokenError::Algorithm));

        let mut wrong_aud = c.clone();
        wrong_aud.aud = "someone-else".into();
        let token = ring.sign(&wrong_aud).unwrap();
        assert!(matches!(
            ring.verify(&token, 1_000_001),
            Err(TokenError::Invalid(_))
        ));

        let mut wrong_iss = c.clone();
        wrong_iss.iss = "another-issuer".into();
        let token = ring.sign(&wrong_iss).unwrap();
        assert!(matches!(
            ring.verify(&token, 1_000_001),
            Err(TokenError::Invalid(_))
        ));

        let good = ring.sign(&c).unwrap();
        let (head, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let mut forged = c;
        forged.role = "owner-of-everything".into();
        let tampered = format!(
            "{head}.{}.{sig}",
            b64(serde_json::to_string(&forged).unwrap().as_bytes())
        );
        assert!(matches!(
            ring.verify(&tampered, 1_000_001),
            Err(TokenError::Invalid(_))
        ));
    }

    fn ring_with_alg(secret: &str, alg: &str) -> KeyRing {
        let long = format!("{secret}{}", "x".repeat(64));
        ring(&[("JWT_SECRET", &long), ("JWT_ALGORITHM", alg)])
    }
}
