//! fin-invariants: EN 16931 invoice checks and journal entry checks per second.
//!
//! `cargo bench -p benches --bench fininvariants`
//!
//! - `fininvariants/invoice_check/ours`: one iteration checks one 20-line invoice (line nets stated, two VAT
//!   rates, a document allowance and charge) against its stated totals with `invoice::check`.
//!   Throughput is reported in lines (20 per iteration); the target is over 1 M lines per second.
//! - `fininvariants/journal_check/ours`: one iteration checks one 20-line journal entry against a chart of
//!   100 accounts with `journal::check_entry`. Throughput in lines.
//!
//! There is no peer crate that checks EN 16931 totals or journals, so each group has `ours` only.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fin_invariants::invoice::{
    DocumentAllowanceCharge, Invoice, InvoiceLine, TaxCategory, check, compute, line_net,
};
use fin_invariants::journal::{
    Account, AccountId, BalanceLimit, EntryId, JournalEntry, JournalLine, OrganizationId,
    check_entry,
};
use fin_invariants::{Currency, Decimal, Money};

const LINES: u64 = 20;

fn invoice() -> Invoice {
    let lines = (0..LINES)
        .map(|i| {
            let i = i64::try_from(i).unwrap_or(0);
            let rate = if i % 3 == 0 {
                Decimal::from(21)
            } else {
                Decimal::from(6)
            };
            let mut line = InvoiceLine::new(
                Decimal::new(1 + i % 7, 0),
                Decimal::new(995 + 137 * i, 2),
                TaxCategory::Standard,
                Some(rate),
            );
            if i % 5 == 0 {
                line.base_quantity = Some(Decimal::from(12));
            }
            line.net_amount = Some(line_net(&line).expect("valid line"));
            line
        })
        .collect();
    let ac = |amount| DocumentAllowanceCharge {
        amount: Decimal::new(amount, 2),
        base_amount: None,
        percent: None,
        tax_category: TaxCategory::Standard,
        tax_rate: Some(Decimal::from(21)),
    };
    Invoice {
        currency: Currency::EUR,
        lines,
        allowances: vec![ac(1_000)],
        charges: vec![ac(550)],
        paid_amount: None,
        rounding_amount: None,
    }
}

fn bench_invoice_check(c: &mut Criterion) {
    let invoice = invoice();
    let totals = compute(&invoice).expect("computable");
    assert!(check(&invoice, &totals).is_empty());
    let mut group = c.benchmark_group("fininvariants/invoice_check");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    group.throughput(Throughput::Elements(LINES));
    group.bench_function("ours", |b| {
        b.iter(|| check(black_box(&invoice), black_box(&totals)))
    });
    group.finish();
}

fn bench_journal_check(c: &mut Criterion) {
    let org = OrganizationId(1);
    let accounts: HashMap<AccountId, Account> = (0..100u128)
        .map(|i| {
            (
                AccountId(i),
                Account {
                    id: AccountId(i),
                    organization: org,
                    currency: Currency::AUD,
                    limit: BalanceLimit::None,
                },
            )
        })
        .collect();
    let half = LINES / 2;
    let mut lines: Vec<JournalLine> = (0..half)
        .map(|i| {
            JournalLine::debit(
                AccountId(u128::from(i)),
                Money::from_minor(10_000 + i64::try_from(i).unwrap_or(0), Currency::AUD),
            )
        })
        .collect();
    lines.extend((0..half).map(|i| {
        JournalLine::credit(
            AccountId(u128::from(50 + i)),
            Money::from_minor(10_000 + i64::try_from(i).unwrap_or(0), Currency::AUD),
        )
    }));
    let entry = JournalEntry {
        id: EntryId(1),
        organization: org,
        lines,
    };
    assert!(check_entry(&entry, &accounts).is_empty());
    let mut group = c.benchmark_group("fininvariants/journal_check");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    group.throughput(Throughput::Elements(LINES));
    group.bench_function("ours", |b| {
        b.iter(|| check_entry(black_box(&entry), black_box(&accounts)))
    });
    group.finish();
}

criterion_group!(benches, bench_invoice_check, bench_journal_check);
criterion_main!(benches);
