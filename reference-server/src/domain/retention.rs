//! Retention: what is kept, and for how long. Financial records are kept `RETENTION_YEARS` (7 by default, the
//! ATO's 5 with margin) and never deleted by this job: the books and the audit chain must stay whole. What
//! it does, daily:
//!
//! - deletes `Idempotency-Key` records older than their 24 hours (shared/API.md);
//! - deletes sessions that ended (revoked, or idle past `SESSION_IDLE_TIMEOUT`) more than 30 days ago, with
//!   their refresh tokens: they only served reuse detection;
//! - once an invoice is closed (paid or void) and its issue date is more than `RETENTION_YEARS` ago,
//!   pseudonymizes its counterparty (possibly a person: a sole trader), keeping every amount, so the
//!   ledger, the integrity audit and the audit chain are unchanged. Each organization's pseudonymization is
//!   one audit event.

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::AppState;
use crate::db::BeginWrite;
use crate::domain::audit::{self, AuditEvent};
use crate::error::AppError;
use crate::with_pool;

/// How long an ended session is kept for reuse detection of its refresh tokens.
const ENDED_SESSIONS_KEPT: Duration = Duration::days(30);

/// The counterparty of an invoice past retention.
pub const PSEUDONYM: &str = "Counterparty past retention";

/// What one retention run removed or pseudonymized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `Idempotency-Key` records deleted.
    pub idempotency_keys: u64,
    /// Ended sessions deleted.
    pub sessions: u64,
    /// Refresh tokens of those sessions deleted.
    pub refresh_tokens: u64,
    /// Closed invoices past retention whose counterparty was pseudonymized.
    pub invoices_pseudonymized: u64,
}

/// Runs retention once, at the state's clock.
///
/// # Errors
///
/// When the database fails; what was done before the failure stays done (each step is its own transaction).
pub async fn run(state: &AppState) -> Result<Report, AppError> {
    let now = state.clock().now();
    let idle = super::identity::idle_timeout(state);
    let ended_before = now - ENDED_SESSIONS_KEPT;
    let idle_before = ended_before
        .checked_sub(idle)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let idempotency_keys = with_pool!(state.db(), |pool| sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < $1"
    )
    .bind(now - crate::idempotency::KEPT)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    let (refresh_tokens, sessions) = with_pool!(state.db(), |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        let tokens = sqlx::query(
            "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions \
             WHERE (revoked_at IS NOT NULL AND revoked_at < $1) OR last_seen_at < $2)",
        )
        .bind(ended_before)
        .bind(idle_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let sessions = sqlx::query(
            "DELETE FROM sessions WHERE (revoked_at IS NOT NULL AND revoked_at < $1) OR last_seen_at < $2",
        )
        .bind(ended_before)
        .bind(idle_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await.map(|()| (tokens, sessions))
    }
    .await
    })?;
    Ok(Report {
        idempotency_keys,
        sessions,
        refresh_tokens,
        invoices_pseudonymized: pseudonymize_expired_invoices(state, now).await?,
    })
}

async fn pseudonymize_expired_invoices(
    state: &AppState,
    now: OffsetDateTime,
) -> Result<u64, AppError> {
    let years = i32::try_from(state.config().retention_years).unwrap_or(i32::MAX);
    let today = now.date();
    let cutoff = today
        .replace_year(today.year().saturating_sub(years))
        .or_else(|_| {
            // 29 February of a year that has none: the day before.
            today
                .previous_day()
                .unwrap_or(today)
                .replace_year(today.year().saturating_sub(years))
        })
        .map_err(|e| AppError::Internal(format!("retention cut-off: {e}")))?;
    let organizations: Vec<Uuid> = with_pool!(state.db(), |pool| sqlx::query_scalar(
        "SELECT DISTINCT organization_id FROM invoices \
         WHERE status IN ('paid', 'void') AND issue_date < $1 AND counterparty <> $2"
    )
    .bind(cutoff)
    .bind(PSEUDONYM)
    .fetch_all(pool)
    .await)?;
    let mut total = 0u64;
    for org in organizations {
        total = total.saturating_add(with_pool!(state.db(), |pool| async {
            let mut tx = pool.begin_write().await?;
            let changed = sqlx::query(
                "UPDATE invoices SET counterparty = $2 \
                 WHERE status IN ('paid', 'void') AND issue_date < $1 AND counterparty <> $2 AND organization_id = $3",
            )
            .bind(cutoff)
            .bind(PSEUDONYM)
            .bind(org)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let event = AuditEvent {
                actor_id: None,
                action: "retention.pseudonymize",
                entity_type: "organization",
                entity_id: org.to_string(),
                before: None,
                after: Some(serde_json::json!({
                    "invoices": changed, "issued_before": cutoff.to_string(),
                })),
            };
            audit::append!(tx, state, org, &event).await?;
            tx.commit().await.map(|()| changed)
        }
        .await)?);
    }
    Ok(total)
}
