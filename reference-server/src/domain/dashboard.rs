//! The dashboard: receivables and payables with ageing, overdue invoices, cash position, revenue and
//! expenses by month, and a 30-day cash forecast from open invoices. Cached per organization (tier `short`)
//! and invalidated by the tag `dashboard` on every write that changes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use fin_invariants::Money;
use query_cache::{CacheKey, Tier};
use serde::Serialize;
use time::Date;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::db::Db;
use crate::domain::ledger::{BASE_CURRENCY, CASH};
use crate::error::AppError;
use crate::with_pool;

/// The cache tag every dashboard carries.
pub const TAG: &str = "dashboard";
/// How many overdue invoices the dashboard lists (the oldest first).
const OVERDUE_SHOWN: usize = 20;

/// Amounts owed, by how long they are overdue.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Ageing {
    /// Not yet due.
    pub current: Money,
    /// 1 to 30 days overdue.
    pub days_1_30: Money,
    /// 31 to 60 days overdue.
    pub days_31_60: Money,
    /// 61 to 90 days overdue.
    pub days_61_90: Money,
    /// More than 90 days overdue.
    pub days_90_plus: Money,
    /// All of it.
    pub total: Money,
}

impl Ageing {
    fn zero() -> Self {
        let z = Money::zero(BASE_CURRENCY);
        Self {
            current: z,
            days_1_30: z,
            days_31_60: z,
            days_61_90: z,
            days_90_plus: z,
            total: z,
        }
    }
}

/// An invoice past its due date.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Overdue {
    /// Id.
    pub id: Uuid,
    /// `sales` or `purchase`.
    pub kind: String,
    /// Number.
    pub number: String,
    /// Customer or supplier.
    pub counterparty: String,
    /// Due date.
    pub due_date: String,
    /// Days past it.
    pub days_overdue: i64,
    /// Still owed.
    pub outstanding: Money,
}

/// Income and expenses posted in one month.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Month {
    /// `YYYY-MM`.
    pub month: String,
    /// Net credits to income accounts.
    pub revenue: Money,
    /// Net debits to expense accounts.
    pub expenses: Money,
}

/// The 30-day cash forecast from open invoices (overdue ones are expected today).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Forecast {
    /// Receivables due within 30 days.
    pub inflow: Money,
    /// Payables due within 30 days.
    pub outflow: Money,
    /// Cash now plus inflow minus outflow.
    pub projected_cash: Money,
    /// Per day with a movement: date, inflow, outflow.
    pub days: Vec<ForecastDay>,
}

/// One day of the forecast.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ForecastDay {
    /// The date.
    pub date: String,
    /// Expected in.
    pub inflow: Money,
    /// Expected out.
    pub outflow: Money,
}

/// The dashboard of one organization.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Dashboard {
    /// The day the figures are for.
    pub as_of: String,
    /// Owed to us.
    pub receivables: Ageing,
    /// Owed by us.
    pub payables: Ageing,
    /// Overdue invoices, the longest overdue first.
    pub overdue: Vec<Overdue>,
    /// Number of overdue invoices.
    pub overdue_count: usize,
    /// The balance of cash at bank.
    pub cash: Money,
    /// The last 12 months with postings, oldest first.
    pub months: Vec<Month>,
    /// The next 30 days.
    pub forecast: Forecast,
}

/// The caller's dashboard, from the cache when fresh.
///
/// # Errors
///
/// When the database fails.
pub async fn dashboard(
    state: &AppState,
    principal: &Principal,
) -> Result<Arc<Dashboard>, AppError> {
    let org = principal.organization_id;
    let today = state.clock().now().date();
    let Some(cache) = state.dashboards() else {
        return compute(state.db(), org, today).await.map(Arc::new);
    };
    let key = CacheKey::new(&org.simple().to_string(), "dashboard", &())
        .and_then(|k| k.tagged([TAG]))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let db = state.db().clone();
    cache
        .get_or_load(&key, Tier::Short, move || async move {
            compute(&db, org, today).await.map(Arc::new)
        })
        .await
        .map_err(|e| match e.loader_error() {
            Some(inner) => AppError::Internal(inner.to_string()),
            None => AppError::Internal(e.to_string()),
        })
}

/// Drops the organization's cached dashboard after a write that changes it.
pub async fn invalidate(state: &AppState, org: Uuid) {
    if let Some(cache) = state.dashboards()
        && let Err(e) = cache.invalidate_tag(&org.simple().to_string(), TAG).await
    {
        // The in-process tier is already invalidated; a shared tier that missed it expires within its TTL.
        tracing::warn!(error = %e, "dashboard invalidation did not reach the shared cache");
    }
}

