//! Organizations, users and sessions: registration, sign-in by password or PIN, refresh-token rotation with
//! reuse detection, idle timeout, logout and password change.

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppState;
use crate::auth::password::{self, Verified};
use crate::auth::token::{AUDIENCE, Claims};
use crate::auth::{Principal, Role};
use crate::db::BeginWrite;
use crate::domain::audit::{self, AuditEvent};
use crate::error::{AppError, FieldError};
use crate::with_pool;

/// PIN failures that lock the account, and the window they are counted in (shared/API.md, `auth_account`).
const PIN_MAX_FAILURES: i32 = 5;
const PIN_WINDOW: time::Duration = time::Duration::minutes(15);
/// A session's last-seen time is written at most this often, not on every request.
const TOUCH_EVERY: time::Duration = time::Duration::seconds(60);

/// What a successful sign-in or refresh answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tokens {
    /// The JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The single-use opaque token that gets the next pair.
    pub refresh_token: String,
}

/// A new organization with its owner.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The organization's name.
    pub organization_name: String,
    /// The owner's name.
    pub name: String,
    /// The owner's email (sign-in name).
    pub email: String,
    /// The owner's password.
    pub password: String,
}

/// A user an owner or admin adds to their organization.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Sign-in name.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Password, for users who sign in with one.
    pub password: Option<String>,
    /// PIN (4 to 8 digits), for staff on a shared terminal.
    pub pin: Option<String>,
}

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn check_email(email: &str, errors: &mut Vec<FieldError>) {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !ok {
        errors.push(FieldError::new(
            "email",
            "/email",
            "must be an email address",
        ));
    }
}

fn check_name(value: &str, path: &str, errors: &mut Vec<FieldError>) {
    let len = value.trim().chars().count();
    if len == 0 || len > 200 {
        errors.push(FieldError::new(
            "length",
            path,
            "must be 1 to 200 characters",
        ));
    }
}

/// Passwords: 12 to 1024 characters (the upper bound keeps hashing cheap to refuse).
fn check_password(value: &str, path: &str, errors: &mut Vec<FieldError>) {
    let len = value.chars().count();
    if len < 12 {
        errors.push(FieldError::new(
            "too_short",
            path,
            "must be at least 12 characters",
        ));
    } else if value.len() > 1024 {
        errors.push(FieldError::new(
            "too_long",
            path,
            "must be at most 1024 bytes",
        ));
    }
}

fn check_pin(value: &str, errors: &mut Vec<FieldError>) {
    if !(4..=8).contains(&value.len()) || !value.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(FieldError::new("pin", "/pin", "must be 4 to 8 digits"));
    }
}

/// The audit event of a new user: the role only, since names and emails are personal data.
fn user_created(actor: Uuid, user: Uuid, role: Role) -> AuditEvent {
    AuditEvent {
        actor_id: Some(actor),
        action: "user.create",
        entity_type: "user",
        entity_id: user.to_string(),
        before: None,
        after: Some(serde_json::json!({"role": role.as_str()})),
    }
}

fn session_event(
    actor: Uuid,
    action: &'static str,
    session: Uuid,
    after: Option<serde_json::Value>,
) -> AuditEvent {
    AuditEvent {
        actor_id: Some(actor),
        action,
        entity_type: "session",
        entity_id: session.to_string(),
        before: None,
        after,
    }
}

fn hash_secret(secret: &str) -> Result<String, AppError> {
    password::hash(secret).map_err(AppError::Internal)
}

/// A fresh refresh token and the hash that is stored instead of it.
fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = crate::hex::encode(&bytes);
    let hash = refresh_hash(&token);
    (token, hash)
}

fn refresh_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Signs an access token for a live session.
fn access_token(
    state: &AppState,
    user: Uuid,
    org: Uuid,
    role: &str,
    tier: &str,
    session: Uuid,
) -> Result<Tokens, AppError> {
    let now = state.clock().unix();
    let ttl = state.config().access_token_ttl.as_secs();
    let claims = Claims {
        iss: state.keys().issuer().to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: user,
        org,
        role: role.to_owned(),
        tier: tier.to_owned(),
        sid: session,
        iat: now,
        exp: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
        jti: Uuid::now_v7(),
    };
    let access_token = state.keys().sign(&claims).map_err(AppError::Internal)?;
    Ok(Tokens {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token: String::new(),
    })
}

