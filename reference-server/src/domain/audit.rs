//! The audit trail: append-only events per organization, each linked to the one before it by
//! `hash = HMAC-SHA256(AUDIT_CHAIN_KEY, previous hash || canonical JSON of the event)`, with a head row per
//! organization (last hash, count) updated in the same transaction as the append (shared/API.md, Audit chain).
//!
//! [`verify`] recomputes every chain and finds an edited, inserted, reordered or deleted event, the newest
//! included (the head no longer matches). Events name users by id only; the before/after values never carry
//! personal data, so erasing a user's personal data leaves every chain valid.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::db::Db;
use crate::with_pool;

/// The hash before an organization's first event.
pub const GENESIS: [u8; 32] = [0; 32];
/// Events read per query when verifying, so memory stays bounded whatever the chain's length.
const VERIFY_PAGE: i64 = 1000;

/// What happened, by whom, to what.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// The acting user, when a user acted.
    pub actor_id: Option<Uuid>,
    /// A stable verb such as `organization.register`, `user.create`, `auth.login`.
    pub action: &'static str,
    /// The kind of entity (`organization`, `user`, `session`, `invoice`, ...).
    pub entity_type: &'static str,
    /// The entity's id.
    pub entity_id: String,
    /// The entity before the change (JSON), without personal data.
    pub before: Option<serde_json::Value>,
    /// The entity after the change (JSON), without personal data.
    pub after: Option<serde_json::Value>,
}

/// The bytes that are hashed: a struct with a fixed field order, the JSON values as the exact stored text.
#[derive(Serialize)]
struct Canonical<'a> {
    organization_id: Uuid,
    seq: i64,
    id: Uuid,
    actor_id: Option<Uuid>,
    action: &'a str,
    entity_type: &'a str,
    entity_id: &'a str,
    before: Option<&'a str>,
    after: Option<&'a str>,
    occurred_at: &'a str,
}

/// One stored event, as read back.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    /// The organization.
    pub organization_id: Uuid,
    /// Position in the organization's chain, from 1.
    pub seq: i64,
    /// The event's id.
    pub id: Uuid,
    /// The acting user.
    pub actor_id: Option<Uuid>,
    /// The verb.
    pub action: String,
    /// The kind of entity.
    pub entity_type: String,
    /// The entity's id.
    pub entity_id: String,
    /// Before (JSON text).
    pub before_value: Option<String>,
    /// After (JSON text).
    pub after_value: Option<String>,
    /// When.
    pub occurred_at: OffsetDateTime,
    /// The chain link.
    #[serde(skip)]
    #[schema(ignore)]
    pub hash: Vec<u8>,
}

/// The canonical JSON of an event.
fn canonical(event: &StoredEvent) -> Vec<u8> {
    let occurred_at = event.occurred_at.format(&Rfc3339).unwrap_or_default();
    let canonical = Canonical {
        organization_id: event.organization_id,
        seq: event.seq,
        id: event.id,
        actor_id: event.actor_id,
        action: &event.action,
        entity_type: &event.entity_type,
        entity_id: &event.entity_id,
        before: event.before_value.as_deref(),
        after: event.after_value.as_deref(),
        occurred_at: &occurred_at,
    };
    serde_json::to_vec(&canonical).unwrap_or_default()
}

/// `HMAC-SHA256(key, previous || payload)`.
#[must_use]
pub fn link(key: &[u8], previous: &[u8], payload: &[u8]) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(previous);
    mac.update(payload);
    mac.finalize().into_bytes().to_vec()
}

/// Builds the stored form of `event` as the `seq`-th of `organization_id`'s chain after `previous`.
#[must_use]
pub fn seal(
    key: &[u8],
    previous: &[u8],
    organization_id: Uuid,
    seq: i64,
    event: &AuditEvent,
    now: OffsetDateTime,
) -> StoredEvent {
    let mut stored = StoredEvent {
        organization_id,
        seq,
        id: Uuid::now_v7(),
        actor_id: event.actor_id,
        action: event.action.to_owned(),
        entity_type: event.entity_type.to_owned(),
        entity_id: event.entity_id.clone(),
        before_value: event.before.as_ref().map(ToString::to_string),
        after_value: event.after.as_ref().map(ToString::to_string),
        occurred_at: now,
        hash: Vec::new(),
    };
    stored.hash = link(key, previous, &canonical(&stored));
    stored
}

