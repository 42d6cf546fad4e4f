//! The eleven official CEN/TC 434 example documents compute to exactly their stated figures.
// Helpers outside #[test] functions read test data; a panic there is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use fin_invariants::invoice::{
    CheckOptions, TaxBreakdown, Term, check, check_with, compute, line_net,
};
use fin_invariants::{Decimal, parse_decimal};
use support::{examples, expected_findings, rules_reading};

fn same_breakdown(a: &[TaxBreakdown], b: &[TaxBreakdown]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| {
            b.iter().any(|y| {
                x.category == y.category
                    && x.rate == y.rate
                    && x.taxable_amount == y.taxable_amount
                    && x.tax_amount == y.tax_amount
            })
        })
}

#[test]
fn all_eleven_examples_are_read() {
    assert_eq!(examples().len(), 11);
}

#[test]
fn every_example_computes_to_its_stated_totals_and_breakdown() {
    for ex in examples() {
        let computed = compute(&ex.invoice).unwrap_or_else(|v| panic!("{}: {v}", ex.name));
        for term in Term::ALL {
            let stated = ex.totals.get(term).unwrap_or(Decimal::ZERO);
            let ours = computed.get(term).unwrap_or(Decimal::ZERO);
            assert_eq!(ours, stated, "{} {}", ex.name, term.code());
        }
        assert!(
            same_breakdown(&computed.tax_breakdown, &ex.totals.tax_breakdown),
            "{}: {:?} vs {:?}",
            ex.name,
            computed.tax_breakdown,
            ex.totals.tax_breakdown
        );
    }
}

#[test]
fn line_nets_match_except_the_known_slips() {
    for ex in examples() {
        let slips: BTreeSet<usize> = expected_findings(&ex.name)
            .iter()
            .filter(|(code, _)| *code == "LINE-NET")
            .map(|(_, path)| path.split('/').nth(2).unwrap().parse().unwrap())
            .collect();
        for (i, line) in ex.invoice.lines.iter().enumerate() {
            let ours = line_net(line).unwrap();
            let stated = line.net_amount.unwrap();
            assert_eq!(
                ours == stated,
                !slips.contains(&i),
                "{} line {}: {ours} vs {stated}",
                ex.name,
                i + 1
            );
        }
    }
}

#[test]
fn check_reports_exactly_the_known_line_findings_and_no_business_rule() {
    for ex in examples() {
        for options in [
            CheckOptions::strict(),
            CheckOptions::artefacts(),
            CheckOptions::gst(),
        ] {
            let report = check_with(&ex.invoice, &ex.totals, &options);
            let found: Vec<(&str, &str)> = report
                .violations
                .iter()
                .map(|v| (v.code.as_ref(), v.path.as_str()))
                .collect();
            assert_eq!(
                found,
                expected_findings(&ex.name),
                "{} {options:?}",
                ex.name
            );
            assert!(report.tax_rounding.is_some(), "{}", ex.name);
        }
    }
}

#[test]
fn example_2_rounds_the_tie_half_away_from_zero() {
    let ex = examples()
        .into_iter()
        .find(|e| e.name == "ubl-tc434-example2")
        .unwrap();
    let computed = compute(&ex.invoice).unwrap();
    let s25 = computed
        .tax_breakdown
        .iter()
        .find(|b| b.rate == Some(Decimal::from(25)))
        .unwrap();
    assert_eq!(s25.taxable_amount, parse_decimal("1460.50").unwrap());
    assert_eq!(
        s25.tax_amount,
        parse_decimal("365.13").unwrap(),
        "banker's rounding would give 365.12"
    );
}

