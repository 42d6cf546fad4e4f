//! The integrity audit: stream invoices and journals from a data source, recompute them, and report every
//! deviation to a sink (the server stores each as an integrity event), with progress and a summary.
//!
//! Memory stays bounded: one page of records at a time, plus one entry per account (the accounts'
//! organizations and limits, and the balances rebuilt from journal lines). Nothing grows with the number
//! of invoices or entries.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::future::Future;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::gst::{self, PriceBasis};
use crate::invoice::{CheckOptions, Invoice, TaxRounding, Totals, check_with};
use crate::journal::{
    Account, AccountId, Balance, BalanceLimit, JournalEntry, Ledger, check_entry,
};
use crate::money::Money;
use crate::violation::{Violation, Violations, codes};

/// One page of records and the cursor of the next page (`None` after the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The records, in the source's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this was the last page.
    pub next: Option<String>,
}

/// An invoice as stored: its id, its lines and allowances, and the totals stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct StoredInvoice {
    /// The invoice id, as the sink should report it.
    pub id: String,
    /// The invoice.
    pub invoice: Invoice,
    /// The totals stored with it.
    pub totals: Totals,
}

/// An invoice whose GST is checked by the GST Act rather than EN 16931: its taxable supplies at their
/// stated prices (GST-inclusive or exclusive) and the GST stated on it.
///
/// The audit accepts the GST rounded per invoice or per supply and records which one matched
/// ([`AuditSink::tax_rounding`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGstInvoice {
    /// The invoice id, as the sink should report it.
    pub id: String,
    /// Whether the supplies' prices include GST (1/11 of each is GST) or exclude it (10 % on top).
    pub basis: PriceBasis,
    /// The taxable supplies, all in one currency.
    pub supplies: Vec<Money>,
    /// The GST stated on the invoice.
    pub gst: Money,
}

/// An account balance as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct StoredBalance {
    /// The account.
    pub account: AccountId,
    /// Its stored debits and credits.
    pub balance: Balance,
}

/// Where the audit reads from. The server implements it over sqlx with keyset pagination; each method
/// returns at most `limit` records after `cursor` (from the start when `None`).
pub trait AuditSource {
    /// The source's error.
    type Error: StdError + Send + Sync + 'static;

    /// Accounts (all of them are kept in memory for the journal checks).
    fn accounts(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Account>, Self::Error>> + Send;

    /// Invoices with their stored totals.
    fn invoices(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<StoredInvoice>, Self::Error>> + Send;

    /// Invoices with GST-inclusive (or exclusive) prices, checked with [`gst::check`]. None by default,
    /// so a source that stores only EN 16931 invoices need not implement it.
    fn gst_invoices(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<StoredGstInvoice>, Self::Error>> + Send {
        let _ = (cursor, limit);
        std::future::ready(Ok(Page {
            items: Vec::new(),
            next: None,
        }))
    }

    /// Journal entries with their lines.
    fn journal_entries(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<JournalEntry>, Self::Error>> + Send;

    /// Stored account balances.
    fn stored_balances(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<StoredBalance>, Self::Error>> + Send;
}

/// What kind of record deviates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum RecordKind {
    /// An invoice whose stored totals do not follow from its lines.
    Invoice,
    /// A journal entry that breaks double entry.
    JournalEntry,
    /// An account whose stored balance differs from its journal lines, or breaks its limit.
    Account,
}

/// One deviating record and every violation found in it: what an integrity event stores.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Deviation {
    /// The kind of record.
    pub kind: RecordKind,
    /// Its id.
    pub id: String,
    /// What is wrong with it.
    pub violations: Violations,
}

/// The audit's phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Phase {
    /// Loading accounts.
    Accounts,
    /// Recomputing invoices.
    Invoices,
    /// Checking the GST of invoices with GST-inclusive or exclusive prices.
    GstInvoices,
    /// Checking journal entries and rebuilding balances.
    JournalEntries,
    /// Comparing stored balances.
    Balances,
}

/// Progress, reported after each page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Progress {
    /// The current phase.
    pub phase: Phase,
    /// Records of this phase done so far.
    pub done: u64,
}

/// Where deviations go. The server writes each as an integrity event.
pub trait AuditSink {
    /// The sink's error.
    type Error: StdError + Send + Sync + 'static;

