//! The integrity audit: fin-invariants' audit runner over this server's data, one organization at a time.
//! Each run recomputes every invoice from its lines, checks every journal entry, rebuilds every account's
//! totals from the lines and compares them with the posted totals, then sums the lines again per account
//! and month and compares them with `account_months` (the dashboard's monthly totals). Every deviation is
//! stored as an integrity event that stays open until a later run no longer finds it.

use std::collections::HashSet;

use fin_invariants::audit::{
    AuditRunner, AuditSink, AuditSource, Deviation, Page, RecordKind, StoredBalance, StoredInvoice,
};
use fin_invariants::journal::{
    Account, AccountId, Balance, BalanceLimit, EntryId, JournalEntry, JournalLine, OrganizationId,
    Side,
};
use fin_invariants::{Currency, Money, Violation, Violations, codes};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::db::BeginWrite;
use crate::db::Db;
use crate::domain::invoices;
use crate::error::AppError;
use crate::with_pool;

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored value could not be read back.
    #[error("unreadable record: {0}")]
    Unreadable(String),
}

impl From<AppError> for IntegrityError {
    fn from(e: AppError) -> Self {
        Self::Unreadable(e.to_string())
    }
}

fn after(cursor: Option<&str>) -> Uuid {
    cursor
        .and_then(|c| Uuid::parse_str(c).ok())
        .unwrap_or_else(Uuid::nil)
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A page whose query fetched `fetched` rows, the last with id `last`: full pages have a next page.
fn page<T>(items: Vec<T>, fetched: usize, last: Option<Uuid>, size: usize) -> Page<T> {
    let next = if fetched == size {
        last.map(|id| id.to_string())
    } else {
        None
    };
    Page { items, next }
}

fn currency(code: &str) -> Result<Currency, IntegrityError> {
    Currency::from_code(code).map_err(|e| IntegrityError::Unreadable(e.to_string()))
}

/// One organization's records, read in pages by id (keyset pagination).
struct Source<'a> {
    db: &'a Db,
    org: Uuid,
}

impl Source<'_> {
    /// The ids of one page of `table` (a table of this module's choosing, never input), ascending.
    async fn page_ids(
        &self,
        table: &'static str,
        cursor: Option<&str>,
        size: usize,
    ) -> Result<Vec<Uuid>, IntegrityError> {
        let sql = format!(
            "SELECT id FROM {table} WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        let ids: Vec<(Uuid,)> = with_pool!(self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(self.org)
        .bind(after(cursor))
        .bind(limit(size))
        .fetch_all(pool)
        .await)?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }
}

