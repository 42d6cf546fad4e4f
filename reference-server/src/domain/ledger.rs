//! The ledger: a chart of accounts per organization, immutable journal entries checked by fin-invariants
//! before they commit, reversals as the only correction, balances and a trial balance rebuilt from lines.

use std::collections::HashMap;

use fin_invariants::journal::{
    self, AccountId, BalanceLimit, EntryId, JournalEntry, JournalLine, OrganizationId, Side,
};
use fin_invariants::{Currency, Money, Validate, Violation, Violations, codes};
use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::db::BeginWrite;
use crate::domain::audit::{self, AuditEvent};
use crate::error::{AppError, FieldError};
use crate::with_pool;

/// Roles that keep the books.
pub const BOOKKEEPERS: &[Role] = &[Role::Owner, Role::Admin, Role::Accountant];

/// The kind of an account, which decides its normal side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// Debit-normal: cash, receivables, GST paid.
    Asset,
    /// Credit-normal: payables, GST collected.
    Liability,
    /// Credit-normal.
    Equity,
    /// Credit-normal: sales.
    Income,
    /// Debit-normal: purchases.
    Expense,
}

impl AccountKind {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asset => "asset",
            Self::Liability => "liability",
            Self::Equity => "equity",
            Self::Income => "income",
            Self::Expense => "expense",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "asset" => Self::Asset,
            "liability" => Self::Liability,
            "equity" => Self::Equity,
            "income" => Self::Income,
            "expense" => Self::Expense,
            _ => return None,
        })
    }

    /// Whether the balance normally sits on the debit side.
    #[must_use]
    pub fn debit_normal(self) -> bool {
        matches!(self, Self::Asset | Self::Expense)
    }
}

/// The accounts every new organization starts with (code, name, kind). Invoices post to these codes.
pub const DEFAULT_CHART: &[(&str, &str, AccountKind)] = &[
    (CASH, "Cash at bank", AccountKind::Asset),
    (RECEIVABLE, "Accounts receivable", AccountKind::Asset),
    (GST_PAID, "GST paid", AccountKind::Asset),
    (PAYABLE, "Accounts payable", AccountKind::Liability),
    (GST_COLLECTED, "GST collected", AccountKind::Liability),
    ("3000", "Owner's equity", AccountKind::Equity),
    (SALES, "Sales", AccountKind::Income),
    (PURCHASES, "Purchases", AccountKind::Expense),
];
/// Cash at bank.
pub const CASH: &str = "1000";
/// Accounts receivable.
pub const RECEIVABLE: &str = "1100";
/// GST paid on purchases.
pub const GST_PAID: &str = "1200";
/// Accounts payable.
pub const PAYABLE: &str = "2000";
/// GST collected on sales.
pub const GST_COLLECTED: &str = "2100";
/// Sales income.
pub const SALES: &str = "4000";
/// Purchases expense.
pub const PURCHASES: &str = "5000";

/// An organization's base currency (the chart's currency).
pub const BASE_CURRENCY: Currency = Currency::AUD;

fn account_id(id: Uuid) -> AccountId {
    AccountId(id.as_u128())
}

/// An account as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AccountView {
    /// Id.
    pub id: Uuid,
    /// Code, unique in the organization.
    pub code: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Currency of every line on it.
    pub currency: String,
    /// Whether its balance may not go below zero.
    pub no_negative: bool,
}

/// A new account.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Code, unique in the organization (1 to 20 characters).
    pub code: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: AccountKind,
    /// Currency; the organization's base currency when absent.
    #[serde(default)]
    pub currency: Option<String>,
    /// Whether its balance may not go below zero on its normal side.
    #[serde(default)]
    pub no_negative: bool,
}