    /// Stores one deviation.
    fn deviation(
        &mut self,
        deviation: Deviation,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Called after each page; does nothing by default.
    fn progress(&mut self, progress: Progress) {
        let _ = progress;
    }

    /// Called for every invoice whose tax matched a rounding method (the GST Act allows rounding per
    /// invoice or per taxable supply; the audit accepts both and this records which one each invoice
    /// used). Does nothing by default.
    fn tax_rounding(&mut self, invoice_id: &str, rounding: TaxRounding) {
        let _ = (invoice_id, rounding);
    }
}

/// Counts at the end of an audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[non_exhaustive]
pub struct Summary {
    /// Accounts loaded.
    pub accounts: u64,
    /// Invoices recomputed (EN 16931 and GST invoices).
    pub invoices_checked: u64,
    /// Invoices with at least one violation.
    pub invoices_deviating: u64,
    /// Invoices whose tax was rounded per invoice (EN 16931, GST "total invoice"), including those where
    /// both methods give the same amounts ([`TaxRounding::Either`]).
    pub invoices_rounded_per_invoice: u64,
    /// Invoices whose tax was rounded per supply (GST "taxable supply").
    pub invoices_rounded_per_supply: u64,
    /// Journal entries checked.
    pub entries_checked: u64,
    /// Journal entries with at least one violation.
    pub entries_deviating: u64,
    /// Stored balances compared.
    pub balances_checked: u64,
    /// Accounts whose balance deviates (differs from the lines, is missing, or breaks its limit).
    pub balances_deviating: u64,
}

impl Summary {
    fn count_rounding(&mut self, rounding: TaxRounding) {
        if rounding == TaxRounding::PerSupply {
            self.invoices_rounded_per_supply = self.invoices_rounded_per_supply.saturating_add(1);
        } else {
            self.invoices_rounded_per_invoice = self.invoices_rounded_per_invoice.saturating_add(1);
        }
    }

