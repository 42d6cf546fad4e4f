//! Data rights: export of an organization's or a user's data as JSON, and erasure of a user, which
//! pseudonymizes their personal data while keeping the financial records and the audit chain valid (events
//! name users by id only, so no hashed payload changes).

use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::db::BeginWrite;
use crate::domain::audit::{self, AuditEvent};
use crate::error::AppError;
use crate::with_pool;

#[derive(Debug, Serialize, sqlx::FromRow)]
struct UserRecord {
    id: Uuid,
    email: String,
    name: String,
    role: String,
    created_at: OffsetDateTime,
    erased_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct SessionRecord {
    id: Uuid,
    created_at: OffsetDateTime,
    last_seen_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
    revoke_reason: Option<String>,
}

fn rows<T: Serialize>(rows: &[T]) -> Value {
    serde_json::to_value(rows).unwrap_or(Value::Null)
}

/// The rows with each of `fields` (integer minor units, as stored) written as money is on the wire:
/// `{"amount": "110.00", "currency": "AUD"}` in the row's own `currency`.
fn money_rows<T: Serialize>(records: &[T], fields: &[&str]) -> Value {
    let mut value = rows(records);
    for row in value.as_array_mut().into_iter().flatten() {
        let currency = row
            .get("currency")
            .and_then(Value::as_str)
            .and_then(|c| fin_invariants::Currency::from_code(c).ok());
        let (Some(currency), Some(object)) = (currency, row.as_object_mut()) else {
            continue;
        };
        for field in fields {
            if let Some(minor) = object.get(*field).and_then(Value::as_i64) {
                let money = fin_invariants::Money::from_minor(minor, currency);
                object.insert(
                    (*field).to_owned(),
                    serde_json::to_value(money).unwrap_or(Value::Null),
                );
            }
        }
    }
    value
}

/// Reads `$sql` (one `$1` bind: the organization) into JSON objects of the given row type.
macro_rules! fetch {
    ($db:expr, $row:ty, $sql:expr, $bind:expr) => {
        with_pool!($db, |pool| sqlx::query_as::<_, $row>($sql)
            .bind($bind)
            .fetch_all(pool)
            .await)
    };
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct AccountRecord {
    id: Uuid,
    code: String,
    name: String,
    kind: String,
    currency: String,
    debits_posted: i64,
    credits_posted: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct EntryRecord {
    id: Uuid,
    entry_date: time::Date,
    description: String,
    source: String,
    reverses_id: Option<Uuid>,
    posted_at: OffsetDateTime,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct LineRecord {
    entry_id: Uuid,
    line_no: i64,
    account_id: Uuid,
    side: String,
    amount: i64,
    currency: String,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct InvoiceRecord {
    id: Uuid,
    kind: String,
    number: String,
    counterparty: String,
    issue_date: time::Date,
    due_date: time::Date,
    currency: String,
    status: String,
    tax_exclusive_amount: i64,
    tax_total: Option<i64>,
    payable_amount: i64,
    paid_total: i64,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
struct PaymentRecord {
    id: Uuid,
    invoice_id: Uuid,
    amount: i64,
    currency: String,
    paid_on: time::Date,
}

/// Everything the organization holds: users, accounts, journals, invoices, payments and the audit trail.
/// Amounts are money as everywhere on the wire: a decimal string with its currency. Owners only.
///
/// # Errors
///
/// When the database fails.
pub async fn export_organization(
    state: &AppState,
    principal: &Principal,
) -> Result<Value, AppError> {
    let org = principal.organization_id;
    let db = state.db();
    let users = fetch!(
        db,
        UserRecord,
        "SELECT id, email, name, role, created_at, erased_at FROM users WHERE organization_id = $1 ORDER BY id",
        org
    )?;
    let accounts = fetch!(
        db,
        AccountRecord,
        "SELECT id, code, name, kind, currency, debits_posted, credits_posted FROM accounts WHERE organization_id = $1 ORDER BY code",
        org
    )?;
    let entries = fetch!(
        db,
        EntryRecord,
        "SELECT id, entry_date, description, source, reverses_id, posted_at FROM journal_entries WHERE organization_id = $1 ORDER BY id",
        org
    )?;
    let lines = fetch!(
        db,
        LineRecord,
        "SELECT entry_id, CAST(line_no AS BIGINT) AS line_no, account_id, side, amount_minor AS amount, currency FROM journal_lines WHERE organization_id = $1 ORDER BY entry_id, line_no",
        org
    )?;
    let invoices = fetch!(
        db,
        InvoiceRecord,
        "SELECT id, kind, number, counterparty, issue_date, due_date, currency, status, tax_exclusive_amount, tax_total, payable_amount, paid_total FROM invoices WHERE organization_id = $1 ORDER BY id",
        org
    )?;
    let payments = fetch!(
        db,
        PaymentRecord,
        "SELECT id, invoice_id, amount, currency, paid_on FROM payments WHERE organization_id = $1 ORDER BY id",
        org
    )?;
    let events = audit::list(db, org, 0, i64::MAX).await?;
    Ok(json!({
        "organization_id": org,
        "exported_at": state.clock().now().to_string(),
        "users": rows(&users),
        "accounts": money_rows(&accounts, &["debits_posted", "credits_posted"]),
        "journal_entries": rows(&entries),
        "journal_lines": money_rows(&lines, &["amount"]),
        "invoices": money_rows(
            &invoices,
            &["tax_exclusive_amount", "tax_total", "payable_amount", "paid_total"],
        ),
        "payments": money_rows(&payments, &["amount"]),
        "audit_events": rows(&events),
    }))
}

/// One user's data: their profile, sessions, and the audit events they caused. The user themselves, or an
/// owner or admin of their organization; anyone else gets 404.
///
/// # Errors
///
/// 404 for a user outside the caller's organization, or another user for a caller who is not an owner or
/// admin.
pub async fn export_user(
    state: &AppState,
    principal: &Principal,
    user: Uuid,
) -> Result<Value, AppError> {
    if user != principal.user_id && !matches!(principal.role, Role::Owner | Role::Admin) {
        return Err(AppError::NotFound);
    }
    let org = principal.organization_id;
    let db = state.db();
    let profile: Option<UserRecord> = with_pool!(db, |pool| {
        sqlx::query_as(
        "SELECT id, email, name, role, created_at, erased_at FROM users WHERE id = $1 AND organization_id = $2"
    )
    .bind(user)
    .bind(org)
    .fetch_optional(pool)
    .await
    })?;
    let profile = profile.ok_or(AppError::NotFound)?;
    let sessions = fetch!(
        db,
        SessionRecord,
        "SELECT id, created_at, last_seen_at, revoked_at, revoke_reason FROM sessions WHERE user_id = $1 ORDER BY id",
        user
    )?;
    let events: Vec<audit::StoredEvent> = audit::list(db, org, 0, i64::MAX)
        .await?
        .into_iter()
        .filter(|e| e.actor_id == Some(user))
        .collect();
    Ok(json!({
        "user": profile,
        "sessions": rows(&sessions),
        "audit_events": rows(&events),
        "exported_at": state.clock().now().to_string(),
    }))
}

/// Erases a user's personal data: email and name are replaced by placeholders, credentials removed and every
/// session ended. Invoices, journals and the audit trail keep their user ids and stay valid. Owners only; an
/// owner cannot erase themselves (the organization would have no owner).
///
/// # Errors
///
/// 404 outside the organization; 409 for the caller themselves or an erased user.
pub async fn erase_user(
    state: &AppState,
    principal: &Principal,
    user: Uuid,
) -> Result<(), AppError> {
    if user == principal.user_id {
        return Err(AppError::Conflict("an owner cannot erase themselves"));
    }
    let org = principal.organization_id;
    let now = state.clock().now();
    let placeholder = format!("erased-{}@erased.invalid", user.simple());
    let changed = with_pool!(state.db(), |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE users SET email = $1, name = 'Erased user', password_hash = NULL, pin_hash = NULL, totp_secret = NULL, totp_enabled = FALSE, erased_at = $2 \
             WHERE id = $3 AND organization_id = $4 AND erased_at IS NULL",
        )
        .bind(&placeholder)
        .bind(now)
        .bind(user)
        .bind(org)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            sqlx::query("UPDATE sessions SET revoked_at = $1, revoke_reason = 'erased' WHERE user_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            let event = AuditEvent {
                actor_id: Some(principal.user_id),
                action: "user.erase",
                entity_type: "user",
                entity_id: user.to_string(),
                before: None,
                after: Some(json!({"erased": true})),
            };
            audit::append!(tx, state, org, &event).await?;
        }
        tx.commit().await.map(|()| changed)
    }
    .await
    })?;
    if changed == 1 {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}