#[test]
fn changing_one_stated_total_by_one_cent_breaks_exactly_its_rules() {
    let cent = parse_decimal("0.01").unwrap();
    for ex in examples() {
        let baseline: BTreeSet<String> = check(&ex.invoice, &ex.totals)
            .codes()
            .map(str::to_owned)
            .collect();
        for term in Term::ALL {
            for delta in [cent, -cent] {
                let mut totals = ex.totals.clone();
                totals.set(term, totals.get(term).unwrap_or(Decimal::ZERO) + delta);
                let found: BTreeSet<String> = check(&ex.invoice, &totals)
                    .codes()
                    .filter(|c| !baseline.contains(*c))
                    .map(str::to_owned)
                    .collect();
                let expected = rules_reading(term.code());
                assert_eq!(found, expected, "{} {} {delta}", ex.name, term.code());
            }
        }
    }
}

#[test]
fn changing_a_stated_vat_amount_by_one_cent_breaks_br_co_14_17_and_the_category_rule() {
    let cent = parse_decimal("0.01").unwrap();
    for ex in examples() {
        for k in 0..ex.totals.tax_breakdown.len() {
            let mut totals = ex.totals.clone();
            totals.tax_breakdown[k].tax_amount += cent;
            let category = totals.tax_breakdown[k].category;
            let violations = check(&ex.invoice, &totals);
            let found: BTreeSet<&str> = violations
                .iter()
                .filter(|v| v.is_business_rule())
                .map(|v| v.code.as_ref())
                .collect();
            let expected: BTreeSet<&str> = ["BR-CO-14", "BR-CO-17", category.tax_rule()].into();
            assert_eq!(found, expected, "{} breakdown {k}", ex.name);
            // Within the artefacts' tolerance only BR-CO-14 (exact) remains.
            let tolerant = check_with(&ex.invoice, &totals, &CheckOptions::artefacts());
            let found: BTreeSet<&str> = tolerant
                .violations
                .iter()
                .filter(|v| v.is_business_rule())
                .map(|v| v.code.as_ref())
                .collect();
            assert_eq!(
                found,
                BTreeSet::from(["BR-CO-14"]),
                "{} breakdown {k} tolerant",
                ex.name
            );
        }
    }
}

#[test]
fn changing_a_stated_taxable_amount_breaks_its_category_rule() {
    let cent = parse_decimal("0.01").unwrap();
    for ex in examples() {
        for k in 0..ex.totals.tax_breakdown.len() {
            let mut totals = ex.totals.clone();
            totals.tax_breakdown[k].taxable_amount += cent;
            let category = totals.tax_breakdown[k].category;
            let violations = check(&ex.invoice, &totals);
            let found: BTreeSet<&str> = violations
                .iter()
                .filter(|v| v.is_business_rule())
                .map(|v| v.code.as_ref())
                .collect();
            assert!(
                found.contains(category.taxable_rule()),
                "{} breakdown {k}: {found:?}",
                ex.name
            );
            let allowed: BTreeSet<&str> =
                [category.taxable_rule(), category.tax_rule(), "BR-CO-17"].into();
            assert!(
                found.is_subset(&allowed),
                "{} breakdown {k}: {found:?}",
                ex.name
            );
        }
    }
}

#[cfg(feature = "serde")]
#[test]
fn invoices_round_trip_through_json_with_decimal_strings() {
    for ex in examples() {
        let doc = fin_invariants::invoice::InvoiceWithTotals {
            invoice: ex.invoice.clone(),
            totals: ex.totals.clone(),
        };
        let json = serde_json::to_string(&doc).unwrap();
        assert!(
            !json.contains(":1") && !json.contains(":0"),
            "amounts must be strings: {json}"
        );
        let back: fin_invariants::invoice::InvoiceWithTotals = serde_json::from_str(&json).unwrap();
        assert_eq!(back, doc);
    }
}

