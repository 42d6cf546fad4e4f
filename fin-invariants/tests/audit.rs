//! The integrity audit over an in-memory source: every deviation reported once, pages bounded, progress
//! and summary right.
// Helpers outside #[test] functions read test data; a panic there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use fin_invariants::audit::{
    AuditError, AuditRunner, AuditSource, Page, Phase, RecordKind, StoredBalance, StoredGstInvoice,
    StoredInvoice,
};
use fin_invariants::gst::PriceBasis;
use fin_invariants::invoice::{Invoice, InvoiceLine, TaxCategory, TaxRounding, compute};
use fin_invariants::journal::{
    Account, AccountId, Balance, BalanceLimit, EntryId, JournalEntry, JournalLine, OrganizationId,
};
use fin_invariants::{Currency, Decimal, Money, parse_decimal};
use support::memory_source::{MemorySource, VecSink};

const ORG: OrganizationId = OrganizationId(1);

fn aud(s: &str) -> Money {
    Money::parse(s, Currency::AUD).unwrap()
}

fn d(s: &str) -> Decimal {
    parse_decimal(s).unwrap()
}

fn gst_invoice(id: usize, prices: &[&str]) -> StoredInvoice {
    let invoice = Invoice {
        currency: Currency::AUD,
        lines: prices
            .iter()
            .map(|p| InvoiceLine::new(Decimal::ONE, d(p), TaxCategory::Standard, Some(d("10"))))
            .collect(),
        allowances: vec![],
        charges: vec![],
        paid_amount: None,
        rounding_amount: None,
    };
    let totals = compute(&invoice).unwrap();
    StoredInvoice {
        id: format!("inv-{id}"),
        invoice,
        totals,
    }
}

fn sale(id: u128, amount: &str) -> JournalEntry {
    JournalEntry {
        id: EntryId(id),
        organization: ORG,
        lines: vec![
            JournalLine::debit(AccountId(1), aud(amount)),
            JournalLine::credit(AccountId(2), aud(amount)),
        ],
    }
}

fn clean_source() -> MemorySource {
    let accounts = vec![
        Account {
            id: AccountId(1),
            organization: ORG,
            currency: Currency::AUD,
            limit: BalanceLimit::CreditsMustNotExceedDebits,
        },
        Account {
            id: AccountId(2),
            organization: ORG,
            currency: Currency::AUD,
            limit: BalanceLimit::None,
        },
        Account {
            id: AccountId(3),
            organization: ORG,
            currency: Currency::AUD,
            limit: BalanceLimit::CreditsMustNotExceedDebits,
        },
    ];
    let invoices = (0..7)
        .map(|i| gst_invoice(i, &["9.95", "120.00", "0.05"]))
        .collect();
    let entries: Vec<JournalEntry> = (0..9).map(|i| sale(i, "10.00")).collect();
    let balances = vec![
        StoredBalance {
            account: AccountId(1),
            balance: Balance {
                debits: aud("90.00"),
                credits: aud("0"),
            },
        },
        StoredBalance {
            account: AccountId(2),
            balance: Balance {
                debits: aud("0"),
                credits: aud("90.00"),
            },
        },
    ];
    MemorySource {
        accounts,
        invoices,
        gst_invoices: vec![],
        entries,
        balances,
        largest_page: 0,
    }
}

#[tokio::test]
async fn a_clean_ledger_audits_clean_in_bounded_pages() {
    let mut source = clean_source();
    let mut sink = VecSink::default();
    let summary = AuditRunner::new()
        .page_size(2)
        .run(&mut source, &mut sink)
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
        (3, 7, 9, 2)
    );
    assert!(sink.deviations.is_empty());
    assert!(source.largest_page <= 2);
    // Progress after every page: 2 + 4 + 1 (no GST invoices: one empty page) + 5 + 1 pages, the counts
    // rising to the totals.
    assert_eq!(sink.progress.len(), 13);
    assert_eq!(sink.progress.last().unwrap().phase, Phase::Balances);
    let invoices: Vec<u64> = sink
        .progress
        .iter()
        .filter(|p| p.phase == Phase::Invoices)
        .map(|p| p.done)
        .collect();
    assert_eq!(invoices, [2, 4, 6, 7]);
}

