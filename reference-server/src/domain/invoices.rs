//! Sales and purchase invoices per EN 16931: totals computed by fin-invariants, stated totals of an imported
//! invoice checked and refused with every violation, a lifecycle draft -> issued -> partially paid / paid (or
//! void), and the journal entries of issuing and paying posted in the same transaction as the change.

use fin_invariants::invoice::{
    self, DocumentAllowanceCharge, Invoice, InvoiceLine, LineAllowanceCharge, TaxBreakdown,
    TaxCategory, Totals,
};
use fin_invariants::journal::Side;
use fin_invariants::{
    Currency, Decimal, Money, Quantity, Rate, UnitPrice, Validate, Violation, Violations, codes,
};
use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::db::BeginWrite;
use crate::domain::audit::{self, AuditEvent};
use crate::domain::ledger::{self, BASE_CURRENCY, Posting, Source, parse_date};
use crate::error::AppError;
use crate::with_pool;

/// Roles that create, issue and record payments of invoices.
pub const INVOICING: &[Role] = &[Role::Owner, Role::Admin, Role::Accountant, Role::Staff];

/// Sales (we invoice a customer) or purchase (a supplier invoices us).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Receivable.
    Sales,
    /// Payable.
    Purchase,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sales => "sales",
            Self::Purchase => "purchase",
        }
    }
}

/// One line as the API takes it: a description and the EN 16931 line.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(as = NewInvoiceLine)]
pub struct NewLine {
    /// What was supplied.
    pub description: String,
    /// The line (quantity, net_price, base_quantity, allowances, charges, tax_category, tax_rate).
    #[serde(flatten)]
    pub line: InvoiceLine,
}

/// A new invoice. `totals`, when given (an imported invoice), must be exactly what its lines compute.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvoice {
    /// Sales or purchase.
    pub kind: Kind,
    /// The invoice number, unique per organization and kind.
    pub number: String,
    /// The customer or supplier.
    pub counterparty: String,
    /// `YYYY-MM-DD`.
    pub issue_date: String,
    /// `YYYY-MM-DD`, on or after the issue date.
    pub due_date: String,
    /// ISO 4217; the organization's base currency.
    pub currency: Currency,
    /// The lines.
    pub lines: Vec<NewLine>,
    /// Document-level allowances.
    #[serde(default)]
    pub allowances: Vec<DocumentAllowanceCharge>,
    /// Document-level charges.
    #[serde(default)]
    pub charges: Vec<DocumentAllowanceCharge>,
    /// The totals an imported invoice states.
    #[serde(default)]
    pub totals: Option<Totals>,
}

impl NewInvoice {
    fn document(&self) -> Invoice {
        Invoice {
            currency: self.currency,
            lines: self.lines.iter().map(|l| l.line.clone()).collect(),
            allowances: self.allowances.clone(),
            charges: self.charges.clone(),
            paid_amount: None,
            rounding_amount: None,
        }
    }