impl AuditSource for Source<'_> {
    type Error = IntegrityError;

    async fn accounts(
        &mut self,
        cursor: Option<&str>,
        size: usize,
    ) -> Result<Page<Account>, IntegrityError> {
        let rows: Vec<(Uuid, String, String, bool)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
            "SELECT id, currency, kind, no_negative FROM accounts WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        )
        .bind(self.org)
        .bind(after(cursor))
        .bind(limit(size))
        .fetch_all(pool)
        .await
        })?;
        let (fetched, last) = (rows.len(), rows.last().map(|r| r.0));
        let mut items = Vec::with_capacity(rows.len());
        for (id, code, kind, no_negative) in rows {
            let debit_normal = kind == "asset" || kind == "expense";
            let limit = match (no_negative, debit_normal) {
                (false, _) => BalanceLimit::None,
                (true, true) => BalanceLimit::CreditsMustNotExceedDebits,
                (true, false) => BalanceLimit::DebitsMustNotExceedCredits,
            };
            items.push(Account {
                id: AccountId(id.as_u128()),
                organization: OrganizationId(self.org.as_u128()),
                currency: currency(&code)?,
                limit,
            });
        }
        Ok(page(items, fetched, last, size))
    }

    async fn invoices(
        &mut self,
        cursor: Option<&str>,
        size: usize,
    ) -> Result<Page<StoredInvoice>, IntegrityError> {
        let ids = self.page_ids("invoices", cursor, size).await?;
        let (fetched, last) = (ids.len(), ids.last().copied());
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some((invoice, totals)) = invoices::stored_document(self.db, id).await? {
                items.push(StoredInvoice {
                    id: id.to_string(),
                    invoice,
                    totals,
                });
            }
        }
        Ok(page(items, fetched, last, size))
    }

    async fn journal_entries(
        &mut self,
        cursor: Option<&str>,
        size: usize,
    ) -> Result<Page<JournalEntry>, IntegrityError> {
        let ids = self.page_ids("journal_entries", cursor, size).await?;
        let (fetched, last) = (ids.len(), ids.last().copied());
        let Some(last_id) = last else {
            return Ok(page(Vec::new(), 0, None, size));
        };
        // Every line of the page's entries in one query (the page is a range of ids), not one query per entry.
        let lines: Vec<(Uuid, Uuid, String, i64, String)> = with_pool!(self.db, |pool| {
            sqlx::query_as(
            "SELECT entry_id, account_id, side, amount_minor, currency FROM journal_lines \
             WHERE organization_id = $1 AND entry_id > $2 AND entry_id <= $3 ORDER BY entry_id, line_no"
        )
        .bind(self.org)
        .bind(after(cursor))
        .bind(last_id)
        .fetch_all(pool)
        .await
        })?;
        let mut items: Vec<JournalEntry> = ids
            .iter()
            .map(|id| JournalEntry {
                id: EntryId(id.as_u128()),
                organization: OrganizationId(self.org.as_u128()),
                lines: Vec::new(),
            })
            .collect();
        for (entry_id, account, side, amount, code) in lines {
            let Ok(index) = ids.binary_search(&entry_id) else {
                continue;
            };
            let side = if side == "debit" {
                Side::Debit
            } else {
                Side::Credit
            };
            let amount = Money::from_minor(amount, currency(&code)?);
            if let Some(entry) = items.get_mut(index) {
                entry.lines.push(JournalLine {
                    account: AccountId(account.as_u128()),
                    side,
                    amount,
                });
            }
        }
        Ok(page(items, fetched, last, size))
    }

    async fn stored_balances(
        &mut self,
        cursor: Option<&str>,
        size: usize,
    ) -> Result<Page<StoredBalance>, IntegrityError> {
        let rows: Vec<(Uuid, String, i64, i64)> = with_pool!(self.db, |pool| sqlx::query_as(
            "SELECT id, currency, debits_posted, credits_posted FROM accounts \
             WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        )
        .bind(self.org)
        .bind(after(cursor))
        .bind(limit(size))
        .fetch_all(pool)
        .await)?;
        let (fetched, last) = (rows.len(), rows.last().map(|r| r.0));
        let mut items = Vec::with_capacity(rows.len());
        for (id, code, debits, credits) in rows {
            // An account nothing was ever posted to has no balance to compare.
            if debits == 0 && credits == 0 {
                continue;
            }
            let c = currency(&code)?;
            let balance = Balance {
                debits: Money::from_minor(debits, c),
                credits: Money::from_minor(credits, c),
            };
            items.push(StoredBalance {
                account: AccountId(id.as_u128()),
                balance,
            });
        }
        Ok(page(items, fetched, last, size))
    }
}

/// Stores deviations as integrity events: a record already open keeps its event (updated to this run), a new
/// one opens an event.
struct Sink<'a> {
    db: &'a Db,
    org: Uuid,
    run: Uuid,
    now: OffsetDateTime,
    seen: HashSet<(String, String)>,
}

fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Invoice => "invoice",
        RecordKind::JournalEntry => "journal_entry",
        _ => "account",
    }
}