/// Adds an account to the caller's chart.
///
/// # Errors
///
/// 422 for bad fields; 409 for a code in use.
pub async fn create_account(
    state: &AppState,
    principal: &Principal,
    new: NewAccount,
) -> Result<AccountView, AppError> {
    let mut errors = Vec::new();
    let code = new.code.trim().to_owned();
    if code.is_empty() || code.len() > 20 {
        errors.push(FieldError::new(
            "length",
            "/code",
            "must be 1 to 20 characters",
        ));
    }
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new(
            "length",
            "/name",
            "must be 1 to 200 characters",
        ));
    }
    let currency = match new.currency.as_deref().map(Currency::from_code).transpose() {
        Ok(c) => c.unwrap_or(BASE_CURRENCY),
        Err(_) => {
            errors.push(FieldError::new(
                "currency",
                "/currency",
                "must be an ISO 4217 currency code",
            ));
            BASE_CURRENCY
        }
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let id = Uuid::now_v7();
    let now = state.clock().now();
    let org = principal.organization_id;
    let inserted = with_pool!(state.db(), |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO accounts (id, organization_id, code, name, kind, currency, no_negative, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(org)
        .bind(&code)
        .bind(&name)
        .bind(new.kind.as_str())
        .bind(currency.code())
        .bind(new.no_negative)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent {
            actor_id: Some(principal.user_id),
            action: "account.create",
            entity_type: "account",
            entity_id: id.to_string(),
            before: None,
            after: Some(serde_json::json!({"code": code, "name": name, "kind": new.kind.as_str(), "currency": currency.code()})),
        };
        audit::append!(tx, state, org, &event).await?;
        tx.commit().await
    }
    .await
    });
    match inserted {
        Ok(()) => Ok(AccountView {
            id,
            code,
            name,
            kind: new.kind.as_str().to_owned(),
            currency: currency.code().to_owned(),
            no_negative: new.no_negative,
        }),
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            Err(AppError::Conflict("an account with this code exists"))
        }
        Err(e) => Err(e.into()),
    }
}

/// One page of the caller's chart of accounts, by code: those after the code `after`.
///
/// # Errors
///
/// When the database fails.
pub async fn accounts(
    state: &AppState,
    principal: &Principal,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<AccountView>, AppError> {
    // Codes compare bytewise on both backends ("C" collation on PostgreSQL), as the cursor expects.
    let sql = match state.db() {
        crate::db::Db::Sqlite(_) => {
            "SELECT id, code, name, kind, currency, no_negative FROM accounts \
             WHERE organization_id = $1 AND code > $2 ORDER BY code LIMIT $3"
        }
        crate::db::Db::Postgres(_) => {
            "SELECT id, code, name, kind, currency, no_negative FROM accounts \
             WHERE organization_id = $1 AND code COLLATE \"C\" > $2 ORDER BY code COLLATE \"C\" LIMIT $3"
        }
    };
    Ok(with_pool!(state.db(), |pool| sqlx::query_as::<
        _,
        AccountView,
    >(sql)
    .bind(principal.organization_id)
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}

/// One line of a new journal entry, as the API takes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewJournalLine)]
pub struct NewLine {
    /// The account.
    pub account_id: Uuid,
    /// `debit` or `credit`.
    pub side: Side,
    /// `{"amount": "12.34", "currency": "AUD"}`.
    pub amount: Money,
}

/// A new manual journal entry.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    /// `YYYY-MM-DD`.
    pub entry_date: String,
    /// What it records.
    pub description: String,
    /// Two or more lines that balance per currency.
    pub lines: Vec<NewLine>,
}

/// Parses `YYYY-MM-DD`, years 1 to 9999: ISO 8601's year 0000 (1 BC) and expanded years name no day of the
/// books, and PostgreSQL would key year 0 to a month of 0001 (`to_char`) where `month_of` writes 0000.
#[must_use]
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, &time::format_description::well_known::Iso8601::DATE)
        .ok()
        .filter(|d| (1..=9999).contains(&d.year()))
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn dates_are_years_1_to_9999() {
        assert!(parse_date("2026-11-30").is_some());
        assert!(parse_date("0001-01-01").is_some());
        assert!(parse_date("9999-12-31").is_some());
        assert_eq!(parse_date("0000-06-30"), None);
        assert_eq!(parse_date("+10000-01-01"), None);
        assert_eq!(parse_date("2026-02-30"), None);
        assert_eq!(month_of(parse_date("0001-03-04").unwrap()), "0001-03");
    }
}

