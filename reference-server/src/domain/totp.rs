//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s steps, one step of skew either way). A user enrols
//! (a new secret, shown once as an `otpauth://` URL), confirms with a first code, and from then on signs in
//! with a code too. Each time step is accepted once per user: the database keeps the last one used, and a
//! conditional update refuses a replay even when two sign-ins race. An owner may require the second factor of
//! every member: members without one then get sessions that may only enrol.

use serde::{Deserialize, Serialize};
use totp_rs::{Builder, Secret, Totp};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::db::BeginWrite;
use crate::domain::audit::{self, AuditEvent};
use crate::error::AppError;
use crate::with_pool;

/// The issuer shown in authenticator apps.
const ISSUER: &str = "reference-server";

/// How a sealed secret starts: the format's version.
const SEALED: &str = "v1:";

/// The AES-256-GCM cipher of `TOTP_ENCRYPTION_KEY`: its own key, derived for this one purpose.
fn cipher(key: &[u8]) -> aes_gcm::Aes256Gcm {
    use aes_gcm::aead::KeyInit as _;
    use sha2::Digest as _;
    let key: [u8; 32] = sha2::Sha256::new()
        .chain_update(b"reference-server/totp-secret/v1")
        .chain_update(key)
        .finalize()
        .into();
    aes_gcm::Aes256Gcm::new(&key.into())
}

/// The secret as stored: `v1:` and the hex of a random 96-bit nonce and the AES-256-GCM ciphertext, with the
/// user's id as associated data, so a sealed secret copied to another user's row does not open.
fn seal(key: &[u8], user: Uuid, secret: &str) -> Result<String, AppError> {
    use aes_gcm::aead::{Aead as _, Generate as _, Payload};
    let nonce = aes_gcm::Nonce::generate();
    let sealed = cipher(key)
        .encrypt(
            &nonce,
            Payload {
                msg: secret.as_bytes(),
                aad: user.as_bytes(),
            },
        )
        .map_err(|_| AppError::Internal("TOTP secret could not be sealed".to_owned()))?;
    Ok(format!(
        "{SEALED}{}{}",
        crate::hex::encode(&nonce),
        crate::hex::encode(&sealed)
    ))
}

/// The secret of a stored value: opened when sealed, as it is when stored before sealing existed (base32,
/// which has no `:`). `None` when it does not open: another key, another user's row, changed bytes, or a
/// format this version does not know.
fn open(key: &[u8], user: Uuid, stored: &str) -> Option<String> {
    use aes_gcm::aead::{Aead as _, Payload};
    let Some(hex) = stored.strip_prefix(SEALED) else {
        return (!stored.contains(':')).then(|| stored.to_owned());
    };
    let bytes = crate::hex::decode(hex)?;
    let (nonce, sealed) = bytes.split_at_checked(12)?;
    let nonce = aes_gcm::Nonce::try_from(nonce).ok()?;
    let secret = cipher(key)
        .decrypt(
            &nonce,
            Payload {
                msg: sealed,
                aad: user.as_bytes(),
            },
        )
        .ok()?;
    String::from_utf8(secret).ok()
}

/// What a code did against a user's stored secret.
pub(crate) enum Checked {
    /// The code of a step not used yet: now spent.
    Accepted,
    /// Not a current code, or its step already spent (a replay, or a racing sign-in that won).
    Refused,
    /// The stored secret does not open (logged by [`opened`]).
    Unreadable,
}

/// Checks `code` against `user`'s stored secret: opens it, accepts the code of a step after `last_step`,
/// spends that step (a conditional update, so a racing replay loses), and only then seals the secret again
/// when its row holds it unsealed or under the previous key. Sign-in and enrolment both go through here.
pub(crate) async fn check_code(
    state: &AppState,
    user: Uuid,
    stored: &str,
    last_step: i64,
    code: &str,
) -> Result<Checked, AppError> {
    let Some(opened) = opened(state, user, stored) else {
        return Ok(Checked::Unreadable);
    };
    let Some(step) = accepts(&opened.secret, code, state.clock().unix(), last_step) else {
        return Ok(Checked::Refused);
    };
    if !consume(state, user, step).await? {
        return Ok(Checked::Refused);
    }
    seal_if_stale(state, user, stored, &opened).await?;
    Ok(Checked::Accepted)
}

/// A secret opened from its row, and whether the row should be sealed again with the current key (it was
/// stored before sealing existed, or sealed with `TOTP_ENCRYPTION_KEY_PREVIOUS`).
struct Opened {
    secret: String,
    stale: bool,
}