impl AuditSink for Sink<'_> {
    type Error = IntegrityError;

    async fn deviation(&mut self, deviation: Deviation) -> Result<(), IntegrityError> {
        // Journal and account ids come from fin-invariants as 128-bit integers: show them as UUIDs.
        let record = deviation
            .id
            .parse::<u128>()
            .map_or_else(|_| deviation.id.clone(), |n| Uuid::from_u128(n).to_string());
        self.record(kind_name(deviation.kind), record, &deviation.violations)
            .await
    }
}

impl Sink<'_> {
    /// Opens an event for the record, or moves its open event to this run with these violations.
    async fn record(
        &mut self,
        kind: &str,
        record: String,
        violations: &Violations,
    ) -> Result<(), IntegrityError> {
        let violations = serde_json::to_string(violations).unwrap_or_default();
        self.seen.insert((kind.to_owned(), record.clone()));
        let updated = with_pool!(self.db, |pool| {
            sqlx::query(
            "UPDATE integrity_events SET run_id = $1, violations = $2 \
             WHERE organization_id = $3 AND record_kind = $4 AND record_id = $5 AND closed_at IS NULL"
        )
        .bind(self.run)
        .bind(&violations)
        .bind(self.org)
        .bind(kind)
        .bind(&record)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        })?;
        if updated == 0 {
            with_pool!(self.db, |pool| {
                sqlx::query(
                "INSERT INTO integrity_events (id, organization_id, run_id, record_kind, record_id, violations, opened_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            )
            .bind(Uuid::now_v7())
            .bind(self.org)
            .bind(self.run)
            .bind(kind)
            .bind(&record)
            .bind(&violations)
            .bind(self.now)
            .execute(pool)
            .await
            .map(drop)
            })?;
        }
        Ok(())
    }
}

/// One account-month whose totals in `account_months` differ from its journal lines summed again.
#[derive(Debug, sqlx::FromRow)]
struct MonthDrift {
    account_id: Uuid,
    month: String,
    currency: String,
    line_debits: i64,
    line_credits: i64,
    stored_debits: i64,
    stored_credits: i64,
}

impl MonthDrift {
    fn violations(&self) -> Result<Violations, IntegrityError> {
        let c = currency(&self.currency)?;
        let path =
            |side: &str| format!("/accounts/{}/months/{}/{side}", self.account_id, self.month);
        let mut violations = Violations::default();
        for (side, lines, stored) in [
            ("debits", self.line_debits, self.stored_debits),
            ("credits", self.line_credits, self.stored_credits),
        ] {
            if lines != stored {
                violations.push(
                    Violation::new(
                        codes::BALANCE_DRIFT,
                        path(side),
                        "the month's stored total differs from its journal lines",
                    )
                    .with_values(Money::from_minor(lines, c), Money::from_minor(stored, c)),
                );
            }
        }
        Ok(violations)
    }
}

/// Records an event for every account-month whose stored totals drifted; how many did.
async fn check_months(db: &Db, org: Uuid, sink: &mut Sink<'_>) -> Result<u64, IntegrityError> {
    let drifts = month_drifts(db, org).await?;
    for drift in &drifts {
        let record = format!("{}/{}", drift.account_id, drift.month);
        sink.record("account_month", record, &drift.violations()?)
            .await?;
    }
    Ok(u64::try_from(drifts.len()).unwrap_or(u64::MAX))
}