impl NewEntry {
    fn as_journal(&self, org: Uuid) -> JournalEntry {
        JournalEntry {
            id: EntryId(0),
            organization: OrganizationId(org.as_u128()),
            lines: self
                .lines
                .iter()
                .map(|l| JournalLine {
                    account: account_id(l.account_id),
                    side: l.side,
                    amount: l.amount,
                })
                .collect(),
        }
    }
}

impl Validate for NewEntry {
    /// What can be checked without the accounts: the date, the description, and the journal's structure
    /// (two lines or more, amounts above zero, balanced per currency).
    fn violations(&self) -> Violations {
        let mut v = self.as_journal(Uuid::nil()).violations();
        if parse_date(&self.entry_date).is_none() {
            v.push(Violation::new(
                codes::INVALID_VALUE,
                "/entry_date",
                "must be a date YYYY-MM-DD",
            ));
        }
        let len = self.description.trim().chars().count();
        if len == 0 || len > 500 {
            v.push(Violation::new(
                codes::INVALID_VALUE,
                "/description",
                "must be 1 to 500 characters",
            ));
        }
        v
    }
}

/// How a journal came to be, stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Typed in by a bookkeeper.
    Manual,
    /// Issuing an invoice.
    Invoice,
    /// Recording a payment.
    Payment,
    /// Reversing an earlier entry.
    Reversal,
}

impl Source {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Invoice => "invoice",
            Self::Payment => "payment",
            Self::Reversal => "reversal",
        }
    }
}

/// A journal entry ready to post: the same fin-invariants checks run on it again inside the transaction.
#[derive(Debug, Clone)]
pub struct Posting {
    /// The entry's id.
    pub id: Uuid,
    /// Its date.
    pub entry_date: Date,
    /// Its description.
    pub description: String,
    /// How it came to be.
    pub source: Source,
    /// The invoice or entry it belongs to.
    pub source_id: Option<Uuid>,
    /// The entry it reverses.
    pub reverses: Option<Uuid>,
    /// Its lines: account, side, amount.
    pub lines: Vec<(Uuid, Side, Money)>,
}

/// A row of `accounts` as the checks read it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: Uuid,
    code: String,
    kind: String,
    currency: String,
    no_negative: bool,
}

/// The caller's accounts as fin-invariants checks them, and by code.
pub(crate) struct Chart {
    accounts: HashMap<AccountId, journal::Account>,
    kinds: HashMap<Uuid, AccountKind>,
    by_code: HashMap<String, Uuid>,
}

impl Chart {
    pub(crate) fn from_rows(org: Uuid, rows: Vec<AccountRow>) -> Self {
        let mut chart = Self {
            accounts: HashMap::new(),
            kinds: HashMap::new(),
            by_code: HashMap::new(),
        };
        for row in rows {
            let (Ok(currency), Some(kind)) = (
                Currency::from_code(&row.currency),
                AccountKind::parse(&row.kind),
            ) else {
                continue;
            };
            let limit = match (row.no_negative, kind.debit_normal()) {
                (false, _) => BalanceLimit::None,
                (true, true) => BalanceLimit::CreditsMustNotExceedDebits,
                (true, false) => BalanceLimit::DebitsMustNotExceedCredits,
            };
            chart.accounts.insert(
                account_id(row.id),
                journal::Account {
                    id: account_id(row.id),
                    organization: OrganizationId(org.as_u128()),
                    currency,
                    limit,
                },
            );
            chart.kinds.insert(row.id, kind);
            chart.by_code.insert(row.code, row.id);
        }
        chart
    }
}