#[tokio::test]
async fn every_seeded_deviation_is_reported_once_with_its_kind() {
    let mut source = clean_source();
    // Invoice 3: the stored VAT total is one cent off.
    source.invoices[3].totals.tax_total =
        Some(source.invoices[3].totals.tax_total.unwrap() + d("0.01"));
    // Entry 5: unbalanced (and the stored balances follow the lines, so no drift from it).
    source.entries[5].lines[1].amount = aud("9.99");
    source.balances[1].balance.credits = aud("89.99");
    // Account 1: stored debits drifted by one cent.
    source.balances[0].balance.debits = aud("90.01");
    // Account 3: lines that break its limit and no stored balance at all.
    source.entries.push(JournalEntry {
        id: EntryId(100),
        organization: ORG,
        lines: vec![
            JournalLine::debit(AccountId(2), aud("1.00")),
            JournalLine::credit(AccountId(3), aud("1.00")),
        ],
    });
    source.balances[1].balance.debits = aud("1.00");

    let mut sink = VecSink::default();
    let summary = AuditRunner::new()
        .page_size(3)
        .run(&mut source, &mut sink)
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
            (RecordKind::Invoice, "inv-3", vec!["BR-CO-14", "BR-CO-15"]),
            (RecordKind::JournalEntry, "5", vec!["UNBALANCED"]),
            (RecordKind::Account, "1", vec!["BALANCE-DRIFT"]),
            (
                RecordKind::Account,
                "3",
                vec!["BALANCE-DRIFT", "EXCEEDS-DEBITS"]
            ),
        ]
    );
    assert_eq!(
        (
            summary.invoices_deviating,
            summary.entries_deviating,
            summary.balances_deviating
        ),
        (1, 1, 2)
    );
    assert!(!summary.is_clean());
}

#[tokio::test]
async fn the_gst_rounding_method_of_each_invoice_is_recorded() {
    let mut source = clean_source();
    source.entries.clear();
    source.balances.clear();
    // Three supplies of 9.95: per supply 3 x 1.00 = 3.00, per invoice 2.985 -> 2.99.
    let mut per_supply = gst_invoice(100, &["9.95", "9.95", "9.95"]);
    per_supply.totals.tax_breakdown[0].tax_amount = d("3.00");
    per_supply.totals.tax_total = Some(d("3.00"));
    per_supply.totals.tax_inclusive_amount = d("32.85");
    per_supply.totals.payable_amount = d("32.85");
    source.invoices = vec![
        gst_invoice(1, &["9.95", "9.95", "9.95"]),
        per_supply,
        gst_invoice(2, &["100.00"]),
    ];
    let mut sink = VecSink::default();
    let summary = AuditRunner::new()
        .run(&mut source, &mut sink)
        .await
        .unwrap();
    assert!(sink.deviations.is_empty(), "{:?}", sink.deviations);
    assert_eq!(summary.invoices_rounded_per_supply, 1);
    assert_eq!(summary.invoices_rounded_per_invoice, 2);
    let recorded: Vec<(&str, TaxRounding)> = sink
        .roundings
        .iter()
        .map(|(id, r)| (id.as_str(), *r))
        .collect();
    // 3 x 9.95 at 10 %: per invoice 2.99 (per supply would be 3.00); 100.00: both methods give 10.00.
    assert_eq!(
        recorded,
        [
            ("inv-1", TaxRounding::PerInvoice),
            ("inv-100", TaxRounding::PerSupply),
            ("inv-2", TaxRounding::Either)
        ]
    );

    // Strict EN 16931 refuses the per-supply one.
    let mut sink = VecSink::default();
    let strict = AuditRunner::new().check_options(fin_invariants::invoice::CheckOptions::strict());
    let summary = strict.run(&mut source, &mut sink).await.unwrap();
    assert_eq!(summary.invoices_deviating, 1);
    assert_eq!(
        sink.deviations[0].violations.codes().collect::<Vec<_>>(),
        ["BR-S-09", "BR-CO-17"]
    );
}