/// Every account-month of `org` whose `account_months` row differs from its journal lines, a missing row or
/// month counting as zero. The database does the summing: one row per account-month, not per line.
async fn month_drifts(db: &Db, org: Uuid) -> Result<Vec<MonthDrift>, IntegrityError> {
    macro_rules! drifts_sql {
        ($month:literal) => {
            concat!(
                "SELECT t.account_id, t.month, a.currency, \
                        CAST(SUM(t.line_debits) AS BIGINT) AS line_debits, \
                        CAST(SUM(t.line_credits) AS BIGINT) AS line_credits, \
                        CAST(SUM(t.stored_debits) AS BIGINT) AS stored_debits, \
                        CAST(SUM(t.stored_credits) AS BIGINT) AS stored_credits \
                 FROM (SELECT l.account_id, ",
                $month,
                " AS month, \
                        CASE WHEN l.side = 'debit' THEN l.amount_minor ELSE 0 END AS line_debits, \
                        CASE WHEN l.side = 'credit' THEN l.amount_minor ELSE 0 END AS line_credits, \
                        CAST(0 AS BIGINT) AS stored_debits, CAST(0 AS BIGINT) AS stored_credits \
                       FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id \
                       WHERE l.organization_id = $1 \
                       UNION ALL \
                       SELECT account_id, month, 0, 0, debits, credits FROM account_months \
                       WHERE organization_id = $1) t \
                 JOIN accounts a ON a.id = t.account_id \
                 GROUP BY t.account_id, t.month, a.currency \
                 HAVING SUM(t.line_debits) <> SUM(t.stored_debits) \
                     OR SUM(t.line_credits) <> SUM(t.stored_credits) \
                 ORDER BY t.account_id, t.month"
            )
        };
    }
    // The month of an entry date as `account_months` keys it (`ledger::month_of`): YYYY-MM.
    let sql = match db {
        Db::Sqlite(_) => drifts_sql!("substr(e.entry_date, 1, 7)"),
        Db::Postgres(_) => drifts_sql!("to_char(e.entry_date, 'YYYY-MM')"),
    };
    Ok(with_pool!(db, |pool| sqlx::query_as(sql)
        .bind(org)
        .fetch_all(pool)
        .await)?)
}

/// What a run stores as its summary: fin-invariants' counts, and the account-months that drifted.
#[derive(Serialize)]
struct RunSummary<'a> {
    #[serde(flatten)]
    audit: &'a fin_invariants::audit::Summary,
    account_months_deviating: u64,
}

/// One run as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RunView {
    /// Id.
    pub id: Uuid,
    /// The organization audited.
    pub organization_id: Uuid,
    /// Start.
    pub started_at: OffsetDateTime,
    /// End.
    pub finished_at: Option<OffsetDateTime>,
    /// `running`, `clean`, `deviations` or `failed`.
    pub status: String,
    /// fin-invariants' summary (JSON text).
    pub summary: Option<String>,
    /// Deviations found.
    pub deviations: i64,
}

/// Audits one organization and stores the run, its deviations, and the closing of events no longer found.
///
/// # Errors
///
/// When the database fails (the run is then stored as failed, when the database still answers).
pub async fn run_for(state: &AppState, org: Uuid) -> Result<RunView, IntegrityError> {
    let db = state.db();
    let run = Uuid::now_v7();
    let started = state.clock().now();
    with_pool!(db, |pool| {
        sqlx::query(
        "INSERT INTO integrity_runs (id, organization_id, started_at, status) VALUES ($1, $2, $3, 'running')"
    )
    .bind(run)
    .bind(org)
    .bind(started)
    .execute(pool)
    .await
    .map(drop)
    })?;
    let mut source = Source { db, org };
    let mut sink = Sink {
        db,
        org,
        run,
        now: started,
        seen: HashSet::new(),
    };
    let outcome = match AuditRunner::new().run(&mut source, &mut sink).await {
        // Then the dashboard's monthly totals, into the same run and the same events.
        Ok(summary) => check_months(db, org, &mut sink)
            .await
            .map(|months| (summary, months))
            .map_err(|e| fin_invariants::audit::AuditError::Source(Box::new(e))),
        Err(e) => Err(e),
    };
    let finished = state.clock().now();
    let (status, summary, deviations) = match &outcome {
        Ok((summary, months)) => {
            let deviations = summary
                .invoices_deviating
                .saturating_add(summary.entries_deviating)
                .saturating_add(summary.balances_deviating)
                .saturating_add(*months);
            let status = if summary.is_clean() && *months == 0 {
                "clean"
            } else {
                "deviations"
            };
            let stored = RunSummary {
                audit: summary,
                account_months_deviating: *months,
            };
            (
                status,
                serde_json::to_string(&stored).ok(),
                i64::try_from(deviations).unwrap_or(i64::MAX),
            )
        }
        Err(e) => (
            "failed",
            Some(serde_json::json!({"error": e.to_string()}).to_string()),
            0,
        ),
    };
    with_pool!(db, |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        sqlx::query("UPDATE integrity_runs SET finished_at = $1, status = $2, summary = $3, deviations = $4 WHERE id = $5")
            .bind(finished)
            .bind(status)
            .bind(&summary)
            .bind(deviations)
            .bind(run)
            .execute(&mut *tx)
            .await?;
        if outcome.is_ok() {
            sqlx::query(
                "UPDATE integrity_events SET closed_at = $1, closed_by_run = $2 \
                 WHERE organization_id = $3 AND closed_at IS NULL AND run_id <> $2",
            )
            .bind(finished)
            .bind(run)
            .bind(org)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
    .await
    })?;
    if let Err(e) = outcome {
        tracing::error!(organization_id = %org, error = %e, "integrity audit failed");
    } else if deviations > 0 {
        tracing::warn!(organization_id = %org, deviations, "integrity audit found deviations");
    }
    Ok(RunView {
        id: run,
        organization_id: org,
        started_at: started,
        finished_at: Some(finished),
        status: status.to_owned(),
        summary,
        deviations,
    })
}

