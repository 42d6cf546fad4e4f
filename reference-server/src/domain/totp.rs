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
pub(crate) async fn consume(state: &AppState, user: Uuid, step: i64) -> Result<bool, AppError> {
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
    with_pool!(state.db(), |pool| sqlx::query(
        "UPDATE users SET totp_secret = $1, totp_enabled = FALSE, totp_last_step = 0 WHERE id = $2"
    )
    .bind(&secret)
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
    let (Some(secret), last_step) = secret.ok_or(AppError::NotFound)? else {
        return Err(AppError::Conflict("no enrolment begun"));
    };
    let wrong = || {
        AppError::Validation(vec![crate::error::FieldError::new(
            "TOTP-CODE",
            "/code",
            "is not the current code of the authenticator",
        )])
    };
    let step = accepts(&secret, code, state.clock().unix(), last_step).ok_or_else(wrong)?;
    if !consume(state, principal.user_id, step).await? {
        return Err(wrong());
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