    /// Every violation, and the totals when there are none.
    fn evaluate(&self) -> Result<Totals, Violations> {
        let mut v = Violations::new();
        let text = |v: &mut Violations, value: &str, path: &str, max: usize| {
            let len = value.trim().chars().count();
            if len == 0 || len > max {
                v.push(Violation::new(
                    codes::INVALID_VALUE,
                    path.to_owned(),
                    format!("must be 1 to {max} characters"),
                ));
            }
        };
        text(&mut v, &self.number, "/number", 50);
        text(&mut v, &self.counterparty, "/counterparty", 200);
        let issue = parse_date(&self.issue_date);
        let due = parse_date(&self.due_date);
        if issue.is_none() {
            v.push(Violation::new(
                codes::INVALID_VALUE,
                "/issue_date",
                "must be a date YYYY-MM-DD",
            ));
        }
        if due.is_none() {
            v.push(Violation::new(
                codes::INVALID_VALUE,
                "/due_date",
                "must be a date YYYY-MM-DD",
            ));
        }
        if let (Some(issue), Some(due)) = (issue, due)
            && due < issue
        {
            v.push(Violation::new(
                codes::INVALID_VALUE,
                "/due_date",
                "must not be before the issue date",
            ));
        }
        if self.currency != BASE_CURRENCY {
            v.push(
                Violation::new(
                    codes::INVALID_VALUE,
                    "/currency",
                    "must be the organization's currency",
                )
                .with_values(BASE_CURRENCY.code(), self.currency.code()),
            );
        }
        if self.lines.is_empty() || self.lines.len() > 1000 {
            v.push(Violation::new(
                codes::INVALID_VALUE,
                "/lines",
                "must have 1 to 1000 lines",
            ));
        }
        for (i, line) in self.lines.iter().enumerate() {
            text(
                &mut v,
                &line.description,
                &format!("/lines/{i}/description"),
                500,
            );
            let l = &line.line;
            if Quantity::new(l.quantity).is_err() {
                v.push(Violation::new(
                    codes::INVALID_VALUE,
                    format!("/lines/{i}/quantity"),
                    "at most 6 decimals",
                ));
            }
            if UnitPrice::new(l.net_price).is_err()
                || l.base_quantity.is_some_and(|b| Quantity::new(b).is_err())
            {
                v.push(Violation::new(
                    codes::INVALID_VALUE,
                    format!("/lines/{i}/net_price"),
                    "at most 6 decimals",
                ));
            }
            if l.tax_rate.is_some_and(|r| Rate::new(r).is_err()) {
                v.push(Violation::new(
                    codes::INVALID_VALUE,
                    format!("/lines/{i}/tax_rate"),
                    "at most 4 decimals",
                ));
            }
        }
        let document = self.document();
        match invoice::compute(&document) {
            Err(found) => v.extend(found),
            Ok(computed) => {
                if let Some(stated) = &self.totals {
                    v.extend(invoice::check(&document, stated));
                }
                if v.is_empty() {
                    return Ok(computed);
                }
            }
        }
        Err(v)
    }
}

impl Validate for NewInvoice {
    fn violations(&self) -> Violations {
        self.evaluate().err().unwrap_or_default()
    }
}

fn minor(amount: Decimal, currency: Currency) -> Result<i64, AppError> {
    Money::from_decimal(amount, currency)
        .map(Money::minor)
        .map_err(|e| {
            AppError::Validation(vec![
                Violation::new(
                    codes::OVERFLOW,
                    "/totals",
                    "an amount does not fit the currency",
                )
                .with_values("", e),
            ])
        })
}

fn scaled<T>(
    value: Result<T, fin_invariants::ScaleError>,
    to: impl Fn(T) -> Result<i64, fin_invariants::ScaleError>,
) -> Result<i64, AppError> {
    value
        .and_then(to)
        .map_err(|e| AppError::Internal(format!("validated scale: {e}")))
}

