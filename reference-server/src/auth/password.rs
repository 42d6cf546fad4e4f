//! Passwords and PINs hashed with argon2id (OWASP: m = 19 MiB, t = 2, p = 1) in PHC strings, so the parameters
//! travel with each hash and can be raised later: a hash made with weaker ones is upgraded on the next login.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP Password Storage Cheat Sheet, Argon2id: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// The hasher with the current parameters.
fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a secret into a PHC string.
///
/// # Errors
///
/// Only if the hasher itself fails (never for valid parameters).
pub fn hash(secret: &str) -> Result<String, String> {
    argon2()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// The outcome of checking a secret against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The secret does not match (or the stored hash is unreadable).
    No,
    /// It matches, and the hash uses the current parameters.
    Yes,
    /// It matches, but the hash was made with other parameters or algorithm: store a fresh one.
    YesRehash,
}

/// Checks `secret` against the PHC string `stored` in constant time (argon2's comparison).
#[must_use]
pub fn verify(stored: &str, secret: &str) -> Verified {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verified::No;
    };
    if argon2()
        .verify_password(secret.as_bytes(), &parsed)
        .is_err()
    {
        return Verified::No;
    }
    let current = parsed.algorithm.as_str() == "argon2id"
        && Params::try_from(&parsed)
            .is_ok_and(|p| p.m_cost() >= MEMORY_KIB && p.t_cost() >= PASSES && p.p_cost() >= LANES);
    if current {
        Verified::Yes
    } else {
        Verified::YesRehash
    }
}

/// Spends the time of one verification without a stored hash, so an unknown account takes as long to refuse
/// as a wrong password (OWASP Authentication Cheat Sheet: no quick exit).
pub fn verify_nothing(secret: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash("an unguessable placeholder that matches no secret").unwrap_or_default()
    });
    let _ = verify(dummy, secret);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_secret_only_and_carries_owasp_parameters() {
        let stored = hash("correct horse battery staple").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert_eq!(
            verify(&stored, "correct horse battery staple"),
            Verified::Yes
        );
        assert_eq!(
            verify(&stored, "correct horse battery stapler"),
            Verified::No
        );
        assert_eq!(verify("not a phc string", "x"), Verified::No);
    }

    #[test]
    fn a_weaker_hash_verifies_and_asks_for_a_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let stored = weak.hash_password(b"1234").unwrap().to_string();
        assert_eq!(verify(&stored, "1234"), Verified::YesRehash);
        assert_eq!(verify(&stored, "4321"), Verified::No);
    }
}