#[derive(Debug, sqlx::FromRow)]
struct OverdueRow {
    id: Uuid,
    kind: String,
    number: String,
    counterparty: String,
    due_date: Date,
    outstanding: i64,
}

/// One kind's open invoices summed per ageing bucket, and how many are overdue.
#[derive(Debug, sqlx::FromRow)]
struct AgeingRow {
    kind: String,
    current: i64,
    days_1_30: i64,
    days_31_60: i64,
    days_61_90: i64,
    days_90_plus: i64,
    overdue: i64,
}

fn money_error(e: fin_invariants::MoneyError) -> AppError {
    AppError::Internal(format!("dashboard: {e}"))
}

/// The open invoices in the base currency: issued or partly paid.
macro_rules! open_invoices {
    () => {
        "FROM invoices WHERE organization_id = $1 AND status IN ('issued', 'partially_paid') AND currency = $2"
    };
}

/// Computes the dashboard from the database: every figure is summed by the database, so a computation reads
/// a few dozen rows (ageing per kind, the overdue shown, the next 30 days, months, cash) whatever the number
/// of open invoices.
///
/// # Errors
///
/// When the database fails or a sum leaves the range of money.
pub async fn compute(db: &Db, org: Uuid, today: Date) -> Result<Dashboard, AppError> {
    let base = BASE_CURRENCY.code();
    let days_ago = |n: i64| today.checked_sub(time::Duration::days(n)).unwrap_or(today);
    let ageing: Vec<AgeingRow> = with_pool!(db, |pool| {
        sqlx::query_as(concat!(
        "SELECT kind, \
         CAST(COALESCE(SUM(CASE WHEN due_date >= $3 THEN payable_amount - paid_total END), 0) AS BIGINT) AS current, \
         CAST(COALESCE(SUM(CASE WHEN due_date < $3 AND due_date >= $4 THEN payable_amount - paid_total END), 0) AS BIGINT) AS days_1_30, \
         CAST(COALESCE(SUM(CASE WHEN due_date < $4 AND due_date >= $5 THEN payable_amount - paid_total END), 0) AS BIGINT) AS days_31_60, \
         CAST(COALESCE(SUM(CASE WHEN due_date < $5 AND due_date >= $6 THEN payable_amount - paid_total END), 0) AS BIGINT) AS days_61_90, \
         CAST(COALESCE(SUM(CASE WHEN due_date < $6 THEN payable_amount - paid_total END), 0) AS BIGINT) AS days_90_plus, \
         CAST(COALESCE(SUM(CASE WHEN due_date < $3 THEN 1 ELSE 0 END), 0) AS BIGINT) AS overdue ",
        open_invoices!(),
        " GROUP BY kind"
    ))
    .bind(org)
    .bind(base)
    .bind(today)
    .bind(days_ago(30))
    .bind(days_ago(60))
    .bind(days_ago(90))
    .fetch_all(pool)
    .await
    })?;
    // Most overdue first, then by number as Rust orders strings (bytewise: "C" collation on PostgreSQL).
    let overdue_sql = match db {
        Db::Sqlite(_) => concat!(
            "SELECT id, kind, number, counterparty, due_date, payable_amount - paid_total AS outstanding ",
            open_invoices!(),
            " AND due_date < $3 ORDER BY due_date, number LIMIT $4"
        ),
        Db::Postgres(_) => concat!(
            "SELECT id, kind, number, counterparty, due_date, payable_amount - paid_total AS outstanding ",
            open_invoices!(),
            " AND due_date < $3 ORDER BY due_date, number COLLATE \"C\" LIMIT $4"
        ),
    };
    let overdue_rows: Vec<OverdueRow> = with_pool!(db, |pool| sqlx::query_as(overdue_sql)
        .bind(org)
        .bind(base)
        .bind(today)
        .bind(i64::try_from(OVERDUE_SHOWN).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await)?;
    let horizon = today.checked_add(time::Duration::days(30)).unwrap_or(today);
    let upcoming: Vec<(Date, String, i64)> = with_pool!(db, |pool| sqlx::query_as(concat!(
        "SELECT due_date, kind, CAST(SUM(payable_amount - paid_total) AS BIGINT) ",
        open_invoices!(),
        " AND due_date >= $3 AND due_date <= $4 GROUP BY due_date, kind ORDER BY due_date"
    ))
    .bind(org)
    .bind(base)
    .bind(today)
    .bind(horizon)
    .fetch_all(pool)
    .await)?;
    let cash: Option<(i64, i64)> = with_pool!(db, |pool| {
        sqlx::query_as(
        "SELECT debits_posted, credits_posted FROM accounts WHERE organization_id = $1 AND code = $2"
    )
    .bind(org)
    .bind(CASH)
    .fetch_optional(pool)
    .await
    })?;
    let since = today
        .replace_day(1)
        .ok()
        .and_then(|d| d.checked_sub(time::Duration::days(334)))
        .unwrap_or(today);
    let monthly: Vec<(String, String, i64, i64)> = with_pool!(db, |pool| sqlx::query_as(
        "SELECT m.month, a.kind, CAST(SUM(m.debits) AS BIGINT), CAST(SUM(m.credits) AS BIGINT) \
         FROM account_months m JOIN accounts a ON a.id = m.account_id \
         WHERE m.organization_id = $1 AND a.kind IN ('income', 'expense') AND m.month >= $2 \
         GROUP BY m.month, a.kind ORDER BY 1"
    )
    .bind(org)
    .bind(crate::domain::ledger::month_of(since))
    .fetch_all(pool)
    .await)?;

    let money = |minor: i64| Money::from_minor(minor, BASE_CURRENCY);
    let cash = cash.map_or(Money::zero(BASE_CURRENCY), |(d, c)| {
        money(d.saturating_sub(c))
    });
    let mut receivables = Ageing::zero();
    let mut payables = Ageing::zero();
    let mut overdue_count = 0usize;
    for row in ageing {
        let ageing = if row.kind == "sales" {
            &mut receivables
        } else {
            &mut payables
        };
        ageing.current = money(row.current);
        ageing.days_1_30 = money(row.days_1_30);
        ageing.days_31_60 = money(row.days_31_60);
        ageing.days_61_90 = money(row.days_61_90);
        ageing.days_90_plus = money(row.days_90_plus);
        ageing.total = [
            row.days_1_30,
            row.days_31_60,
            row.days_61_90,
            row.days_90_plus,
        ]
        .into_iter()
        .try_fold(money(row.current), |sum, m| sum.checked_add(money(m)))
        .map_err(money_error)?;
        overdue_count = overdue_count.saturating_add(usize::try_from(row.overdue).unwrap_or(0));
    }
    let overdue = overdue_rows
        .into_iter()
        .map(|row| Overdue {
            id: row.id,
            kind: row.kind,
            number: row.number,
            counterparty: row.counterparty,
            due_date: row.due_date.to_string(),
            days_overdue: (today - row.due_date).whole_days(),
            outstanding: money(row.outstanding),
        })
        .collect();
    // What is overdue is expected today; the rest on its due date.
    let overdue_of = |a: &Ageing| a.total.checked_sub(a.current).map_err(money_error);
    let mut days: BTreeMap<Date, (Money, Money)> = BTreeMap::new();
    let (late_in, late_out) = (overdue_of(&receivables)?, overdue_of(&payables)?);
    if late_in.is_positive() || late_out.is_positive() {
        days.insert(today, (late_in, late_out));
    }
    let (mut inflow, mut outflow) = (late_in, late_out);
    for (due, kind, outstanding) in upcoming {
        let amount = money(outstanding);
        let day = days
            .entry(due)
            .or_insert((Money::zero(BASE_CURRENCY), Money::zero(BASE_CURRENCY)));
        if kind == "sales" {
            day.0 = day.0.checked_add(amount).map_err(money_error)?;
            inflow = inflow.checked_add(amount).map_err(money_error)?;
        } else {
            day.1 = day.1.checked_add(amount).map_err(money_error)?;
            outflow = outflow.checked_add(amount).map_err(money_error)?;
        }
    }

    let mut months: BTreeMap<String, Month> = BTreeMap::new();
    for (month, kind, debits, credits) in monthly {
        let entry = months.entry(month.clone()).or_insert_with(|| Month {
            month,
            revenue: Money::zero(BASE_CURRENCY),
            expenses: Money::zero(BASE_CURRENCY),
        });
        if kind == "income" {
            entry.revenue = money(credits.saturating_sub(debits));
        } else {
            entry.expenses = money(debits.saturating_sub(credits));
        }
    }
    let projected_cash = cash
        .checked_add(inflow)
        .and_then(|c| c.checked_sub(outflow))
        .map_err(money_error)?;
    Ok(Dashboard {
        as_of: today.to_string(),
        receivables,
        payables,
        overdue,
        overdue_count,
        cash,
        months: months.into_values().collect(),
        forecast: Forecast {
            inflow,
            outflow,
            projected_cash,
            days: days
                .into_iter()
                .map(|(date, (inflow, outflow))| ForecastDay {
                    date: date.to_string(),
                    inflow,
                    outflow,
                })
                .collect(),
        },
    })
}