#[tokio::test]
async fn gst_inclusive_invoices_are_audited_with_both_rounding_methods_and_the_one_used_recorded() {
    let mut source = clean_source();
    source.entries.clear();
    source.balances.clear();
    source.invoices.clear();
    let gst_invoice = |id: &str, basis, prices: &[&str], gst: &str| StoredGstInvoice {
        id: id.to_owned(),
        basis,
        supplies: prices.iter().map(|p| aud(p)).collect(),
        gst: aud(gst),
    };
    let three = ["0.50", "0.50", "0.50"];
    source.gst_invoices = vec![
        // 1.50 inclusive: per invoice 1.50 / 11 = 0.136 -> 0.14; per supply 3 x 0.045 -> 0.05 = 0.15.
        gst_invoice("incl-invoice", PriceBasis::Inclusive, &three, "0.14"),
        gst_invoice("incl-supply", PriceBasis::Inclusive, &three, "0.15"),
        // 110.00 inclusive: 10.00 either way.
        gst_invoice(
            "incl-either",
            PriceBasis::Inclusive,
            &["55.00", "55.00"],
            "10.00",
        ),
        // Neither 0.14 nor 0.15.
        gst_invoice("incl-wrong", PriceBasis::Inclusive, &three, "0.16"),
        // Exclusive 3 x 9.95: per supply 3.00, per invoice 2.99.
        gst_invoice(
            "excl-supply",
            PriceBasis::Exclusive,
            &["9.95", "9.95", "9.95"],
            "3.00",
        ),
    ];
    let mut sink = VecSink::default();
    let summary = AuditRunner::new()
        .page_size(2)
        .run(&mut source, &mut sink)
        .await
        .unwrap();
    assert_eq!(summary.invoices_checked, 5);
    assert_eq!(summary.invoices_deviating, 1);
    assert_eq!(summary.invoices_rounded_per_invoice, 2);
    assert_eq!(summary.invoices_rounded_per_supply, 2);
    assert!(source.largest_page <= 2);
    let recorded: Vec<(&str, TaxRounding)> = sink
        .roundings
        .iter()
        .map(|(id, r)| (id.as_str(), *r))
        .collect();
    assert_eq!(
        recorded,
        [
            ("incl-invoice", TaxRounding::PerInvoice),
            ("incl-supply", TaxRounding::PerSupply),
            ("incl-either", TaxRounding::Either),
            ("excl-supply", TaxRounding::PerSupply),
        ]
    );
    assert_eq!(sink.deviations.len(), 1);
    let deviation = &sink.deviations[0];
    assert_eq!(
        (deviation.kind, deviation.id.as_str()),
        (RecordKind::Invoice, "incl-wrong")
    );
    let v = &deviation.violations.as_slice()[0];
    assert_eq!(v.code.as_ref(), fin_invariants::codes::GST);
    assert_eq!(
        (v.expected.as_deref(), v.actual.as_deref()),
        (Some("0.14"), Some("0.16"))
    );
    assert!(sink.progress.iter().any(|p| p.phase == Phase::GstInvoices));
}

/// A source whose pagination never advances.
struct StuckSource;

#[derive(Debug, thiserror::Error)]
#[error("database gone")]
struct Gone;

impl AuditSource for StuckSource {
    type Error = Gone;
    async fn accounts(&mut self, _: Option<&str>, _: usize) -> Result<Page<Account>, Gone> {
        Ok(Page {
            items: vec![],
            next: Some("same".into()),
        })
    }
    async fn invoices(&mut self, _: Option<&str>, _: usize) -> Result<Page<StoredInvoice>, Gone> {
        Err(Gone)
    }
    async fn journal_entries(
        &mut self,
        _: Option<&str>,
        _: usize,
    ) -> Result<Page<JournalEntry>, Gone> {
        Err(Gone)
    }
    async fn stored_balances(
        &mut self,
        _: Option<&str>,
        _: usize,
    ) -> Result<Page<StoredBalance>, Gone> {
        Err(Gone)
    }
}

#[tokio::test]
async fn a_cursor_that_does_not_advance_stops_the_audit() {
    let result = AuditRunner::new()
        .run(&mut StuckSource, &mut VecSink::default())
        .await;
    assert!(matches!(result, Err(AuditError::CursorStuck)), "{result:?}");
}

#[tokio::test]
async fn a_failing_source_is_an_error_not_a_deviation() {
    let mut source = clean_source();
    source.accounts.clear();
    struct FailingInvoices(MemorySource);
    impl AuditSource for FailingInvoices {
        type Error = Gone;
        async fn accounts(&mut self, c: Option<&str>, l: usize) -> Result<Page<Account>, Gone> {
            Ok(self.0.accounts(c, l).await.unwrap())
        }
        async fn invoices(
            &mut self,
            _: Option<&str>,
            _: usize,
        ) -> Result<Page<StoredInvoice>, Gone> {
            Err(Gone)
        }
        async fn journal_entries(
            &mut self,
            _: Option<&str>,
            _: usize,
        ) -> Result<Page<JournalEntry>, Gone> {
            Err(Gone)
        }
        async fn stored_balances(
            &mut self,
            _: Option<&str>,
            _: usize,
        ) -> Result<Page<StoredBalance>, Gone> {
            Err(Gone)
        }
    }
    let mut sink = VecSink::default();
    let result = AuditRunner::new()
        .run(&mut FailingInvoices(source), &mut sink)
        .await;
    assert!(matches!(result, Err(AuditError::Source(_))));
    assert!(sink.deviations.is_empty());
}