/// Registers an organization and its owner, and signs the owner in.
///
/// # Errors
///
/// 422 with every field at fault; 409 when the email is taken.
pub async fn register(state: &AppState, r: Registration) -> Result<Tokens, AppError> {
    let email = normalize_email(&r.email);
    let mut errors = Vec::new();
    check_name(&r.organization_name, "/organization_name", &mut errors);
    check_name(&r.name, "/name", &mut errors);
    check_email(&email, &mut errors);
    check_password(&r.password, "/password", &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let hash = hash_secret(&r.password)?;
    let now = state.clock().now();
    let (org, user, session) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (refresh, refresh_hash) = new_refresh_token();
    let result: Result<(), sqlx::Error> = with_pool!(state.db(), |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        sqlx::query("INSERT INTO organizations (id, name, plan, created_at) VALUES ($1, $2, 'authenticated', $3)")
            .bind(org)
            .bind(r.organization_name.trim())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO users (id, organization_id, email, name, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, 'owner', $5, $6)",
        )
        .bind(user)
        .bind(org)
        .bind(&email)
        .bind(r.name.trim())
        .bind(&hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO sessions (id, user_id, organization_id, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)")
            .bind(session)
            .bind(user)
            .bind(org)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
            .bind(&refresh_hash)
            .bind(session)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let registered = AuditEvent {
            actor_id: Some(user),
            action: "organization.register",
            entity_type: "organization",
            entity_id: org.to_string(),
            before: None,
            after: Some(serde_json::json!({"plan": "authenticated", "owner_id": user})),
        };
        for (code, name, kind) in crate::domain::ledger::DEFAULT_CHART {
            sqlx::query(
                "INSERT INTO accounts (id, organization_id, code, name, kind, currency, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(Uuid::now_v7())
            .bind(org)
            .bind(*code)
            .bind(*name)
            .bind(kind.as_str())
            .bind(crate::domain::ledger::BASE_CURRENCY.code())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        audit::append!(tx, state, org, &registered).await?;
        audit::append!(tx, state, org, &user_created(user, user, Role::Owner)).await?;
        tx.commit().await
    }
    .await
    });
    match result {
        Ok(()) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(AppError::Conflict(
                "registration is not possible with these details",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let mut tokens = access_token(
        state,
        user,
        org,
        Role::Owner.as_str(),
        "authenticated",
        session,
    )?;
    tokens.refresh_token = refresh;
    Ok(tokens)
}

#[derive(Debug, sqlx::FromRow)]
struct Account {
    id: Uuid,
    organization_id: Uuid,
    role: String,
    password_hash: Option<String>,
    pin_hash: Option<String>,
    pin_failures: i32,
    pin_window_start: Option<OffsetDateTime>,
    pin_locked: bool,
    plan: String,
    totp_secret: Option<String>,
    totp_enabled: bool,
    totp_last_step: i64,
}

async fn account_by_email(state: &AppState, email: &str) -> Result<Option<Account>, AppError> {
    let sql = "SELECT u.id, u.organization_id, u.role, u.password_hash, u.pin_hash, u.pin_failures, \
               u.pin_window_start, u.pin_locked, o.plan, u.totp_secret, u.totp_enabled, u.totp_last_step \
               FROM users u JOIN organizations o ON o.id = u.organization_id \
               WHERE u.email = $1 AND u.erased_at IS NULL";
    Ok(with_pool!(state.db(), |pool| {
        sqlx::query_as::<_, Account>(sql)
            .bind(email)
            .fetch_optional(pool)
            .await
    })?)
}

/// Opens a session for a signed-in account: a session row and its first refresh token, then the tokens.
async fn open_session(
    state: &AppState,
    account: &Account,
    method: &'static str,
) -> Result<Tokens, AppError> {
    let now = state.clock().now();
    let session = Uuid::now_v7();
    let (refresh, refresh_hash) = new_refresh_token();
    let one_session = state.config().one_session_per_user;
    with_pool!(state.db(), |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        if one_session {
            sqlx::query("UPDATE sessions SET revoked_at = $1, revoke_reason = 'new login' WHERE user_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(account.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO sessions (id, user_id, organization_id, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)")
            .bind(session)
            .bind(account.id)
            .bind(account.organization_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
            .bind(&refresh_hash)
            .bind(session)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let event = session_event(account.id, "auth.login", session, Some(serde_json::json!({"method": method})));
        audit::append!(tx, state, account.organization_id, &event).await?;
        tx.commit().await
    }
    .await
    })?;
    let mut tokens = access_token(
        state,
        account.id,
        account.organization_id,
        &account.role,
        &account.plan,
        session,
    )?;
    tokens.refresh_token = refresh;
    Ok(tokens)
}

/// Signs in with email and password. Every failure is the same 401, on the same timing path.
///
/// # Errors
///
/// 401 for an unknown account, a wrong password, or an account without a password.
pub async fn login(
    state: &AppState,
    email: &str,
    password_given: &str,
    totp_given: Option<&str>,
) -> Result<Tokens, AppError> {
    if password_given.len() > 1024 {
        password::verify_nothing("");
        return Err(AppError::Unauthorized);
    }
    let email = normalize_email(email);
    let account = account_by_email(state, &email).await?;
    let Some(account) = account else {
        password::verify_nothing(password_given);
        return Err(AppError::Unauthorized);
    };
    // A lock after five wrong PINs holds the account, not only its PIN, until the owner lifts it.
    let Some(stored) = account
        .password_hash
        .as_deref()
        .filter(|_| !account.pin_locked)
    else {
        password::verify_nothing(password_given);
        return Err(AppError::Unauthorized);
    };
    match password::verify(stored, password_given) {
        Verified::No => return Err(AppError::Unauthorized),
        Verified::Yes => {}
        Verified::YesRehash => {
            let fresh = hash_secret(password_given)?;
            with_pool!(state.db(), |pool| sqlx::query(
                "UPDATE users SET password_hash = $1 WHERE id = $2"
            )
            .bind(&fresh)
            .bind(account.id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        }
    }
    second_factor(state, &account, totp_given).await?;
    open_session(state, &account, "password").await
}

/// The second factor of an account that has one, checked only after the first, and refused the same way as
/// a wrong password or PIN: a PIN does not stand in for it.
async fn second_factor(
    state: &AppState,
    account: &Account,
    totp_given: Option<&str>,
) -> Result<(), AppError> {
    if !account.totp_enabled {
        return Ok(());
    }
    let (Some(stored), Some(code)) = (account.totp_secret.as_deref(), totp_given) else {
        return Err(AppError::Unauthorized);
    };
    match super::totp::check_code(state, account.id, stored, account.totp_last_step, code).await? {
        super::totp::Checked::Accepted => Ok(()),
        super::totp::Checked::Refused | super::totp::Checked::Unreadable => {
            Err(AppError::Unauthorized)
        }
    }
}

/// Signs in with email and PIN. Five failures within 15 minutes lock the account, whatever the source, until
/// its owner unlocks it; a locked account is refused like a wrong PIN.
///
/// # Errors
///
/// 401 for an unknown or locked account, or a wrong PIN.
pub async fn login_pin(
    state: &AppState,
    email: &str,
    pin: &str,
    totp_given: Option<&str>,
) -> Result<Tokens, AppError> {
    let email = normalize_email(email);
    let pin = if pin.len() > 16 { "" } else { pin };
    let Some(account) = account_by_email(state, &email).await? else {
        password::verify_nothing(pin);
        return Err(AppError::Unauthorized);
    };
    let Some(stored) = account.pin_hash.as_deref().filter(|_| !account.pin_locked) else {
        password::verify_nothing(pin);
        return Err(AppError::Unauthorized);
    };
    let verified = password::verify(stored, pin);
    if verified == Verified::No {
        record_pin_failure(state, &account).await?;
        return Err(AppError::Unauthorized);
    }
    if account.pin_failures > 0 || verified == Verified::YesRehash {
        let fresh = if verified == Verified::YesRehash {
            Some(hash_secret(pin)?)
        } else {
            None
        };
        with_pool!(state.db(), |pool| {
            sqlx::query(
            "UPDATE users SET pin_failures = 0, pin_window_start = NULL, pin_hash = COALESCE($2, pin_hash) WHERE id = $1"
        )
        .bind(account.id)
        .bind(fresh.as_deref())
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        })?;
    }
    second_factor(state, &account, totp_given).await?;
    open_session(state, &account, "pin").await
}

async fn record_pin_failure(state: &AppState, account: &Account) -> Result<(), AppError> {
    let now = state.clock().now();
    let window_open = account
        .pin_window_start
        .is_some_and(|start| now - start < PIN_WINDOW);
    // The increment happens in the database, so concurrent failures are all counted.
    let failures: i32 = if window_open {
        with_pool!(state.db(), |pool| sqlx::query_scalar(
            "UPDATE users SET pin_failures = pin_failures + 1 WHERE id = $1 RETURNING pin_failures"
        )
        .bind(account.id)
        .fetch_one(pool)
        .await)?
    } else {
        with_pool!(state.db(), |pool| {
            sqlx::query_scalar(
            "UPDATE users SET pin_failures = 1, pin_window_start = $2 WHERE id = $1 RETURNING pin_failures"
        )
        .bind(account.id)
        .bind(now)
        .fetch_one(pool)
        .await
        })?
    };
    if failures >= PIN_MAX_FAILURES {
        tracing::warn!(user_id = %account.id, "PIN sign-in locked after repeated failures");
        with_pool!(state.db(), |pool| sqlx::query(
            "UPDATE users SET pin_locked = TRUE WHERE id = $1"
        )
        .bind(account.id)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
    }
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct RefreshRow {
    session_id: Uuid,
    used_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
    last_seen_at: OffsetDateTime,
    user_id: Uuid,
    organization_id: Uuid,
    role: String,
    plan: String,
}

async fn revoke_session(state: &AppState, session: Uuid, reason: &str) -> Result<(), AppError> {
    let now = state.clock().now();
    with_pool!(state.db(), |pool| {
        sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL"
    )
    .bind(now)
    .bind(reason)
    .bind(session)
    .execute(pool)
    .await
    .map(|done| done.rows_affected())
    })?;
    Ok(())
}

/// Trades a refresh token for a new pair. A token that was already used revokes its whole session (the
/// family), since either the client or a thief holds a copy.
///
/// # Errors
///
/// 401 for an unknown, reused, revoked or idle token.
pub async fn refresh(state: &AppState, token: &str) -> Result<Tokens, AppError> {
    if token.len() != 64 {
        return Err(AppError::Unauthorized);
    }
    let hash = refresh_hash(token);
    let sql = "SELECT r.session_id, r.used_at, s.revoked_at, s.last_seen_at, s.user_id, s.organization_id, u.role, o.plan \
               FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
               JOIN users u ON u.id = s.user_id JOIN organizations o ON o.id = s.organization_id \
               WHERE r.token_hash = $1 AND u.erased_at IS NULL";
    let row = with_pool!(state.db(), |pool| sqlx::query_as::<_, RefreshRow>(sql)
        .bind(&hash)
        .fetch_optional(pool)
        .await)?;
    let Some(row) = row else {
        return Err(AppError::Unauthorized);
    };
    if row.revoked_at.is_some() {
        return Err(AppError::Unauthorized);
    }
    if row.used_at.is_some() {
        tracing::warn!(session_id = %row.session_id, "refresh token reused: revoking the session family");
        revoke_session(state, row.session_id, "refresh token reuse").await?;
        return Err(AppError::Unauthorized);
    }
    let now = state.clock().now();
    if now - row.last_seen_at > idle_timeout(state) {
        revoke_session(state, row.session_id, "idle").await?;
        return Err(AppError::Unauthorized);
    }
    let (next, next_hash) = new_refresh_token();
    // Marking the token used only if it still is unused makes two concurrent refreshes with one token count
    // as reuse for the loser.
    let claimed = with_pool!(state.db(), |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        let marked = sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
            .bind(now)
            .bind(&hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if marked == 1 {
            sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
                .bind(&next_hash)
                .bind(row.session_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
                .bind(now)
                .bind(row.session_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await.map(|()| marked == 1)
    }
    .await
    })?;
    if !claimed {
        revoke_session(state, row.session_id, "refresh token reuse").await?;
        return Err(AppError::Unauthorized);
    }
    let mut tokens = access_token(
        state,
        row.user_id,
        row.organization_id,
        &row.role,
        &row.plan,
        row.session_id,
    )?;
    tokens.refresh_token = next;
    Ok(tokens)
}

/// `SESSION_IDLE_TIMEOUT` as a `time::Duration` (retention uses it too).
pub(crate) fn idle_timeout(state: &AppState) -> time::Duration {
    time::Duration::try_from(state.config().session_idle_timeout).unwrap_or(time::Duration::MAX)
}

#[derive(Debug, sqlx::FromRow)]
struct SessionRow {
    user_id: Uuid,
    organization_id: Uuid,
    last_seen_at: OffsetDateTime,
    revoked_at: Option<OffsetDateTime>,
    role: String,
    plan: String,
    totp_enabled: bool,
    require_totp: bool,
}

/// Checks that a verified token's session is live, ends it when idle too long, records the use, and returns
/// the caller. The role and tier come from the database, so a changed role applies at once.
///
/// # Errors
///
/// When the database fails.
pub async fn touch_session(
    state: &AppState,
    claims: &Claims,
) -> Result<Option<Principal>, AppError> {
    let sql = "SELECT s.user_id, s.organization_id, s.last_seen_at, s.revoked_at, u.role, o.plan, u.totp_enabled, \
               o.require_totp \
               FROM sessions s JOIN users u ON u.id = s.user_id JOIN organizations o ON o.id = s.organization_id \
               WHERE s.id = $1 AND u.erased_at IS NULL";
    let row = with_pool!(state.db(), |pool| sqlx::query_as::<_, SessionRow>(sql)
        .bind(claims.sid)
        .fetch_optional(pool)
        .await)?;
    let Some(row) = row.filter(|r| {
        r.revoked_at.is_none() && r.user_id == claims.sub && r.organization_id == claims.org
    }) else {
        return Ok(None);
    };
    let now = state.clock().now();
    let idle = now - row.last_seen_at;
    if idle > idle_timeout(state) {
        revoke_session(state, claims.sid, "idle").await?;
        return Ok(None);
    }
    if idle > TOUCH_EVERY {
        with_pool!(state.db(), |pool| sqlx::query(
            "UPDATE sessions SET last_seen_at = $1 WHERE id = $2"
        )
        .bind(now)
        .bind(claims.sid)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
    }
    let Some(role) = Role::parse(&row.role) else {
        return Ok(None);
    };
    Ok(Some(Principal {
        user_id: row.user_id,
        organization_id: row.organization_id,
        role,
        tier: row.plan,
        session_id: claims.sid,
        totp_pending: row.require_totp && !row.totp_enabled,
    }))
}

/// Ends the caller's session, or all of the user's sessions.
///
/// # Errors
///
/// When the database fails.
pub async fn logout(state: &AppState, principal: &Principal, all: bool) -> Result<(), AppError> {
    if all {
        let now = state.clock().now();
        with_pool!(state.db(), |pool| {
            sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = 'logout everywhere' WHERE user_id = $2 AND revoked_at IS NULL"
        )
        .bind(now)
        .bind(principal.user_id)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        })?;
        Ok(())
    } else {
        revoke_session(state, principal.session_id, "logout").await
    }
}

/// Changes the caller's password and ends their other sessions.
///
/// # Errors
///
/// 401 when the current password is wrong; 422 when the new one is not acceptable.
pub async fn change_password(
    state: &AppState,
    principal: &Principal,
    current: &str,
    new: &str,
) -> Result<(), AppError> {
    let mut errors = Vec::new();
    check_password(new, "/new_password", &mut errors);
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let stored: Option<String> = with_pool!(state.db(), |pool| sqlx::query_scalar(
        "SELECT password_hash FROM users WHERE id = $1"
    )
    .bind(principal.user_id)
    .fetch_one(pool)
    .await)?;
    let Some(stored) = stored else {
        return Err(AppError::Unauthorized);
    };
    if current.len() > 1024 || password::verify(&stored, current) == Verified::No {
        return Err(AppError::Unauthorized);
    }
    let fresh = hash_secret(new)?;
    let now = state.clock().now();
    with_pool!(state.db(), |pool| async {
        let mut tx = pool.begin_write().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(&fresh)
            .bind(principal.user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = 'password changed' \
             WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(principal.user_id)
        .bind(principal.session_id)
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent {
            actor_id: Some(principal.user_id),
            action: "auth.password_change",
            entity_type: "user",
            entity_id: principal.user_id.to_string(),
            before: None,
            after: Some(serde_json::json!({"other_sessions_revoked": true})),
        };
        audit::append!(tx, state, principal.organization_id, &event).await?;
        tx.commit().await
    }
    .await)?;
    Ok(())
}

/// The user as the API shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Sign-in name.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// Adds a user to the caller's organization. Owners may add any role; admins any but owner.
///
/// # Errors
///
/// 403 for an admin adding an owner; 422 for bad fields; 409 for a taken email.
pub async fn create_user(
    state: &AppState,
    principal: &Principal,
    new: NewUser,
) -> Result<UserView, AppError> {
    if new.role == Role::Owner && principal.role != Role::Owner {
        return Err(AppError::Forbidden);
    }
    let email = normalize_email(&new.email);
    let mut errors = Vec::new();
    check_email(&email, &mut errors);
    check_name(&new.name, "/name", &mut errors);
    if let Some(p) = &new.password {
        check_password(p, "/password", &mut errors);
    }
    if let Some(pin) = &new.pin {
        check_pin(pin, &mut errors);
    }
    if new.password.is_none() && new.pin.is_none() {
        errors.push(FieldError::new(
            "required",
            "/password",
            "a password or a PIN is required",
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let password_hash = new.password.as_deref().map(hash_secret).transpose()?;
    let pin_hash = new.pin.as_deref().map(hash_secret).transpose()?;
    let id = Uuid::now_v7();
    let now = state.clock().now();
    let inserted = with_pool!(state.db(), |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, organization_id, email, name, role, password_hash, pin_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(principal.organization_id)
        .bind(&email)
        .bind(new.name.trim())
        .bind(new.role.as_str())
        .bind(&password_hash)
        .bind(&pin_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let event = user_created(principal.user_id, id, new.role);
        audit::append!(tx, state, principal.organization_id, &event).await?;
        tx.commit().await
    }
    .await
    });
    match inserted {
        Ok(_) => Ok(UserView {
            id,
            email,
            name: new.name.trim().to_owned(),
            role: new.role,
        }),
        Err(e) if is_unique_violation(&e) => {
            Err(AppError::Conflict("a user with this email exists"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Unlocks a user's PIN sign-in after repeated failures. Owners only; a user of another organization is 404.
///
/// # Errors
///
/// 404 for a user outside the caller's organization.
pub async fn unlock_pin(
    state: &AppState,
    principal: &Principal,
    user: Uuid,
) -> Result<(), AppError> {
    let changed = with_pool!(state.db(), |pool| async {
        let mut tx = pool.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE users SET pin_locked = FALSE, pin_failures = 0, pin_window_start = NULL \
             WHERE id = $1 AND organization_id = $2 AND erased_at IS NULL",
        )
        .bind(user)
        .bind(principal.organization_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            let event = AuditEvent {
                actor_id: Some(principal.user_id),
                action: "user.unlock_pin",
                entity_type: "user",
                entity_id: user.to_string(),
                before: Some(serde_json::json!({"pin_locked": true})),
                after: Some(serde_json::json!({"pin_locked": false})),
            };
            audit::append!(tx, state, principal.organization_id, &event).await?;
        }
        tx.commit().await.map(|()| changed)
    }
    .await)?;
    if changed == 0 {
        Err(AppError::NotFound)
    } else {
        Ok(())
    }
}

#[derive(Debug, sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    role: String,
}

/// A user of the caller's organization; one of another organization is 404, like one that does not exist.
///
/// # Errors
///
/// 404 when there is no such user in the caller's organization.
pub async fn user(state: &AppState, principal: &Principal, id: Uuid) -> Result<UserView, AppError> {
    let sql = "SELECT id, email, name, role FROM users WHERE id = $1 AND organization_id = $2 AND erased_at IS NULL";
    let row = with_pool!(state.db(), |pool| sqlx::query_as::<_, UserRow>(sql)
        .bind(id)
        .bind(principal.organization_id)
        .fetch_optional(pool)
        .await)?;
    let row = row.ok_or(AppError::NotFound)?;
    let role = Role::parse(&row.role)
        .ok_or_else(|| AppError::Internal(format!("stored role {:?}", row.role)))?;
    Ok(UserView {
        id: row.id,
        email: row.email,
        name: row.name,
        role,
    })
}