/// Creates a draft invoice with the totals fin-invariants computes (checked again here: the route checked the
/// same with the `Validated` extractor).
///
/// # Errors
///
/// 422 with every violation; 409 for a number in use.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    new: &NewInvoice,
) -> Result<Uuid, AppError> {
    let totals = new.evaluate()?;
    let currency = new.currency;
    let (Some(issue_date), Some(due_date)) =
        (parse_date(&new.issue_date), parse_date(&new.due_date))
    else {
        return Err(AppError::Internal("validated dates".into()));
    };
    let opt_minor = |d: Option<Decimal>| d.map(|d| minor(d, currency)).transpose();
    let row = (
        minor(totals.line_net_total, currency)?,
        opt_minor(totals.allowance_total)?,
        opt_minor(totals.charge_total)?,
        minor(totals.tax_exclusive_amount, currency)?,
        opt_minor(totals.tax_total)?,
        minor(totals.tax_inclusive_amount, currency)?,
        minor(totals.payable_amount, currency)?,
    );
    let mut lines = Vec::with_capacity(new.lines.len());
    for line in &new.lines {
        let l = &line.line;
        let net = invoice::line_net(l).map_err(|v| AppError::Validation(vec![v]))?;
        let sum = |items: &[LineAllowanceCharge]| {
            items
                .iter()
                .try_fold(Decimal::ZERO, |acc, a| acc.checked_add(a.amount))
        };
        let (Some(allowance), Some(charge)) = (sum(&l.allowances), sum(&l.charges)) else {
            return Err(AppError::Validation(vec![Violation::new(
                codes::OVERFLOW,
                "/lines",
                "allowances overflow",
            )]));
        };
        lines.push((
            line.description.trim().to_owned(),
            scaled(Quantity::new(l.quantity), Quantity::to_scaled)?,
            scaled(UnitPrice::new(l.net_price), UnitPrice::to_scaled)?,
            l.base_quantity
                .map(|b| scaled(Quantity::new(b), Quantity::to_scaled))
                .transpose()?,
            minor(allowance, currency)?,
            minor(charge, currency)?,
            l.tax_category.code(),
            l.tax_rate
                .map(|r| scaled(Rate::new(r), Rate::to_scaled))
                .transpose()?,
            minor(net, currency)?,
        ));
    }
    let mut adjustments = Vec::new();
    for (is_charge, items) in [(0i64, &new.allowances), (1, &new.charges)] {
        for a in items {
            let rate = a
                .tax_rate
                .map(|r| scaled(Rate::new(r), Rate::to_scaled))
                .transpose()?;
            adjustments.push((
                is_charge,
                minor(a.amount, currency)?,
                a.tax_category.code(),
                rate,
            ));
        }
    }
    let mut breakdown = Vec::with_capacity(totals.tax_breakdown.len());
    for b in &totals.tax_breakdown {
        let rate = b
            .rate
            .map(|r| scaled(Rate::new(r), Rate::to_scaled))
            .transpose()?;
        breakdown.push((
            b.category.code(),
            rate,
            minor(b.taxable_amount, currency)?,
            minor(b.tax_amount, currency)?,
        ));
    }

    let id = Uuid::now_v7();
    let org = principal.organization_id;
    let now = state.clock().now();
    let created = with_pool!(state.db(), |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO invoices (id, organization_id, kind, number, counterparty, issue_date, due_date, currency, status, \
             line_net_total, allowance_total, charge_total, tax_exclusive_amount, tax_total, tax_inclusive_amount, \
             payable_amount, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'draft', $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(id)
        .bind(org)
        .bind(new.kind.as_str())
        .bind(new.number.trim())
        .bind(new.counterparty.trim())
        .bind(issue_date)
        .bind(due_date)
        .bind(currency.code())
        .bind(row.0)
        .bind(row.1)
        .bind(row.2)
        .bind(row.3)
        .bind(row.4)
        .bind(row.5)
        .bind(row.6)
        .bind(principal.user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (n, l) in lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO invoice_lines (invoice_id, line_no, description, quantity, net_price, base_quantity, \
                 allowance_amount, charge_amount, tax_category, tax_rate, net_amount) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(id)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(&l.0)
            .bind(l.1)
            .bind(l.2)
            .bind(l.3)
            .bind(l.4)
            .bind(l.5)
            .bind(l.6)
            .bind(l.7)
            .bind(l.8)
            .execute(&mut *tx)
            .await?;
        }
        for (n, a) in adjustments.iter().enumerate() {
            sqlx::query(
                "INSERT INTO invoice_adjustments (invoice_id, position, is_charge, amount, tax_category, tax_rate) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(a.0)
            .bind(a.1)
            .bind(a.2)
            .bind(a.3)
            .execute(&mut *tx)
            .await?;
        }
        for (n, b) in breakdown.iter().enumerate() {
            sqlx::query(
                "INSERT INTO invoice_tax (invoice_id, position, category, rate, taxable_amount, tax_amount) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(b.0)
            .bind(b.1)
            .bind(b.2)
            .bind(b.3)
            .execute(&mut *tx)
            .await?;
        }
        let event = AuditEvent {
            actor_id: Some(principal.user_id),
            action: "invoice.create",
            entity_type: "invoice",
            entity_id: id.to_string(),
            before: None,
            after: Some(serde_json::json!({
                "kind": new.kind.as_str(), "number": new.number.trim(), "status": "draft",
                "currency": currency.code(), "payable_amount": totals.payable_amount.to_string(),
            })),
        };
        audit::append!(tx, state, org, &event).await?;
        tx.commit().await
    }
    .await
    });
    match created {
        Ok(()) => Ok(id),
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            Err(AppError::Conflict("an invoice with this number exists"))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct InvoiceRow {
    id: Uuid,
    kind: String,
    number: String,
    counterparty: String,
    issue_date: Date,
    due_date: Date,
    currency: String,
    status: String,
    line_net_total: i64,
    allowance_total: Option<i64>,
    charge_total: Option<i64>,
    tax_exclusive_amount: i64,
    tax_total: Option<i64>,
    tax_inclusive_amount: i64,
    payable_amount: i64,
    paid_total: i64,
    issue_entry_id: Option<Uuid>,
}

const INVOICE_COLUMNS: &str = "id, kind, number, counterparty, issue_date, due_date, currency, status, line_net_total, \
    allowance_total, charge_total, tax_exclusive_amount, tax_total, tax_inclusive_amount, payable_amount, paid_total, \
    issue_entry_id";

/// An invoice as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvoiceView {
    /// Id.
    pub id: Uuid,
    /// `sales` or `purchase`.
    pub kind: String,
    /// Number.
    pub number: String,
    /// Customer or supplier.
    pub counterparty: String,
    /// Issue date.
    pub issue_date: String,
    /// Due date.
    pub due_date: String,
    /// `draft`, `issued`, `partially_paid`, `paid` or `void`.
    pub status: String,
    /// BT-106.
    pub line_net_total: Money,
    /// BT-109.
    pub tax_exclusive_amount: Money,
    /// BT-110.
    pub tax_total: Money,
    /// BT-112.
    pub tax_inclusive_amount: Money,
    /// BT-115.
    pub payable_amount: Money,
    /// Payments recorded.
    pub paid: Money,
    /// What is still owed.
    pub outstanding: Money,
}

impl InvoiceRow {
    fn currency(&self) -> Result<Currency, AppError> {
        Currency::from_code(&self.currency).map_err(|e| AppError::Internal(e.to_string()))
    }

    fn view(&self) -> Result<InvoiceView, AppError> {
        let c = self.currency()?;
        let m = |v: i64| Money::from_minor(v, c);
        Ok(InvoiceView {
            id: self.id,
            kind: self.kind.clone(),
            number: self.number.clone(),
            counterparty: self.counterparty.clone(),
            issue_date: self.issue_date.to_string(),
            due_date: self.due_date.to_string(),
            status: self.status.clone(),
            line_net_total: m(self.line_net_total),
            tax_exclusive_amount: m(self.tax_exclusive_amount),
            tax_total: m(self.tax_total.unwrap_or(0)),
            tax_inclusive_amount: m(self.tax_inclusive_amount),
            payable_amount: m(self.payable_amount),
            paid: m(self.paid_total),
            outstanding: m(self.payable_amount.saturating_sub(self.paid_total)),
        })
    }
}

async fn load(state: &AppState, org: Uuid, id: Uuid) -> Result<InvoiceRow, AppError> {
    let sql =
        format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1 AND organization_id = $2");
    let row: Option<InvoiceRow> = with_pool!(state.db(), |pool| sqlx::query_as(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .bind(org)
    .fetch_optional(pool)
    .await)?;
    row.ok_or(AppError::NotFound)
}

/// One invoice of the caller's organization (another's is 404); reading it is recorded in the audit trail.
///
/// # Errors
///
/// 404 when there is no such invoice in the caller's organization.
pub async fn read(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<InvoiceView, AppError> {
    let row = load(state, principal.organization_id, id).await?;
    let org = principal.organization_id;
    with_pool!(state.db(), |pool| async {
        let mut tx = pool.begin_write().await?;
        let event = AuditEvent {
            actor_id: Some(principal.user_id),
            action: "invoice.view",
            entity_type: "invoice",
            entity_id: id.to_string(),
            before: None,
            after: None,
        };
        audit::append!(tx, state, org, &event).await?;
        tx.commit().await
    }
    .await)?;
    row.view()
}

/// The invoice as it is now, without recording a view: the answer of a write that just changed it.
///
/// # Errors
///
/// 404 outside the caller's organization; when the database fails.
pub async fn current(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<InvoiceView, AppError> {
    load(state, principal.organization_id, id).await?.view()
}

/// A page of the caller's invoices, newest first by id, after the cursor.
///
/// # Errors
///
/// When the database fails.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<InvoiceView>, AppError> {
    let org = principal.organization_id;
    // No cursor: start above every id (the greatest UUID), so one query serves every page.
    let after = after.unwrap_or(Uuid::max());
    let sql = format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE organization_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
    );
    let rows: Vec<InvoiceRow> = with_pool!(state.db(), |pool| sqlx::query_as(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(org)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await)?;
    rows.iter().map(InvoiceRow::view).collect()
}

/// The accounts an invoice posts to, by code, from the organization's chart.
async fn chart_ids(
    state: &AppState,
    org: Uuid,
    codes_wanted: &[&str],
) -> Result<Vec<Uuid>, AppError> {
    let rows: Vec<(Uuid, String)> = with_pool!(state.db(), |pool| sqlx::query_as(
        "SELECT id, code FROM accounts WHERE organization_id = $1"
    )
    .bind(org)
    .fetch_all(pool)
    .await)?;
    codes_wanted
        .iter()
        .map(|code| {
            rows.iter()
                .find(|(_, c)| c == code)
                .map(|(id, _)| *id)
                .ok_or_else(|| {
                    AppError::Validation(vec![Violation::new(
                        codes::UNKNOWN_ACCOUNT,
                        "/",
                        format!("the chart has no account {code}"),
                    )])
                })
        })
        .collect()
}

/// Changes an invoice's status and posts its journal entry in one transaction, guarded by the status it must
/// still have, so two concurrent changes cannot both apply.
/// A status change of an invoice, with the journal entry and payment that go with it.
struct Change<'a> {
    from: &'a [&'a str],
    to: &'static str,
    posting: Option<&'a Posting>,
    payment: Option<(Uuid, i64, Date)>,
    action: &'static str,
}

async fn transition(
    state: &AppState,
    principal: &Principal,
    row: &InvoiceRow,
    change: Change<'_>,
) -> Result<(), AppError> {
    let Change {
        from,
        to,
        posting,
        payment,
        action,
    } = change;
    let org = principal.organization_id;
    let actor = Some(principal.user_id);
    let paid_total = row.paid_total.saturating_add(payment.map_or(0, |p| p.1));
    with_pool!(state.db(), |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        if let Some(posting) = posting
            && let Err(violations) = ledger::post!(tx, state, org, actor, posting).await?
        {
            return Ok::<_, sqlx::Error>(Err(AppError::from(violations)));
        }
        let issue_entry = if to == "issued" { posting.map(|p| p.id) } else { row.issue_entry_id };
        // Guarded by the status and the paid total this change was computed from: a concurrent payment (or
        // any other change) makes it affect no row, so none is lost and nothing is overpaid.
        let guard = if from.len() == 1 { "status = $6" } else { "(status = $6 OR status = $7)" };
        let sql = format!(
            "UPDATE invoices SET status = $1, paid_total = $2, issue_entry_id = $3 \
             WHERE id = $4 AND organization_id = $5 AND paid_total = $8 AND {guard}"
        );
        let changed = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to)
            .bind(paid_total)
            .bind(issue_entry)
            .bind(row.id)
            .bind(org)
            .bind(from.first().copied().unwrap_or_default())
            .bind(from.get(1).copied().unwrap_or_default())
            .bind(row.paid_total)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed != 1 {
            return Ok(Err(AppError::Conflict("the invoice changed meanwhile")));
        }
        if let (Some((payment_id, amount, paid_on)), Some(posting)) = (payment, posting) {
            sqlx::query(
                "INSERT INTO payments (id, organization_id, invoice_id, amount, currency, paid_on, entry_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(payment_id)
            .bind(org)
            .bind(row.id)
            .bind(amount)
            .bind(&row.currency)
            .bind(paid_on)
            .bind(posting.id)
            .bind(state.clock().now())
            .execute(&mut *tx)
            .await?;
        }
        let event = AuditEvent {
            actor_id: actor,
            action,
            entity_type: "invoice",
            entity_id: row.id.to_string(),
            before: Some(serde_json::json!({"status": row.status, "paid_total": row.paid_total})),
            after: Some(serde_json::json!({"status": to, "paid_total": paid_total})),
        };
        audit::append!(tx, state, org, &event).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
    .await
    })??;
    crate::domain::dashboard::invalidate(state, org).await;
    Ok(())
}

/// Issues a draft: posts receivable against sales and GST collected (sales), or purchases and GST paid
/// against payable (purchase), in the same transaction.
///
/// # Errors
///
/// 404 outside the organization; 409 when the invoice is not a draft.
pub async fn issue(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<InvoiceView, AppError> {
    let row = load(state, principal.organization_id, id).await?;
    if row.status != "draft" {
        return Err(AppError::Conflict("only a draft can be issued"));
    }
    let c = row.currency()?;
    let (net, tax, gross) = (
        Money::from_minor(row.tax_exclusive_amount, c),
        Money::from_minor(row.tax_total.unwrap_or(0), c),
        Money::from_minor(row.tax_inclusive_amount, c),
    );
    let mut lines = Vec::new();
    if row.kind == "sales" {
        let ids = chart_ids(
            state,
            principal.organization_id,
            &[ledger::RECEIVABLE, ledger::SALES, ledger::GST_COLLECTED],
        )
        .await?;
        lines.push((ids[0], Side::Debit, gross));
        lines.push((ids[1], Side::Credit, net));
        lines.push((ids[2], Side::Credit, tax));
    } else {
        let ids = chart_ids(
            state,
            principal.organization_id,
            &[ledger::PURCHASES, ledger::GST_PAID, ledger::PAYABLE],
        )
        .await?;
        lines.push((ids[0], Side::Debit, net));
        lines.push((ids[1], Side::Debit, tax));
        lines.push((ids[2], Side::Credit, gross));
    }
    // A zero-rated or exempt invoice has no tax line; a credit note's negative amounts flip sides.
    let lines = lines
        .into_iter()
        .filter(|(_, _, m)| !m.is_zero())
        .map(|(a, side, m)| {
            if m.is_negative() {
                let flipped = if side == Side::Debit {
                    Side::Credit
                } else {
                    Side::Debit
                };
                m.checked_neg().map(|m| (a, flipped, m))
            } else {
                Ok((a, side, m))
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let posting = Posting {
        id: Uuid::now_v7(),
        entry_date: row.issue_date,
        description: format!("Invoice {} issued", row.number),
        source: Source::Invoice,
        source_id: Some(row.id),
        reverses: None,
        lines,
    };
    transition(
        state,
        principal,
        &row,
        Change {
            from: &["draft"],
            to: "issued",
            posting: Some(&posting),
            payment: None,
            action: "invoice.issue",
        },
    )
    .await?;
    current(state, principal, id).await
}

/// A payment as the API takes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    /// `{"amount": "100.00", "currency": "AUD"}`, in the invoice's currency.
    pub amount: Money,
    /// `YYYY-MM-DD`.
    pub paid_on: String,
}

/// Records a payment of an issued invoice and posts cash against the receivable (or payable).
///
/// # Errors
///
/// 404 outside the organization; 409 unless issued or partially paid; 422 for an amount
/// that is not positive, in another currency, or above what is outstanding.
pub async fn pay(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    payment: &NewPayment,
) -> Result<InvoiceView, AppError> {
    let row = load(state, principal.organization_id, id).await?;
    if row.status != "issued" && row.status != "partially_paid" {
        return Err(AppError::Conflict("only an issued invoice can be paid"));
    }
    let c = row.currency()?;
    let outstanding = row.payable_amount.saturating_sub(row.paid_total);
    let mut v = Violations::new();
    let Some(paid_on) = parse_date(&payment.paid_on) else {
        return Err(Violations::from_iter([Violation::new(
            codes::INVALID_VALUE,
            "/paid_on",
            "must be a date YYYY-MM-DD",
        )])
        .into());
    };
    if payment.amount.currency() != c {
        v.push(
            Violation::new(
                codes::CURRENCY_MISMATCH,
                "/amount/currency",
                "must be the invoice's currency",
            )
            .with_values(c.code(), payment.amount.currency().code()),
        );
    } else if !payment.amount.is_positive() || payment.amount.minor() > outstanding {
        v.push(
            Violation::new(
                codes::INVALID_VALUE,
                "/amount",
                "must be above zero and at most what is outstanding",
            )
            .with_values(Money::from_minor(outstanding, c), payment.amount),
        );
    }
    if !v.is_empty() {
        return Err(v.into());
    }
    let (receivable_or_payable, cash) = if row.kind == "sales" {
        let ids = chart_ids(
            state,
            principal.organization_id,
            &[ledger::RECEIVABLE, ledger::CASH],
        )
        .await?;
        ((ids[0], Side::Credit), (ids[1], Side::Debit))
    } else {
        let ids = chart_ids(
            state,
            principal.organization_id,
            &[ledger::PAYABLE, ledger::CASH],
        )
        .await?;
        ((ids[0], Side::Debit), (ids[1], Side::Credit))
    };
    let posting = Posting {
        id: Uuid::now_v7(),
        entry_date: paid_on,
        description: format!("Payment of invoice {}", row.number),
        source: Source::Payment,
        source_id: Some(row.id),
        reverses: None,
        lines: vec![
            (cash.0, cash.1, payment.amount),
            (
                receivable_or_payable.0,
                receivable_or_payable.1,
                payment.amount,
            ),
        ],
    };
    let to = if payment.amount.minor() == outstanding {
        "paid"
    } else {
        "partially_paid"
    };
    let pay = (Uuid::now_v7(), payment.amount.minor(), paid_on);
    transition(
        state,
        principal,
        &row,
        Change {
            from: &["issued", "partially_paid"],
            to,
            posting: Some(&posting),
            payment: Some(pay),
            action: "invoice.pay",
        },
    )
    .await?;
    current(state, principal, id).await
}

/// Voids a draft, or an issued invoice without payments (its issue entry is reversed).
///
/// # Errors
///
/// 404 outside the organization; 409 when paid in part or whole, or void already.
pub async fn void(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<InvoiceView, AppError> {
    let row = load(state, principal.organization_id, id).await?;
    match row.status.as_str() {
        "draft" => {
            transition(
                state,
                principal,
                &row,
                Change {
                    from: &["draft"],
                    to: "void",
                    posting: None,
                    payment: None,
                    action: "invoice.void",
                },
            )
            .await?
        }
        "issued" => {
            let original = ledger::entry(
                state,
                principal,
                row.issue_entry_id
                    .ok_or(AppError::Conflict("no issue entry"))?,
            )
            .await?;
            let posting = original.reversal(
                state.clock().now().date(),
                format!("Invoice {} voided", row.number),
                row.id,
            );
            transition(
                state,
                principal,
                &row,
                Change {
                    from: &["issued"],
                    to: "void",
                    posting: Some(&posting),
                    payment: None,
                    action: "invoice.void",
                },
            )
            .await?;
        }
        _ => {
            return Err(AppError::Conflict(
                "only a draft or an unpaid issued invoice can be voided",
            ));
        }
    }
    current(state, principal, id).await
}

#[derive(Debug, sqlx::FromRow)]
struct LineRow {
    quantity: i64,
    net_price: i64,
    base_quantity: Option<i64>,
    allowance_amount: i64,
    charge_amount: i64,
    tax_category: String,
    tax_rate: Option<i64>,
    net_amount: i64,
}

/// Rebuilds the fin-invariants invoice and the stored totals of an invoice from its rows, for the integrity
/// audit: what the lines say, and what was stored as their totals.
///
/// # Errors
///
/// When the database fails or a stored value is unreadable.
pub async fn stored_document(
    db: &crate::db::Db,
    id: Uuid,
) -> Result<Option<(Invoice, Totals)>, AppError> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1");
    let (row, lines, adjustments, taxes) = with_pool!(db, |pool| {
        async {
        let row: Option<InvoiceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(id).fetch_optional(pool).await?;
        let lines: Vec<LineRow> = sqlx::query_as(
            "SELECT quantity, net_price, base_quantity, allowance_amount, charge_amount, tax_category, tax_rate, net_amount \
             FROM invoice_lines WHERE invoice_id = $1 ORDER BY line_no",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        let adjustments: Vec<(i64, i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT is_charge, amount, tax_category, tax_rate FROM invoice_adjustments WHERE invoice_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        let taxes: Vec<(String, Option<i64>, i64, i64)> = sqlx::query_as(
            "SELECT category, rate, taxable_amount, tax_amount FROM invoice_tax WHERE invoice_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        Ok::<_, sqlx::Error>((row, lines, adjustments, taxes))
    }
    .await
    })?;
    let Some(row) = row else { return Ok(None) };
    let c = row.currency()?;
    let amount = |minor: i64| Money::from_minor(minor, c).amount();
    let category = |code: &str| {
        code.parse::<TaxCategory>()
            .map_err(|_| AppError::Internal(format!("stored tax category {code:?}")))
    };
    let rate = |r: Option<i64>| r.map(|r| Rate::from_scaled(r).get());
    let mut doc_lines = Vec::with_capacity(lines.len());
    for l in lines {
        let mut line = InvoiceLine::new(
            Quantity::from_scaled(l.quantity).get(),
            UnitPrice::from_scaled(l.net_price).get(),
            category(&l.tax_category)?,
            rate(l.tax_rate),
        );
        line.base_quantity = l.base_quantity.map(|b| Quantity::from_scaled(b).get());
        if l.allowance_amount != 0 {
            line.allowances.push(LineAllowanceCharge {
                amount: amount(l.allowance_amount),
                base_amount: None,
                percent: None,
            });
        }
        if l.charge_amount != 0 {
            line.charges.push(LineAllowanceCharge {
                amount: amount(l.charge_amount),
                base_amount: None,
                percent: None,
            });
        }
        line.net_amount = Some(amount(l.net_amount));
        doc_lines.push(line);
    }
    let mut allowances = Vec::new();
    let mut charges = Vec::new();
    for (is_charge, value, cat, r) in adjustments {
        let adjustment = DocumentAllowanceCharge {
            amount: amount(value),
            base_amount: None,
            percent: None,
            tax_category: category(&cat)?,
            tax_rate: rate(r),
        };
        if is_charge == 1 {
            charges.push(adjustment)
        } else {
            allowances.push(adjustment)
        }
    }
    let mut tax_breakdown = Vec::with_capacity(taxes.len());
    for (cat, r, taxable, tax) in taxes {
        tax_breakdown.push(TaxBreakdown {
            category: category(&cat)?,
            rate: rate(r),
            taxable_amount: amount(taxable),
            tax_amount: amount(tax),
        });
    }
    let document = Invoice {
        currency: c,
        lines: doc_lines,
        allowances,
        charges,
        paid_amount: None,
        rounding_amount: None,
    };
    let totals = Totals {
        line_net_total: amount(row.line_net_total),
        allowance_total: row.allowance_total.map(amount),
        charge_total: row.charge_total.map(amount),
        tax_exclusive_amount: amount(row.tax_exclusive_amount),
        tax_total: row.tax_total.map(amount),
        tax_inclusive_amount: amount(row.tax_inclusive_amount),
        paid_amount: None,
        rounding_amount: None,
        payable_amount: amount(row.payable_amount),
        tax_breakdown,
    };
    Ok(Some((document, totals)))
}