/// Reads the organization's chart inside a transaction or from a pool. Expands to a future of
/// `Result<Chart, sqlx::Error>`.
macro_rules! load_chart {
    ($executor:expr, $org:expr) => {
        async {
            let org: uuid::Uuid = $org;
            let rows = sqlx::query_as(
                "SELECT id, code, kind, currency, no_negative FROM accounts WHERE organization_id = $1",
            )
            .bind(org)
            .fetch_all($executor)
            .await?;
            Ok::<_, sqlx::Error>($crate::domain::ledger::Chart::from_rows(org, rows))
        }
    };
}
pub(crate) use load_chart;

/// Checks a posting against the chart with fin-invariants: structure, known accounts of the organization,
/// currencies. Account limits are checked by [`post!`] against the balances in the transaction.
pub(crate) fn check_posting(chart: &Chart, org: Uuid, posting: &Posting) -> Violations {
    let entry = JournalEntry {
        id: EntryId(posting.id.as_u128()),
        organization: OrganizationId(org.as_u128()),
        lines: posting
            .lines
            .iter()
            .map(|(a, side, amount)| JournalLine {
                account: account_id(*a),
                side: *side,
                amount: *amount,
            })
            .collect(),
    };
    journal::check_entry(&entry, &chart.accounts)
}

/// Each account's debit and credit totals in a posting, in minor units.
#[must_use]
pub fn per_account(posting: &Posting) -> Vec<(Uuid, i64, i64)> {
    let mut totals: Vec<(Uuid, i64, i64)> = Vec::new();
    for (account, side, amount) in &posting.lines {
        let index = totals
            .iter()
            .position(|t| t.0 == *account)
            .unwrap_or_else(|| {
                totals.push((*account, 0, 0));
                totals.len().saturating_sub(1)
            });
        if let Some(t) = totals.get_mut(index) {
            match side {
                Side::Debit => t.1 = t.1.saturating_add(amount.minor()),
                Side::Credit => t.2 = t.2.saturating_add(amount.minor()),
            }
        }
    }
    totals
}

/// The balance limit violations of a posting, given each account's posted (debits, credits) with it.
pub(crate) fn limit_violations(
    chart: &Chart,
    posting: &Posting,
    sums: &HashMap<Uuid, (i64, i64)>,
) -> Violations {
    let mut v = Violations::new();
    let mut reported = Vec::new();
    for (i, (account, _, _)) in posting.lines.iter().enumerate() {
        let Some(limit) = chart.accounts.get(&account_id(*account)).map(|a| a.limit) else {
            continue;
        };
        let Some(&(debits, credits)) = sums.get(account) else {
            continue;
        };
        let code = match limit {
            BalanceLimit::CreditsMustNotExceedDebits if credits > debits => codes::EXCEEDS_DEBITS,
            BalanceLimit::DebitsMustNotExceedCredits if debits > credits => codes::EXCEEDS_CREDITS,
            _ => continue,
        };
        if !reported.contains(account) {
            reported.push(*account);
            v.push(Violation::new(
                code,
                format!("/lines/{i}/amount"),
                "the account's balance may not go below zero",
            ));
        }
    }
    v
}