/// What the scheduled audit did on this instance.
#[derive(Debug)]
pub enum Scheduled {
    /// It audited every organization that was due.
    Ran(Vec<RunView>),
    /// Another instance holds the audit right now.
    Busy,
    /// No organization was due: each has a run started less than nine tenths of a period ago (on any
    /// instance, or by hand).
    RanRecently,
}

/// The key of the PostgreSQL advisory lock that the scheduled audit holds while it runs ("refsintg"). An
/// operator holding it (`SELECT pg_advisory_lock(8243107338847679591)`) keeps the scheduled audits off.
pub const AUDIT_LOCK: i64 = 0x7265_6673_696e_7467;

/// The periodic audit of every organization, once per `period` across all instances sharing the database.
///
/// On PostgreSQL the instance that takes an advisory lock ([`AUDIT_LOCK`]) on a connection of its own runs
/// it; the others answer [`Scheduled::Busy`]. On either backend an organization with a run started less than
/// `period * 9 / 10` ago (by any instance, or by hand) is skipped, so instances started at different times do
/// not each audit it once per period, and one tenant's manual runs put off no other tenant's audit. SQLite
/// has no such lock: a SQLite database is one instance's.
///
/// # Errors
///
/// When the database fails.
pub async fn run_scheduled(
    state: &AppState,
    period: std::time::Duration,
) -> Result<Scheduled, IntegrityError> {
    use sqlx::Connection as _;
    // A connection of its own, not one of the pool's: the lock lives as long as its session, so it is
    // released when the connection closes, also when this task is cancelled or the instance dies (a pooled
    // connection would go back to the pool still holding it), and the audit never waits for a pool of one.
    let lock = match state.db() {
        Db::Postgres(_) => {
            let mut conn =
                sqlx::PgConnection::connect(state.config().database_url.as_str()).await?;
            let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(AUDIT_LOCK)
                .fetch_one(&mut conn)
                .await?;
            if !held {
                // Closing only ends the session early; dropped, it ends all the same.
                let _ = conn.close().await;
                return Ok(Scheduled::Busy);
            }
            Some(conn)
        }
        Db::Sqlite(_) => None,
    };
    let outcome = due_ones(state, period).await;
    if let Some(conn) = lock {
        let _ = conn.close().await;
    }
    outcome
}