/// The secret of `user`'s stored value, for checking a code: with the current key, else the previous one. A
/// value that opens with neither is logged (a key lost, or the row tampered with) and checks no code.
fn opened(state: &AppState, user: Uuid, stored: &str) -> Option<Opened> {
    let config = state.config();
    let current = open(config.totp_encryption_key.expose(), user, stored).map(|secret| Opened {
        stale: !stored.starts_with(SEALED),
        secret,
    });
    let opened = current.or_else(|| {
        let previous = config.totp_encryption_key_previous.as_ref()?;
        open(previous.expose(), user, stored).map(|secret| Opened {
            secret,
            stale: true,
        })
    });
    if opened.is_none() {
        tracing::error!(user_id = %user, "a TOTP secret does not open with TOTP_ENCRYPTION_KEY");
    }
    opened
}

/// Seals a secret again with the current key once it has just checked a code, when its row holds it
/// unsealed or sealed with the previous key. The update applies only while the row still holds what was read.
async fn seal_if_stale(
    state: &AppState,
    user: Uuid,
    stored: &str,
    opened: &Opened,
) -> Result<(), AppError> {
    if !opened.stale {
        return Ok(());
    }
    let secret = &opened.secret;
    let sealed = seal(state.config().totp_encryption_key.expose(), user, secret)?;
    with_pool!(state.db(), |pool| sqlx::query(
        "UPDATE users SET totp_secret = $1 WHERE id = $2 AND totp_secret = $3"
    )
    .bind(&sealed)
    .bind(user)
    .bind(stored)
    .execute(pool)
    .await
    .map(drop))?;
    Ok(())
}

/// What enrolment gives the user, once: the secret and the URL an authenticator app reads (a QR code of it).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Enrolment {
    /// The shared secret, base32.
    pub secret: String,
    /// `otpauth://totp/...`, for a QR code.
    pub otpauth_url: String,
}

/// A code from the user's authenticator.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// Six digits.
    pub code: String,
}

/// Whether the organization requires a second factor of every member.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// `true`: members without TOTP may only enrol until they have.
    pub require_totp: bool,
}

fn totp(secret: &str, account: &str) -> Result<Totp, AppError> {
    let secret = Secret::try_from_base32(secret)
        .map_err(|e| AppError::Internal(format!("stored TOTP secret: {e}")))?;
    Builder::new()
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        .with_account_name(account.replace(':', "_"))
        .build()
        .map_err(|e| AppError::Internal(format!("TOTP: {e}")))
}

/// The time step `code` matches for `secret` at `now`, if it matches one newer than `last_step`.
#[must_use]
pub fn accepts(secret: &str, code: &str, now: i64, last_step: i64) -> Option<i64> {
    let now = u64::try_from(now).ok()?;
    let step = totp(secret, "-").ok()?.check(code.trim(), now)?;
    i64::try_from(step).ok().filter(|s| *s > last_step)
}