#[test]
fn the_tolerant_mode_accepts_per_category_differences_under_one_unit_as_the_artefacts_do() {
    let ex = examples()
        .into_iter()
        .find(|e| e.name == "ubl-tc434-example4")
        .unwrap();
    let business_rules =
        |totals: &fin_invariants::invoice::Totals, options: CheckOptions| -> Vec<String> {
            check_with(&ex.invoice, totals, &options)
                .violations
                .iter()
                .filter(|v| v.is_business_rule())
                .map(|v| v.code.to_string())
                .collect()
        };
    let mut totals = ex.totals.clone();
    totals.tax_breakdown[0].taxable_amount += parse_decimal("0.99").unwrap();
    assert_eq!(
        business_rules(&totals, CheckOptions::artefacts()),
        Vec::<String>::new()
    );
    assert_eq!(
        business_rules(&totals, CheckOptions::strict()),
        ["BR-S-08", "BR-S-09", "BR-CO-17"]
    );
    totals.tax_breakdown[0].taxable_amount += parse_decimal("0.01").unwrap();
    assert_eq!(
        business_rules(&totals, CheckOptions::artefacts()),
        ["BR-S-08"]
    );
    // BR-CO-10..16 stay exact in the tolerant mode.
    let mut totals = ex.totals.clone();
    totals.payable_amount += parse_decimal("0.01").unwrap();
    assert_eq!(
        business_rules(&totals, CheckOptions::artefacts()),
        ["BR-CO-16"]
    );
}

#[cfg(feature = "serde")]
#[test]
fn rates_compare_as_numbers_codes_are_trimmed_and_amounts_may_be_written_loosely() {
    // A line at rate "25" and a breakdown at "25.00" with category " S ", amounts written "0100.0".
    let doc: fin_invariants::invoice::InvoiceWithTotals = serde_json::from_str(
        r#"{"currency":"EUR",
            "lines":[{"quantity":"4","net_price":"25","tax_category":"S","tax_rate":"25"}],
            "totals":{"line_net_total":"0100.0","tax_exclusive_amount":"100.00","tax_total":"25",
                      "tax_inclusive_amount":"125.000","payable_amount":"125.00",
                      "tax_breakdown":[{"category":" S ","rate":"25.00","taxable_amount":"100","tax_amount":"25.00"}]}}"#,
    )
    .unwrap();
    assert!(check(&doc.invoice, &doc.totals).is_empty());
    // Amounts are decimal strings only: a JSON number is refused.
    let number = r#"{"quantity":4,"net_price":"25","tax_category":"S"}"#;
    assert!(serde_json::from_str::<fin_invariants::invoice::InvoiceLine>(number).is_err());
}

#[test]
fn the_crate_table_of_rules_per_term_matches_the_artefacts_formulas() {
    assert_eq!(Term::ALL.len(), 9, "BT-106..BT-115 without BT-111");
    for term in Term::ALL {
        let ours: BTreeSet<String> = term.rules().iter().map(|&r| r.to_owned()).collect();
        assert_eq!(ours, rules_reading(term.code()), "{}", term.code());
    }
    assert_eq!(
        rules_reading("BT-110"),
        BTreeSet::from(["BR-CO-14".to_owned(), "BR-CO-15".to_owned()])
    );
    assert_eq!(
        rules_reading("BT-115"),
        BTreeSet::from(["BR-CO-16".to_owned()])
    );
}

#[test]
fn a_missing_breakdown_is_reported_with_expected_and_actual() {
    let ex = examples()
        .into_iter()
        .find(|e| e.name == "ubl-tc434-example4")
        .unwrap();
    let mut totals = ex.totals.clone();
    let removed = totals.tax_breakdown.remove(0);
    let violations = check(&ex.invoice, &totals);
    let missing = violations
        .iter()
        .find(|v| v.code == removed.category.taxable_rule() && v.path == "/totals/tax_breakdown")
        .unwrap_or_else(|| panic!("{violations}"));
    assert!(
        missing
            .expected
            .as_deref()
            .is_some_and(|e| e.ends_with(&removed.taxable_amount.to_string())),
        "{missing:?}"
    );
    assert_eq!(missing.actual.as_deref(), Some("absent"));
    // Every violation carries both values, except overflow, which has none to give.
    assert!(
        violations
            .iter()
            .all(|v| v.expected.is_some() && v.actual.is_some()),
        "{violations}"
    );
}