/// Posts `$posting` for `$principal`'s organization inside the open transaction `$tx`, after checking it with
/// fin-invariants against the chart and the balances as the transaction sees them. Expands to a future of
/// `Result<Result<(), Violations>, sqlx::Error>`: the inner error leaves the transaction for the caller to drop.
macro_rules! post {
    ($tx:expr, $state:expr, $org:expr, $actor:expr, $posting:expr) => {
        async {
            let org: uuid::Uuid = $org;
            let posting: &$crate::domain::ledger::Posting = $posting;
            let chart = $crate::domain::ledger::load_chart!(&mut *$tx, org).await?;
            let violations = $crate::domain::ledger::check_posting(&chart, org, posting);
            if !violations.is_empty() {
                return Ok::<Result<(), fin_invariants::Violations>, sqlx::Error>(Err(violations));
            }
            let state: &$crate::AppState = $state;
            let now = state.clock().now();
            sqlx::query(
                "INSERT INTO journal_entries (id, organization_id, entry_date, description, source, source_id, \
                 reverses_id, created_by, posted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(posting.id)
            .bind(org)
            .bind(posting.entry_date)
            .bind(&posting.description)
            .bind(posting.source.as_str())
            .bind(posting.source_id)
            .bind(posting.reverses)
            .bind($actor)
            .bind(now)
            .execute(&mut *$tx)
            .await?;
            for (n, (account, side, amount)) in posting.lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO journal_lines (entry_id, line_no, organization_id, account_id, side, amount_minor, currency) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(posting.id)
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
                .bind(org)
                .bind(*account)
                .bind(match side {
                    fin_invariants::journal::Side::Debit => "debit",
                    fin_invariants::journal::Side::Credit => "credit",
                })
                .bind(amount.minor())
                .bind(amount.currency().code())
                .execute(&mut *$tx)
                .await?;
            }
            // Posted totals move in the same transaction; the row lock each UPDATE takes queues concurrent
            // postings to one account, so a balance limit is checked against every earlier posting.
            let mut sums = std::collections::HashMap::new();
            for (account, debit, credit) in $crate::domain::ledger::per_account(posting) {
                let totals: (i64, i64) = sqlx::query_as(
                    "UPDATE accounts SET debits_posted = debits_posted + $1, credits_posted = credits_posted + $2 \
                     WHERE id = $3 RETURNING debits_posted, credits_posted",
                )
                .bind(debit)
                .bind(credit)
                .bind(account)
                .fetch_one(&mut *$tx)
                .await?;
                sums.insert(account, totals);
                sqlx::query(
                    "INSERT INTO account_months (account_id, month, organization_id, debits, credits) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, month) DO UPDATE \
                     SET debits = account_months.debits + excluded.debits, \
                         credits = account_months.credits + excluded.credits",
                )
                .bind(account)
                .bind($crate::domain::ledger::month_of(posting.entry_date))
                .bind(org)
                .bind(debit)
                .bind(credit)
                .execute(&mut *$tx)
                .await?;
            }
            let violations = $crate::domain::ledger::limit_violations(&chart, posting, &sums);
            if !violations.is_empty() {
                return Ok::<Result<(), fin_invariants::Violations>, sqlx::Error>(Err(violations));
            }
            let event = $crate::domain::audit::AuditEvent {
                actor_id: $actor,
                action: "journal.post",
                entity_type: "journal_entry",
                entity_id: posting.id.to_string(),
                before: None,
                after: Some($crate::domain::ledger::posting_json(posting)),
            };
            $crate::domain::audit::append!($tx, state, org, &event).await?;
            Ok::<Result<(), fin_invariants::Violations>, sqlx::Error>(Ok(()))
        }
    };
}
pub(crate) use post;

/// `YYYY-MM`: the key of a month in `account_months`.
#[must_use]
pub fn month_of(date: Date) -> String {
    format!("{:04}-{:02}", date.year(), u8::from(date.month()))
}

/// The audit form of a posting.
#[must_use]
pub fn posting_json(posting: &Posting) -> serde_json::Value {
    serde_json::json!({
        "entry_date": posting.entry_date.to_string(),
        "description": posting.description,
        "source": posting.source.as_str(),
        "source_id": posting.source_id,
        "reverses": posting.reverses,
        "lines": posting.lines.iter().map(|(a, s, m)| serde_json::json!({"account_id": a, "side": s, "amount": m})).collect::<Vec<_>>(),
    })
}