/// Appends `$event` to `$org`'s chain inside the open transaction `$tx`, taking the head row's lock first so
/// concurrent appends of one organization queue up. Expands to a future of `Result<(), sqlx::Error>`.
macro_rules! append {
    ($tx:expr, $state:expr, $org:expr, $event:expr) => {
        async {
            let state: &$crate::AppState = $state;
            if !state.config().enable_audit_logging {
                return Ok::<(), sqlx::Error>(());
            }
            let org: uuid::Uuid = $org;
            let head: Option<(Vec<u8>, i64)> = sqlx::query_as(
                "UPDATE audit_heads SET count = count + 1 WHERE organization_id = $1 RETURNING last_hash, count",
            )
            .bind(org)
            .fetch_optional(&mut *$tx)
            .await?;
            let (previous, seq) = match head {
                Some(head) => head,
                None => {
                    sqlx::query("INSERT INTO audit_heads (organization_id, last_hash, count) VALUES ($1, $2, 1)")
                        .bind(org)
                        .bind(&$crate::domain::audit::GENESIS[..])
                        .execute(&mut *$tx)
                        .await?;
                    ($crate::domain::audit::GENESIS.to_vec(), 1)
                }
            };
            let now = state.clock().now();
            let key = state.config().audit_chain_key.expose();
            let e = $crate::domain::audit::seal(key, &previous, org, seq, $event, now);
            sqlx::query(
                "INSERT INTO audit_events (organization_id, seq, id, actor_id, action, entity_type, entity_id, \
                 before_value, after_value, occurred_at, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(e.organization_id)
            .bind(e.seq)
            .bind(e.id)
            .bind(e.actor_id)
            .bind(&e.action)
            .bind(&e.entity_type)
            .bind(&e.entity_id)
            .bind(&e.before_value)
            .bind(&e.after_value)
            .bind(e.occurred_at)
            .bind(&e.hash)
            .execute(&mut *$tx)
            .await?;
            sqlx::query("UPDATE audit_heads SET last_hash = $1 WHERE organization_id = $2")
                .bind(&e.hash)
                .bind(org)
                .execute(&mut *$tx)
                .await?;
            Ok::<(), sqlx::Error>(())
        }
    };
}
pub(crate) use append;

/// The verdict on one organization's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// The organization.
    pub organization_id: Uuid,
    /// Events read.
    pub events: u64,
    /// What is wrong; empty when the chain is intact.
    pub problems: Vec<String>,
}

impl ChainReport {
    /// Whether the chain is intact.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Recomputes every organization's chain and compares it with the stored hashes and head.
///
/// # Errors
///
/// When the database fails.
pub async fn verify(db: &Db, key: &[u8]) -> Result<Vec<ChainReport>, sqlx::Error> {
    // Every organization, head row or not: a deleted head row must not hide its chain.
    let heads: Vec<(Uuid, Option<Vec<u8>>, Option<i64>)> = with_pool!(db, |pool| {
        sqlx::query_as(
        "SELECT o.id, h.last_hash, h.count FROM organizations o LEFT JOIN audit_heads h ON h.organization_id = o.id \
         ORDER BY o.id"
    )
    .fetch_all(pool)
    .await
    })?;
    let mut reports = Vec::with_capacity(heads.len());
    for (org, head_hash, head_count) in heads {
        let head = head_hash.zip(head_count);
        let mut report = verify_one(
            db,
            key,
            org,
            head.as_ref().map_or(&GENESIS[..], |(h, _)| h.as_slice()),
            head.as_ref().map_or(0, |(_, c)| *c),
        )
        .await?;
        if head.is_none() {
            // Registration writes the first event, so an organization always has a chain and a head.
            report.problems.insert(
                0,
                "the head row is missing: deleted, with or without the newest events".to_owned(),
            );
        }
        reports.push(report);
    }
    Ok(reports)
}

async fn verify_one(
    db: &Db,
    key: &[u8],
    org: Uuid,
    head_hash: &[u8],
    head_count: i64,
) -> Result<ChainReport, sqlx::Error> {
    let mut report = ChainReport {
        organization_id: org,
        events: 0,
        problems: Vec::new(),
    };
    let mut previous = GENESIS.to_vec();
    let mut expected_seq: i64 = 1;
    loop {
        let sql = "SELECT organization_id, seq, id, actor_id, action, entity_type, entity_id, before_value, after_value, \
                   occurred_at, hash FROM audit_events WHERE organization_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3";
        let page: Vec<StoredEvent> = with_pool!(db, |pool| sqlx::query_as(sql)
            .bind(org)
            .bind(expected_seq)
            .bind(VERIFY_PAGE)
            .fetch_all(pool)
            .await)?;
        let Some(last) = page.last() else { break };
        let next_seq = last.seq.saturating_add(1);
        for event in &page {
            report.events = report.events.saturating_add(1);
            if event.seq != expected_seq {
                report.problems.push(format!(
                    "event {expected_seq} is missing (next is {})",
                    event.seq
                ));
            }
            let recomputed = link(key, &previous, &canonical(event));
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                recomputed.as_slice(),
                event.hash.as_slice(),
            )) {
                report.problems.push(format!(
                    "event {} does not match its hash: edited, inserted or reordered",
                    event.seq
                ));
            }
            // Continue from the stored hash, so one bad event is reported once, not for the rest of the chain.
            previous.clone_from(&event.hash);
            expected_seq = event.seq.saturating_add(1);
        }
        expected_seq = next_seq;
        if i64::try_from(page.len()).unwrap_or(i64::MAX) < VERIFY_PAGE {
            break;
        }
    }
    let count = i64::try_from(report.events).unwrap_or(i64::MAX);
    if count != head_count {
        report.problems.push(format!("the head counts {head_count} events but the chain has {count}: events were deleted or added"));
    }
    if previous.as_slice() != head_hash {
        report.problems.push(
            "the newest event is not the head's: the newest events were deleted or replaced"
                .to_owned(),
        );
    }
    Ok(report)
}

/// A page of an organization's audit events, oldest first, after the cursor `after_seq`.
///
/// # Errors
///
/// When the database fails.
pub async fn list(
    db: &Db,
    org: Uuid,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = "SELECT organization_id, seq, id, actor_id, action, entity_type, entity_id, before_value, after_value, \
               occurred_at, hash FROM audit_events WHERE organization_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
    with_pool!(db, |pool| sqlx::query_as(sql)
        .bind(org)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(pool)
        .await)
}