/// Records `step` as used by `user`; false when it (or a later one) already was: a replay.
async fn consume(state: &AppState, user: Uuid, step: i64) -> Result<bool, AppError> {
    let done = with_pool!(state.db(), |pool| sqlx::query(
        "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1"
    )
    .bind(step)
    .bind(user)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(done == 1)
}

/// Starts (or restarts, while unconfirmed) the caller's enrolment with a new secret.
///
/// # Errors
///
/// 409 when the caller already has a confirmed second factor.
pub async fn begin(state: &AppState, principal: &Principal) -> Result<Enrolment, AppError> {
    let row: Option<(String, bool)> = with_pool!(state.db(), |pool| sqlx::query_as(
        "SELECT email, totp_enabled FROM users WHERE id = $1 AND organization_id = $2"
    )
    .bind(principal.user_id)
    .bind(principal.organization_id)
    .fetch_optional(pool)
    .await)?;
    let (email, enabled) = row.ok_or(AppError::NotFound)?;
    if enabled {
        return Err(AppError::Conflict("a second factor is already set up"));
    }
    let secret = Secret::generate().to_base32();
    let url = totp(&secret, &email)?
        .to_url()
        .map_err(|e| AppError::Internal(format!("TOTP URL: {e}")))?;
    let sealed = seal(
        state.config().totp_encryption_key.expose(),
        principal.user_id,
        &secret,
    )?;
    with_pool!(state.db(), |pool| sqlx::query(
        "UPDATE users SET totp_secret = $1, totp_enabled = FALSE, totp_last_step = 0 WHERE id = $2"
    )
    .bind(&sealed)
    .bind(principal.user_id)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(Enrolment {
        secret,
        otpauth_url: url,
    })
}

/// Confirms the caller's enrolment with a first code; from then on sign-in asks for one.
///
/// # Errors
///
/// 409 without an enrolment begun; 422 for a wrong code.
pub async fn confirm(state: &AppState, principal: &Principal, code: &str) -> Result<(), AppError> {
    let secret: Option<(Option<String>, i64)> = with_pool!(state.db(), |pool| sqlx::query_as(
        "SELECT totp_secret, totp_last_step FROM users WHERE id = $1 AND organization_id = $2"
    )
    .bind(principal.user_id)
    .bind(principal.organization_id)
    .fetch_optional(pool)
    .await)?;
    let (Some(stored), last_step) = secret.ok_or(AppError::NotFound)? else {
        return Err(AppError::Conflict("no enrolment begun"));
    };
    match check_code(state, principal.user_id, &stored, last_step, code).await? {
        Checked::Accepted => {}
        Checked::Refused => {
            return Err(AppError::Validation(vec![crate::error::FieldError::new(
                "TOTP-CODE",
                "/code",
                "is not the current code of the authenticator",
            )]));
        }
        Checked::Unreadable => {
            return Err(AppError::Internal("TOTP secret does not open".to_owned()));
        }
    }
    let event = AuditEvent {
        actor_id: Some(principal.user_id),
        action: "user.totp_enable",
        entity_type: "user",
        entity_id: principal.user_id.to_string(),
        before: Some(serde_json::json!({"totp_enabled": false})),
        after: Some(serde_json::json!({"totp_enabled": true})),
    };
    audited(
        state,
        principal,
        "UPDATE users SET totp_enabled = TRUE WHERE id = $1",
        principal.user_id,
        &event,
    )
    .await
}

/// Runs `sql` (one update of the row `id`, a boolean set) and appends `event` to the audit chain, in one
/// transaction.
async fn audited(
    state: &AppState,
    principal: &Principal,
    sql: &'static str,
    id: Uuid,
    event: &AuditEvent,
) -> Result<(), AppError> {
    with_pool!(state.db(), |pool| async {
        let mut tx = pool.begin_write().await?;
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        audit::append!(tx, state, principal.organization_id, event).await?;
        tx.commit().await
    }
    .await)?;
    Ok(())
}

/// Sets whether the caller's organization requires a second factor.
///
/// # Errors
///
/// 409 when requiring it while the owner has none (the owner would lock themselves into enrolment).
pub async fn require(
    state: &AppState,
    principal: &Principal,
    requirement: &Requirement,
) -> Result<Requirement, AppError> {
    if requirement.require_totp {
        let enabled: Option<bool> = with_pool!(state.db(), |pool| sqlx::query_scalar(
            "SELECT totp_enabled FROM users WHERE id = $1"
        )
        .bind(principal.user_id)
        .fetch_optional(pool)
        .await)?;
        if enabled != Some(true) {
            return Err(AppError::Conflict(
                "set up your own second factor before requiring it",
            ));
        }
    }
    let (sql, before) = if requirement.require_totp {
        (
            "UPDATE organizations SET require_totp = TRUE WHERE id = $1",
            false,
        )
    } else {
        (
            "UPDATE organizations SET require_totp = FALSE WHERE id = $1",
            true,
        )
    };
    let event = AuditEvent {
        actor_id: Some(principal.user_id),
        action: "organization.require_totp",
        entity_type: "organization",
        entity_id: principal.organization_id.to_string(),
        before: Some(serde_json::json!({"require_totp": before})),
        after: Some(serde_json::json!({"require_totp": requirement.require_totp})),
    };
    audited(state, principal, sql, principal.organization_id, &event).await?;
    Ok(requirement.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a key of thirty-two bytes or more, for tests";
    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_under_its_key() {
        let (olive, sam) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = seal(KEY, olive, SECRET).unwrap();
        assert!(sealed.starts_with(SEALED), "{sealed}");
        assert!(
            !sealed.contains(SECRET),
            "the secret is not readable in the row"
        );
        assert_eq!(open(KEY, olive, &sealed).as_deref(), Some(SECRET));
        assert_ne!(
            seal(KEY, olive, SECRET).unwrap(),
            sealed,
            "a fresh nonce each time"
        );
        assert_eq!(
            open(KEY, sam, &sealed),
            None,
            "copied to another user's row"
        );
        assert_eq!(
            open(b"another key of thirty-two bytes, or more", olive, &sealed),
            None
        );
        // Any changed byte, a cut value, or bytes that are not hex: nothing opens, nothing panics.
        let mut changed = sealed.clone().into_bytes();
        let last = changed.len() - 1;
        changed[last] = if changed[last] == b'0' { b'1' } else { b'0' };
        let changed = String::from_utf8(changed).unwrap();
        for bad in [
            changed.as_str(),
            &sealed[..sealed.len() - 2],
            &sealed[..SEALED.len() + 20],
            "v1:",
            "v1:zz",
            "v1:é",
        ] {
            assert_eq!(open(KEY, olive, bad), None, "{bad}");
        }
    }

    #[test]
    fn a_secret_stored_before_sealing_still_opens_but_no_unknown_format() {
        assert_eq!(open(KEY, Uuid::now_v7(), SECRET).as_deref(), Some(SECRET));
        assert_eq!(open(KEY, Uuid::now_v7(), "v2:00ff"), None);
    }
}