/// Posts a manual journal entry, checked again here (the route checked its structure already).
///
/// # Errors
///
/// 422 with every violation.
pub async fn post_manual(
    state: &AppState,
    principal: &Principal,
    new: &NewEntry,
) -> Result<Uuid, AppError> {
    new.validate()?;
    let entry_date =
        parse_date(&new.entry_date).ok_or_else(|| AppError::Internal("validated date".into()))?;
    let posting = Posting {
        id: Uuid::now_v7(),
        entry_date,
        description: new.description.trim().to_owned(),
        source: Source::Manual,
        source_id: None,
        reverses: None,
        lines: new
            .lines
            .iter()
            .map(|l| (l.account_id, l.side, l.amount))
            .collect(),
    };
    let org = principal.organization_id;
    let actor = Some(principal.user_id);
    let outcome = with_pool!(state.db(), |pool| async {
        let mut tx = pool.begin_write().await?;
        let outcome = crate::domain::ledger::post!(tx, state, org, actor, &posting).await?;
        if outcome.is_ok() {
            tx.commit().await?;
        }
        Ok::<_, sqlx::Error>(outcome)
    }
    .await)?;
    outcome?;
    crate::domain::dashboard::invalidate(state, org).await;
    Ok(posting.id)
}

/// A stored journal entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    /// Id.
    pub id: Uuid,
    /// Date.
    pub entry_date: String,
    /// Description.
    pub description: String,
    /// How it came to be.
    pub source: String,
    /// The entry it reverses.
    pub reverses_id: Option<Uuid>,
    /// Lines.
    pub lines: Vec<LineView>,
}

/// A stored journal line.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LineView {
    /// The account.
    pub account_id: Uuid,
    /// `debit` or `credit`.
    pub side: String,
    /// The amount.
    pub amount: Money,
}

