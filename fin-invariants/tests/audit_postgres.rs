//! The integrity audit over real PostgreSQL: an `AuditSource` written with sqlx the way the server writes
//! it (BIGINT minor units, 6-decimal quantities and prices, 4-decimal rates, keyset pagination), seeded
//! with clean data, then with deviations made by plain SQL updates.
// Helpers outside #[test] functions read test data; a panic there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use fin_invariants::audit::{
    AuditRunner, AuditSource, Page, RecordKind, StoredBalance, StoredInvoice,
};
use fin_invariants::invoice::{Invoice, InvoiceLine, TaxBreakdown, TaxCategory, Totals, compute};
use fin_invariants::journal::{
    Account, AccountId, Balance, BalanceLimit, EntryId, JournalEntry, JournalLine, Ledger,
    OrganizationId, Side,
};
use fin_invariants::{Currency, Decimal, Money, Quantity, Rate, UnitPrice};
use sqlx::{PgPool, Row};
use support::memory_source::VecSink;

const SCHEMA: &str = "
CREATE TABLE accounts (id BIGINT PRIMARY KEY, organization BIGINT NOT NULL, currency TEXT NOT NULL, lim TEXT NOT NULL);
CREATE TABLE invoices (id BIGINT PRIMARY KEY, currency TEXT NOT NULL, line_net_total BIGINT NOT NULL,
  tax_exclusive BIGINT NOT NULL, tax_total BIGINT NOT NULL, tax_inclusive BIGINT NOT NULL, payable BIGINT NOT NULL);
CREATE TABLE invoice_lines (invoice_id BIGINT NOT NULL, line_no INT NOT NULL, quantity BIGINT NOT NULL,
  unit_price BIGINT NOT NULL, tax_rate BIGINT NOT NULL, net_amount BIGINT NOT NULL, PRIMARY KEY (invoice_id, line_no));
CREATE TABLE invoice_tax (invoice_id BIGINT NOT NULL, rate BIGINT NOT NULL, taxable BIGINT NOT NULL, tax BIGINT NOT NULL,
  PRIMARY KEY (invoice_id, rate));
CREATE TABLE journal_lines (entry_id BIGINT NOT NULL, line_no INT NOT NULL, organization BIGINT NOT NULL,
  account_id BIGINT NOT NULL, side TEXT NOT NULL, amount BIGINT NOT NULL, currency TEXT NOT NULL, PRIMARY KEY (entry_id, line_no));
CREATE TABLE account_balances (account_id BIGINT PRIMARY KEY, currency TEXT NOT NULL, debits BIGINT NOT NULL, credits BIGINT NOT NULL);
";

#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("stored data: {0}")]
    Data(String),
}

fn data<E: std::fmt::Display>(e: E) -> SourceError {
    SourceError::Data(e.to_string())
}

struct PgSource {
    pool: PgPool,
}