/// Audits each organization without a run started within nine tenths of `period`.
async fn due_ones(
    state: &AppState,
    period: std::time::Duration,
) -> Result<Scheduled, IntegrityError> {
    let now = state.clock().now();
    let lasts: Vec<(Uuid, Option<OffsetDateTime>)> = with_pool!(state.db(), |pool| {
        sqlx::query_as(
            "SELECT o.id, (SELECT MAX(r.started_at) FROM integrity_runs r WHERE r.organization_id = o.id) \
             FROM organizations o ORDER BY o.id",
        )
        .fetch_all(pool)
        .await
    })?;
    let recent = period.mul_f64(0.9);
    let mut runs = Vec::new();
    for (org, last) in lasts {
        if last.is_none_or(|last| now - last >= recent) {
            runs.push(run_for(state, org).await?);
        }
    }
    Ok(if runs.is_empty() {
        Scheduled::RanRecently
    } else {
        Scheduled::Ran(runs)
    })
}

/// Audits every organization, one after another.
///
/// # Errors
///
/// When the database fails.
pub async fn run_all(state: &AppState) -> Result<Vec<RunView>, IntegrityError> {
    let orgs: Vec<(Uuid,)> = with_pool!(state.db(), |pool| sqlx::query_as(
        "SELECT id FROM organizations ORDER BY id"
    )
    .fetch_all(pool)
    .await)?;
    let mut runs = Vec::with_capacity(orgs.len());
    for (org,) in orgs {
        runs.push(run_for(state, org).await?);
    }
    Ok(runs)
}

/// Integrity events still open, across every organization (the health check turns `warn` while any are).
///
/// # Errors
///
/// When the database fails.
pub async fn open_events(db: &Db) -> Result<i64, sqlx::Error> {
    with_pool!(db, |pool| sqlx::query_scalar(
        "SELECT count(*) FROM integrity_events WHERE closed_at IS NULL"
    )
    .fetch_one(pool)
    .await)
}

/// Who may read and start integrity runs.
pub const AUDITORS: &[Role] = &[Role::Owner, Role::Admin, Role::Accountant];

/// One page of the caller's organization's runs, newest first: those started before the run `before`
/// (UUIDv7 ids sort by creation).
///
/// # Errors
///
/// When the database fails.
pub async fn runs(
    state: &AppState,
    principal: &Principal,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RunView>, AppError> {
    Ok(with_pool!(state.db(), |pool| {
        sqlx::query_as(
        "SELECT id, organization_id, started_at, finished_at, status, summary, deviations FROM integrity_runs \
         WHERE organization_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
    )
    .bind(principal.organization_id)
    .bind(before.unwrap_or(Uuid::max()))
    .bind(limit)
    .fetch_all(pool)
    .await
    })?)
}

/// An integrity event as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct EventView {
    /// Id.
    pub id: Uuid,
    /// The run that last found it.
    pub run_id: Uuid,
    /// `invoice`, `journal_entry`, `account` or `account_month` (record id `<account id>/<YYYY-MM>`).
    pub record_kind: String,
    /// The record.
    pub record_id: String,
    /// Every violation found (JSON text).
    pub violations: String,
    /// When it was first found.
    pub opened_at: OffsetDateTime,
    /// When a run no longer found it.
    pub closed_at: Option<OffsetDateTime>,
}

/// One page of the caller's organization's open integrity events, oldest first: those opened after the
/// event `after` (UUIDv7 ids sort by creation).
///
/// # Errors
///
/// When the database fails.
pub async fn open_events_of(
    state: &AppState,
    principal: &Principal,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<EventView>, AppError> {
    Ok(with_pool!(state.db(), |pool| {
        sqlx::query_as(
        "SELECT id, run_id, record_kind, record_id, violations, opened_at, closed_at FROM integrity_events \
         WHERE organization_id = $1 AND closed_at IS NULL AND id > $2 ORDER BY id LIMIT $3"
    )
    .bind(principal.organization_id)
    .bind(after.unwrap_or(Uuid::nil()))
    .bind(limit)
    .fetch_all(pool)
    .await
    })?)
}