impl EntryView {
    /// The posting that reverses this entry: the same lines on the other sides, dated `date`.
    #[must_use]
    pub fn reversal(&self, date: Date, description: String, source_id: Uuid) -> Posting {
        let flip = |side: &str| {
            if side == "debit" {
                Side::Credit
            } else {
                Side::Debit
            }
        };
        Posting {
            id: Uuid::now_v7(),
            entry_date: date,
            description,
            source: Source::Reversal,
            source_id: Some(source_id),
            reverses: Some(self.id),
            lines: self
                .lines
                .iter()
                .map(|l| (l.account_id, flip(&l.side), l.amount))
                .collect(),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct EntryRow {
    id: Uuid,
    entry_date: Date,
    description: String,
    source: String,
    reverses_id: Option<Uuid>,
}

#[derive(Debug, sqlx::FromRow)]
struct LineRow {
    account_id: Uuid,
    side: String,
    amount_minor: i64,
    currency: String,
}

/// One journal entry of the caller's organization; another organization's is 404.
///
/// # Errors
///
/// 404 when there is no such entry in the caller's organization.
pub async fn entry(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<EntryView, AppError> {
    let org = principal.organization_id;
    let (row, lines) = with_pool!(state.db(), |pool| {
        async {
        let row: Option<EntryRow> = sqlx::query_as(
            "SELECT id, entry_date, description, source, reverses_id FROM journal_entries WHERE id = $1 AND organization_id = $2",
        )
        .bind(id)
        .bind(org)
        .fetch_optional(pool)
        .await?;
        let lines: Vec<LineRow> = sqlx::query_as(
            "SELECT account_id, side, amount_minor, currency FROM journal_lines WHERE entry_id = $1 AND organization_id = $2 ORDER BY line_no",
        )
        .bind(id)
        .bind(org)
        .fetch_all(pool)
        .await?;
        Ok::<_, sqlx::Error>((row, lines))
    }
    .await
    })?;
    let row = row.ok_or(AppError::NotFound)?;
    let lines = lines
        .into_iter()
        .map(|l| {
            let currency =
                Currency::from_code(&l.currency).map_err(|e| AppError::Internal(e.to_string()))?;
            Ok(LineView {
                account_id: l.account_id,
                side: l.side,
                amount: Money::from_minor(l.amount_minor, currency),
            })
        })
        .collect::<Result<_, AppError>>()?;
    Ok(EntryView {
        id: row.id,
        entry_date: row.entry_date.to_string(),
        description: row.description,
        source: row.source,
        reverses_id: row.reverses_id,
        lines,
    })
}

/// Posts the reversal of an entry: the same lines on the other sides. An entry is reversed at most once.
///
/// # Errors
///
/// 404 for an entry outside the organization; 409 when it was
/// reversed already.
pub async fn reverse(state: &AppState, principal: &Principal, id: Uuid) -> Result<Uuid, AppError> {
    let original = entry(state, principal, id).await?;
    let posting = original.reversal(
        state.clock().now().date(),
        format!("Reversal of {}", original.id),
        original.id,
    );
    let org = principal.organization_id;
    let actor = Some(principal.user_id);
    let outcome = with_pool!(state.db(), |pool| async {
        let mut tx = pool.begin_write().await?;
        let outcome = crate::domain::ledger::post!(tx, state, org, actor, &posting).await?;
        if outcome.is_ok() {
            tx.commit().await?;
        }
        Ok::<_, sqlx::Error>(outcome)
    }
    .await);
    if matches!(outcome, Ok(Ok(()))) {
        crate::domain::dashboard::invalidate(state, org).await;
    }
    match outcome {
        Ok(inner) => inner.map_err(AppError::from).map(|()| posting.id),
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            Err(AppError::Conflict("this entry was reversed already"))
        }
        Err(e) => Err(e.into()),
    }
}

/// One account's line in the trial balance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrialBalanceLine {
    /// The account.
    pub account_id: Uuid,
    /// Its code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Sum of debits.
    pub debits: Money,
    /// Sum of credits.
    pub credits: Money,
    /// Debits minus credits for debit-normal accounts, credits minus debits for the others.
    pub balance: Money,
}

/// The trial balance: every account with its debits, credits and balance, and whether the ledger balances.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TrialBalance {
    /// Per account, by code.
    pub accounts: Vec<TrialBalanceLine>,
    /// Sum of all debits.
    pub total_debits: Money,
    /// Sum of all credits.
    pub total_credits: Money,
    /// Whether the two sums agree.
    pub balanced: bool,
}

#[derive(Debug, sqlx::FromRow)]
struct SumRow {
    id: Uuid,
    code: String,
    name: String,
    kind: String,
    currency: String,
    debits: i64,
    credits: i64,
}

/// The posted totals of every account of the caller's organization (the integrity audit rebuilds them from
/// the lines and reports any drift).
///
/// # Errors
///
/// When the database fails or a sum leaves the range of money.
pub async fn trial_balance(
    state: &AppState,
    principal: &Principal,
) -> Result<TrialBalance, AppError> {
    let sql = "SELECT id, code, name, kind, currency, debits_posted AS debits, credits_posted AS credits \
               FROM accounts WHERE organization_id = $1 ORDER BY code";
    let rows: Vec<SumRow> = with_pool!(state.db(), |pool| sqlx::query_as(sql)
        .bind(principal.organization_id)
        .fetch_all(pool)
        .await)?;
    let mut total_debits = Money::zero(BASE_CURRENCY);
    let mut total_credits = Money::zero(BASE_CURRENCY);
    let overflow =
        |e: fin_invariants::MoneyError| AppError::Internal(format!("trial balance: {e}"));
    let mut accounts = Vec::with_capacity(rows.len());
    for row in rows {
        let currency = Currency::from_code(&row.currency).map_err(overflow)?;
        let debits = Money::from_minor(row.debits, currency);
        let credits = Money::from_minor(row.credits, currency);
        let debit_normal = AccountKind::parse(&row.kind).is_some_and(AccountKind::debit_normal);
        let balance = if debit_normal {
            debits.checked_sub(credits)
        } else {
            credits.checked_sub(debits)
        }
        .map_err(overflow)?;
        if currency == BASE_CURRENCY {
            total_debits = total_debits.checked_add(debits).map_err(overflow)?;
            total_credits = total_credits.checked_add(credits).map_err(overflow)?;
        }
        accounts.push(TrialBalanceLine {
            account_id: row.id,
            code: row.code,
            name: row.name,
            debits,
            credits,
            balance,
        });
    }
    Ok(TrialBalance {
        accounts,
        total_debits,
        total_credits,
        balanced: total_debits == total_credits,
    })
}