    /// Whether nothing deviated.
    #[must_use]
    pub const fn is_clean(&self) -> bool {
        self.invoices_deviating == 0 && self.entries_deviating == 0 && self.balances_deviating == 0
    }
}

/// Why an audit stopped before the end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The source failed.
    #[error("audit source failed")]
    Source(#[source] Box<dyn StdError + Send + Sync>),
    /// The sink failed.
    #[error("audit sink failed")]
    Sink(#[source] Box<dyn StdError + Send + Sync>),
    /// The source returned the same cursor twice: it would loop for ever.
    #[error("audit source returned the same cursor twice")]
    CursorStuck,
}

/// Runs the integrity audit.
///
/// Phases: load accounts; recompute every invoice with [`check_with`] (GST's two rounding methods accepted
/// by default, the one used counted in the [`Summary`]); check the GST of every invoice with GST-inclusive
/// prices ([`AuditSource::gst_invoices`]) with [`gst::check`], both rounding methods accepted and the one
/// used recorded; check every journal entry with [`check_entry`]
/// while rebuilding balances from all lines; compare every stored balance with the rebuilt one and
/// check the accounts' limits.
#[derive(Debug, Clone, Copy)]
pub struct AuditRunner {
    page_size: usize,
    options: CheckOptions,
}

impl Default for AuditRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl AuditRunner {
    /// Pages of 500 records; invoices checked with [`CheckOptions::gst`].
    #[must_use]
    pub const fn new() -> Self {
        Self {
            page_size: 500,
            options: CheckOptions::gst(),
        }
    }

    /// Records per page (at least 1).
    #[must_use]
    pub const fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = if page_size == 0 { 1 } else { page_size };
        self
    }

    /// The options invoices are checked with.
    #[must_use]
    pub const fn check_options(mut self, options: CheckOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs the audit to the end.
    ///
    /// # Errors
    ///
    /// [`AuditError`] when the source or the sink fails, or the source's pagination does not advance.
    /// Deviations are not errors: they go to the sink and are counted in the [`Summary`].
    pub async fn run<S: AuditSource, K: AuditSink>(
        &self,
        source: &mut S,
        sink: &mut K,
    ) -> Result<Summary, AuditError> {
        let mut summary = Summary::default();

        let mut accounts: HashMap<AccountId, Account> = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = source
                .accounts(cursor.as_deref(), self.page_size)
                .await
                .map_err(|e| AuditError::Source(Box::new(e)))?;
            for account in page.items {
                accounts.insert(account.id, account);
                summary.accounts = summary.accounts.saturating_add(1);
            }
            sink.progress(Progress {
                phase: Phase::Accounts,
                done: summary.accounts,
            });
            if !advance(&mut cursor, page.next)? {
                break;
            }
        }

        let mut cursor: Option<String> = None;
        loop {
            let page = source
                .invoices(cursor.as_deref(), self.page_size)
                .await
                .map_err(|e| AuditError::Source(Box::new(e)))?;
            for stored in page.items {
                summary.invoices_checked = summary.invoices_checked.saturating_add(1);
                let report = check_with(&stored.invoice, &stored.totals, &self.options);
                if let Some(rounding) = report.tax_rounding {
                    sink.tax_rounding(&stored.id, rounding);
                }
                if let Some(rounding) = report.tax_rounding {
                    summary.count_rounding(rounding);
                }
                if !report.violations.is_empty() {
                    summary.invoices_deviating = summary.invoices_deviating.saturating_add(1);
                    let deviation = Deviation {
                        kind: RecordKind::Invoice,
                        id: stored.id,
                        violations: report.violations,
                    };
                    sink.deviation(deviation)
                        .await
                        .map_err(|e| AuditError::Sink(Box::new(e)))?;
                }
            }
            sink.progress(Progress {
                phase: Phase::Invoices,
                done: summary.invoices_checked,
            });
            if !advance(&mut cursor, page.next)? {
                break;
            }
        }

        let mut cursor: Option<String> = None;
        loop {
            let page = source
                .gst_invoices(cursor.as_deref(), self.page_size)
                .await
                .map_err(|e| AuditError::Source(Box::new(e)))?;
            for stored in page.items {
                summary.invoices_checked = summary.invoices_checked.saturating_add(1);
                match gst::check(&stored.supplies, stored.basis, stored.gst) {
                    Ok(rounding) => {
                        sink.tax_rounding(&stored.id, rounding);
                        summary.count_rounding(rounding);
                    }
                    Err(violation) => {
                        summary.invoices_deviating = summary.invoices_deviating.saturating_add(1);
                        let deviation = Deviation {
                            kind: RecordKind::Invoice,
                            id: stored.id,
                            violations: Violations::from(violation),
                        };
                        sink.deviation(deviation)
                            .await
                            .map_err(|e| AuditError::Sink(Box::new(e)))?;
                    }
                }
            }
            sink.progress(Progress {
                phase: Phase::GstInvoices,
                done: summary.invoices_checked,
            });
            if !advance(&mut cursor, page.next)? {
                break;
            }
        }

        let mut ledger = Ledger::new().track_ids(false);
        let mut cursor: Option<String> = None;
        loop {
            let page = source
                .journal_entries(cursor.as_deref(), self.page_size)
                .await
                .map_err(|e| AuditError::Source(Box::new(e)))?;
            for entry in page.items {
                summary.entries_checked = summary.entries_checked.saturating_add(1);
                let mut violations = check_entry(&entry, &accounts);
                if let Err(v) = ledger.apply_unchecked(&entry) {
                    violations.push(v);
                }
                if !violations.is_empty() {
                    summary.entries_deviating = summary.entries_deviating.saturating_add(1);
                    let deviation = Deviation {
                        kind: RecordKind::JournalEntry,
                        id: entry.id.to_string(),
                        violations,
                    };
                    sink.deviation(deviation)
                        .await
                        .map_err(|e| AuditError::Sink(Box::new(e)))?;
                }
            }
            sink.progress(Progress {
                phase: Phase::JournalEntries,
                done: summary.entries_checked,
            });
            if !advance(&mut cursor, page.next)? {
                break;
            }
        }

        let mut compared: HashSet<AccountId> = HashSet::with_capacity(ledger.len());
        let mut cursor: Option<String> = None;
        loop {
            let page = source
                .stored_balances(cursor.as_deref(), self.page_size)
                .await
                .map_err(|e| AuditError::Source(Box::new(e)))?;
            for stored in page.items {
                summary.balances_checked = summary.balances_checked.saturating_add(1);
                compared.insert(stored.account);
                let mut violations = Violations::new();
                if let Err(v) = ledger.compare(stored.account, stored.balance) {
                    violations.push(v);
                }
                if let Some(v) =
                    limit_violation(&accounts, stored.account, ledger.balance(stored.account))
                {
                    violations.push(v);
                }
                if !violations.is_empty() {
                    summary.balances_deviating = summary.balances_deviating.saturating_add(1);
                    let deviation = Deviation {
                        kind: RecordKind::Account,
                        id: stored.account.to_string(),
                        violations,
                    };
                    sink.deviation(deviation)
                        .await
                        .map_err(|e| AuditError::Sink(Box::new(e)))?;
                }
            }
            sink.progress(Progress {
                phase: Phase::Balances,
                done: summary.balances_checked,
            });
            if !advance(&mut cursor, page.next)? {
                break;
            }
        }
        // Accounts with journal lines but no stored balance.
        let mut missing: Vec<(AccountId, Balance)> = ledger
            .balances()
            .filter(|(id, _)| !compared.contains(id))
            .collect();
        missing.sort_unstable_by_key(|(id, _)| *id);
        for (account, rebuilt) in missing {
            let mut violations = Violations::from(
                Violation::new(
                    codes::BALANCE_DRIFT,
                    format!("/accounts/{account}"),
                    "the account has journal lines but no stored balance",
                )
                .with_values(
                    format!("debits {:?}, credits {:?}", rebuilt.debits, rebuilt.credits),
                    "absent",
                ),
            );
            if let Some(v) = limit_violation(&accounts, account, Some(rebuilt)) {
                violations.push(v);
            }
            summary.balances_deviating = summary.balances_deviating.saturating_add(1);
            let deviation = Deviation {
                kind: RecordKind::Account,
                id: account.to_string(),
                violations,
            };
            sink.deviation(deviation)
                .await
                .map_err(|e| AuditError::Sink(Box::new(e)))?;
        }
        Ok(summary)
    }
}

/// Moves to the next cursor; `false` at the end.
fn advance(cursor: &mut Option<String>, next: Option<String>) -> Result<bool, AuditError> {
    match next {
        None => Ok(false),
        Some(next) if cursor.as_deref() == Some(next.as_str()) => Err(AuditError::CursorStuck),
        Some(next) => {
            *cursor = Some(next);
            Ok(true)
        }
    }
}

fn limit_violation(
    accounts: &HashMap<AccountId, Account>,
    id: AccountId,
    balance: Option<Balance>,
) -> Option<Violation> {
    let account = accounts.get(&id)?;
    let balance = balance?;
    let path = format!("/accounts/{id}");
    match account.limit {
        BalanceLimit::DebitsMustNotExceedCredits
            if balance.debits.minor() > balance.credits.minor() =>
        {
            Some(
                Violation::new(
                    codes::EXCEEDS_CREDITS,
                    path,
                    "the account's debits exceed its credits",
                )
                .with_values(format!("debits <= {}", balance.credits), balance.debits),
            )
        }
        BalanceLimit::CreditsMustNotExceedDebits
            if balance.credits.minor() > balance.debits.minor() =>
        {
            Some(
                Violation::new(
                    codes::EXCEEDS_DEBITS,
                    path,
                    "the account's credits exceed its debits",
                )
                .with_values(format!("credits <= {}", balance.debits), balance.credits),
            )
        }
        _ => None,
    }
}
