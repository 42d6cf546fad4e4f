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

    fn add(&mut self, days_overdue: i64, amount: Money) -> Result<(), fin_invariants::MoneyError> {
        let bucket = match days_overdue {
            i64::MIN..=0 => &mut self.current,
            1..=30 => &mut self.days_1_30,
            31..=60 => &mut self.days_31_60,
            61..=90 => &mut self.days_61_90,
            _ => &mut self.days_90_plus,
        };
        *bucket = bucket.checked_add(amount)?;
        self.total = self.total.checked_add(amount)?;
        Ok(())
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
struct OpenInvoice {
    id: Uuid,
    kind: String,
    number: String,
    counterparty: String,
    due_date: Date,
    payable_amount: i64,
    paid_total: i64,
}

fn money_error(e: fin_invariants::MoneyError) -> AppError {
    AppError::Internal(format!("dashboard: {e}"))
}

/// Computes the dashboard from the database.
///
/// # Errors
///
/// When the database fails or a sum leaves the range of money.
pub async fn compute(db: &Db, org: Uuid, today: Date) -> Result<Dashboard, AppError> {
    let open: Vec<OpenInvoice> = with_pool!(db, |pool| {
        sqlx::query_as(
        "SELECT id, kind, number, counterparty, due_date, payable_amount, paid_total FROM invoices \
         WHERE organization_id = $1 AND status IN ('issued', 'partially_paid') AND currency = $2"
    )
    .bind(org)
    .bind(BASE_CURRENCY.code())
    .fetch_all(pool)
    .await
    })?;
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
    let mut overdue = Vec::new();
    let horizon = today.checked_add(time::Duration::days(30)).unwrap_or(today);
    let mut days: BTreeMap<Date, (Money, Money)> = BTreeMap::new();
    let (mut inflow, mut outflow) = (Money::zero(BASE_CURRENCY), Money::zero(BASE_CURRENCY));
    for invoice in open {
        let outstanding = money(invoice.payable_amount.saturating_sub(invoice.paid_total));
        let days_overdue = (today - invoice.due_date).whole_days();
        let sales = invoice.kind == "sales";
        if sales {
            receivables.add(days_overdue, outstanding)
        } else {
            payables.add(days_overdue, outstanding)
        }
        .map_err(money_error)?;
        if invoice.due_date <= horizon {
            let when = invoice.due_date.max(today);
            let day = days
                .entry(when)
                .or_insert((Money::zero(BASE_CURRENCY), Money::zero(BASE_CURRENCY)));
            if sales {
                day.0 = day.0.checked_add(outstanding).map_err(money_error)?;
                inflow = inflow.checked_add(outstanding).map_err(money_error)?;
            } else {
                day.1 = day.1.checked_add(outstanding).map_err(money_error)?;
                outflow = outflow.checked_add(outstanding).map_err(money_error)?;
            }
        }
        if days_overdue > 0 {
            overdue.push(Overdue {
                id: invoice.id,
                kind: invoice.kind,
                number: invoice.number,
                counterparty: invoice.counterparty,
                due_date: invoice.due_date.to_string(),
                days_overdue,
                outstanding,
            });
        }
    }
    overdue.sort_by(|a, b| {
        b.days_overdue
            .cmp(&a.days_overdue)
            .then_with(|| a.number.cmp(&b.number))
    });
    let overdue_count = overdue.len();
    overdue.truncate(OVERDUE_SHOWN);

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