fn after(cursor: Option<&str>) -> Result<i64, SourceError> {
    cursor.map_or(Ok(i64::MIN), |c| c.parse().map_err(data))
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn next_cursor(ids: &[i64], limit: usize) -> Option<String> {
    (ids.len() == limit)
        .then(|| ids.last().map(ToString::to_string))
        .flatten()
}

fn id(value: i64) -> Result<u128, SourceError> {
    u128::try_from(value).map_err(data)
}

impl AuditSource for PgSource {
    type Error = SourceError;

    async fn accounts(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, SourceError> {
        let rows = sqlx::query("SELECT id, organization, currency, lim FROM accounts WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after(cursor)?)
            .bind(limit_of(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let account_id: i64 = row.try_get("id")?;
            ids.push(account_id);
            let limit = match row.try_get::<String, _>("lim")?.as_str() {
                "debits_must_not_exceed_credits" => BalanceLimit::DebitsMustNotExceedCredits,
                "credits_must_not_exceed_debits" => BalanceLimit::CreditsMustNotExceedDebits,
                _ => BalanceLimit::None,
            };
            items.push(Account {
                id: AccountId(id(account_id)?),
                organization: OrganizationId(id(row.try_get("organization")?)?),
                currency: Currency::from_code(&row.try_get::<String, _>("currency")?)
                    .map_err(data)?,
                limit,
            });
        }
        Ok(Page {
            next: next_cursor(&ids, limit),
            items,
        })
    }

    async fn invoices(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredInvoice>, SourceError> {
        let rows = sqlx::query("SELECT * FROM invoices WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after(cursor)?)
            .bind(limit_of(limit))
            .fetch_all(&self.pool)
            .await?;
        let ids: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let lines = sqlx::query(
            "SELECT * FROM invoice_lines WHERE invoice_id = ANY($1) ORDER BY invoice_id, line_no",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let taxes = sqlx::query(
            "SELECT * FROM invoice_tax WHERE invoice_id = ANY($1) ORDER BY invoice_id, rate",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let invoice_id: i64 = row.try_get("id")?;
            let currency =
                Currency::from_code(&row.try_get::<String, _>("currency")?).map_err(data)?;
            let amount = |column: &str| -> Result<Decimal, SourceError> {
                Ok(Money::from_minor(row.try_get(column)?, currency).amount())
            };
            let mut invoice_lines = Vec::new();
            for line in lines
                .iter()
                .filter(|l| l.try_get::<i64, _>("invoice_id").ok() == Some(invoice_id))
            {
                let mut l = InvoiceLine::new(
                    Quantity::from_scaled(line.try_get("quantity")?).get(),
                    UnitPrice::from_scaled(line.try_get("unit_price")?).get(),
                    TaxCategory::Standard,
                    Some(Rate::from_scaled(line.try_get("tax_rate")?).get()),
                );
                l.net_amount =
                    Some(Money::from_minor(line.try_get("net_amount")?, currency).amount());
                invoice_lines.push(l);
            }
            let mut tax_breakdown = Vec::new();
            for tax in taxes
                .iter()
                .filter(|t| t.try_get::<i64, _>("invoice_id").ok() == Some(invoice_id))
            {
                tax_breakdown.push(TaxBreakdown {
                    category: TaxCategory::Standard,
                    rate: Some(Rate::from_scaled(tax.try_get("rate")?).get()),
                    taxable_amount: Money::from_minor(tax.try_get("taxable")?, currency).amount(),
                    tax_amount: Money::from_minor(tax.try_get("tax")?, currency).amount(),
                });
            }
            let totals = Totals {
                line_net_total: amount("line_net_total")?,
                allowance_total: None,
                charge_total: None,
                tax_exclusive_amount: amount("tax_exclusive")?,
                tax_total: Some(amount("tax_total")?),
                tax_inclusive_amount: amount("tax_inclusive")?,
                paid_amount: None,
                rounding_amount: None,
                payable_amount: amount("payable")?,
                tax_breakdown,
            };
            let invoice = Invoice {
                currency,
                lines: invoice_lines,
                allowances: vec![],
                charges: vec![],
                paid_amount: None,
                rounding_amount: None,
            };
            items.push(StoredInvoice {
                id: invoice_id.to_string(),
                invoice,
                totals,
            });
        }
        Ok(Page {
            next: next_cursor(&ids, limit),
            items,
        })
    }

    async fn journal_entries(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<JournalEntry>, SourceError> {
        let ids: Vec<i64> = sqlx::query("SELECT DISTINCT entry_id FROM journal_lines WHERE entry_id > $1 ORDER BY entry_id LIMIT $2")
            .bind(after(cursor)?)
            .bind(limit_of(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("entry_id"))
            .collect::<Result<_, _>>()?;
        let lines = sqlx::query(
            "SELECT * FROM journal_lines WHERE entry_id = ANY($1) ORDER BY entry_id, line_no",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let mut items: Vec<JournalEntry> = Vec::with_capacity(ids.len());
        for row in lines {
            let entry_id = EntryId(id(row.try_get("entry_id")?)?);
            let currency =
                Currency::from_code(&row.try_get::<String, _>("currency")?).map_err(data)?;
            let side = if row.try_get::<String, _>("side")? == "debit" {
                Side::Debit
            } else {
                Side::Credit
            };
            let line = JournalLine {
                account: AccountId(id(row.try_get("account_id")?)?),
                side,
                amount: Money::from_minor(row.try_get("amount")?, currency),
            };
            match items.last_mut() {
                Some(entry) if entry.id == entry_id => entry.lines.push(line),
                _ => items.push(JournalEntry {
                    id: entry_id,
                    organization: OrganizationId(id(row.try_get("organization")?)?),
                    lines: vec![line],
                }),
            }
        }
        Ok(Page {
            next: next_cursor(&ids, limit),
            items,
        })
    }

    async fn stored_balances(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredBalance>, SourceError> {
        let rows = sqlx::query(
            "SELECT * FROM account_balances WHERE account_id > $1 ORDER BY account_id LIMIT $2",
        )
        .bind(after(cursor)?)
        .bind(limit_of(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let account: i64 = row.try_get("account_id")?;
            ids.push(account);
            let currency =
                Currency::from_code(&row.try_get::<String, _>("currency")?).map_err(data)?;
            items.push(StoredBalance {
                account: AccountId(id(account)?),
                balance: Balance {
                    debits: Money::from_minor(row.try_get("debits")?, currency),
                    credits: Money::from_minor(row.try_get("credits")?, currency),
                },
            });
        }
        Ok(Page {
            next: next_cursor(&ids, limit),
            items,
        })
    }
}

fn minor(amount: Decimal) -> i64 {
    Money::from_decimal(amount, Currency::AUD).unwrap().minor()
}

const INVOICES: i64 = 150;
const ENTRIES: i64 = 200;

/// Writes clean data the way the server would: totals from `compute`, balances from a `Ledger`.
async fn seed(pool: &PgPool) {
    sqlx::raw_sql(SCHEMA).execute(pool).await.unwrap();
    let org = OrganizationId(1);
    let accounts = [
        Account {
            id: AccountId(1),
            organization: org,
            currency: Currency::AUD,
            limit: BalanceLimit::CreditsMustNotExceedDebits,
        },
        Account {
            id: AccountId(2),
            organization: org,
            currency: Currency::AUD,
            limit: BalanceLimit::None,
        },
        Account {
            id: AccountId(3),
            organization: org,
            currency: Currency::AUD,
            limit: BalanceLimit::DebitsMustNotExceedCredits,
        },
    ];
    for a in &accounts {
        let lim = match a.limit {
            BalanceLimit::DebitsMustNotExceedCredits => "debits_must_not_exceed_credits",
            BalanceLimit::CreditsMustNotExceedDebits => "credits_must_not_exceed_debits",
            _ => "none",
        };
        sqlx::query("INSERT INTO accounts VALUES ($1, 1, 'AUD', $2)")
            .bind(i64::try_from(a.id.0).unwrap())
            .bind(lim)
            .execute(pool)
            .await
            .unwrap();
    }
    for n in 0..INVOICES {
        let lines: Vec<InvoiceLine> = (0..(1 + n % 5))
            .map(|k| {
                let mut line = InvoiceLine::new(
                    Quantity::from_scaled((1 + k) * 1_500_000).get(),
                    UnitPrice::from_scaled(995_000 + n * 10_000 + k).get(),
                    TaxCategory::Standard,
                    Some(Rate::from_scaled(100_000).get()),
                );
                line.net_amount = Some(fin_invariants::invoice::line_net(&line).unwrap());
                line
            })
            .collect();
        let invoice = Invoice {
            currency: Currency::AUD,
            lines,
            allowances: vec![],
            charges: vec![],
            paid_amount: None,
            rounding_amount: None,
        };
        let t = compute(&invoice).unwrap();
        sqlx::query("INSERT INTO invoices VALUES ($1, 'AUD', $2, $3, $4, $5, $6)")
            .bind(n)
            .bind(minor(t.line_net_total))
            .bind(minor(t.tax_exclusive_amount))
            .bind(minor(t.tax_total.unwrap()))
            .bind(minor(t.tax_inclusive_amount))
            .bind(minor(t.payable_amount))
            .execute(pool)
            .await
            .unwrap();
        for (k, line) in invoice.lines.iter().enumerate() {
            sqlx::query("INSERT INTO invoice_lines VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(n)
                .bind(i32::try_from(k).unwrap())
                .bind(Quantity::new(line.quantity).unwrap().to_scaled().unwrap())
                .bind(UnitPrice::new(line.net_price).unwrap().to_scaled().unwrap())
                .bind(
                    Rate::new(line.tax_rate.unwrap())
                        .unwrap()
                        .to_scaled()
                        .unwrap(),
                )
                .bind(minor(line.net_amount.unwrap()))
                .execute(pool)
                .await
                .unwrap();
        }
        for b in &t.tax_breakdown {
            sqlx::query("INSERT INTO invoice_tax VALUES ($1, $2, $3, $4)")
                .bind(n)
                .bind(Rate::new(b.rate.unwrap()).unwrap().to_scaled().unwrap())
                .bind(minor(b.taxable_amount))
                .bind(minor(b.tax_amount))
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let mut ledger = Ledger::new();
    for n in 0..ENTRIES {
        let gross = Money::from_minor(1_100 + n, Currency::AUD);
        let gst = fin_invariants::gst::in_inclusive(gross).unwrap();
        let entry = JournalEntry {
            id: EntryId(u128::try_from(n).unwrap()),
            organization: org,
            lines: vec![
                JournalLine::debit(AccountId(1), gross),
                JournalLine::credit(AccountId(2), gross.checked_sub(gst).unwrap()),
                JournalLine::credit(AccountId(3), gst),
            ],
        };
        ledger.post(&entry, accounts.as_slice()).unwrap();
        for (k, line) in entry.lines.iter().enumerate() {
            let side = if line.side == Side::Debit {
                "debit"
            } else {
                "credit"
            };
            sqlx::query("INSERT INTO journal_lines VALUES ($1, $2, 1, $3, $4, $5, 'AUD')")
                .bind(n)
                .bind(i32::try_from(k).unwrap())
                .bind(i64::try_from(line.account.0).unwrap())
                .bind(side)
                .bind(line.amount.minor())
                .execute(pool)
                .await
                .unwrap();
        }
    }
    for (account, balance) in ledger.balances() {
        sqlx::query("INSERT INTO account_balances VALUES ($1, 'AUD', $2, $3)")
            .bind(i64::try_from(account.0).unwrap())
            .bind(balance.debits.minor())
            .bind(balance.credits.minor())
            .execute(pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn audit_over_postgres_finds_exactly_the_rows_changed_behind_its_back() {
    let db = test_support::require!(test_support::postgres().await);
    let pool = PgPool::connect(db.url()).await.unwrap();
    seed(&pool).await;

    let runner = AuditRunner::new().page_size(64);
    let mut sink = VecSink::default();
    let summary = runner
        .run(&mut PgSource { pool: pool.clone() }, &mut sink)
        .await
        .unwrap();
    assert!(summary.is_clean(), "{summary:?} {:?}", sink.deviations);
    assert_eq!(
        (
            summary.accounts,
            summary.invoices_checked,
            summary.entries_checked,
            summary.balances_checked
        ),
        (3, 150, 200, 3)
    );

    for statement in [
        // One cent more due than the invoice adds up to.
        "UPDATE invoices SET payable = payable + 1 WHERE id = 17",
        // A line net changed without its quantity or price: the line, the sum and the VAT group disagree.
        "UPDATE invoice_lines SET net_amount = net_amount + 1 WHERE invoice_id = 42 AND line_no = 0",
        // A journal line edited: the entry no longer balances and account 2's stored credits drift.
        "UPDATE journal_lines SET amount = amount - 1 WHERE entry_id = 99 AND line_no = 1",
        // A stored balance edited directly.
        "UPDATE account_balances SET debits = debits + 5 WHERE account_id = 1",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&pool)
            .await
            .unwrap();
    }
    let mut sink = VecSink::default();
    let summary = runner
        .run(&mut PgSource { pool: pool.clone() }, &mut sink)
        .await
        .unwrap();
    let found: Vec<(RecordKind, &str, Vec<&str>)> = sink
        .deviations
        .iter()
        .map(|d| (d.kind, d.id.as_str(), d.violations.codes().collect()))
        .collect();
    assert_eq!(
        found,
        [
            (RecordKind::Invoice, "17", vec!["BR-CO-16"]),
            (
                RecordKind::Invoice,
                "42",
                vec!["LINE-NET", "BR-CO-10", "BR-S-08"]
            ),
            (RecordKind::JournalEntry, "99", vec!["UNBALANCED"]),
            (RecordKind::Account, "1", vec!["BALANCE-DRIFT"]),
            (RecordKind::Account, "2", vec!["BALANCE-DRIFT"]),
        ]
    );
    assert_eq!(
        (
            summary.invoices_deviating,
            summary.entries_deviating,
            summary.balances_deviating
        ),
        (2, 1, 2)
    );
    pool.close().await;
}
