//! Every VAT category the issue names (S, Z, E, AE, K, G, O) has its own taxable-amount and tax-amount
//! rules (BR-x-08, BR-x-09), and a one-cent change in its breakdown breaks exactly them.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use fin_invariants::invoice::{Invoice, InvoiceLine, TaxCategory, check, compute};
use fin_invariants::{Currency, Decimal, parse_decimal};

fn d(s: &str) -> Decimal {
    parse_decimal(s).unwrap()
}

/// Code, rate, and the rule names as EN 16931 spells them (K is intra-community, "IC").
const CATEGORIES: [(&str, Option<&str>, &str, &str); 7] = [
    ("S", Some("10"), "BR-S-08", "BR-S-09"),
    ("Z", Some("0"), "BR-Z-08", "BR-Z-09"),
    ("E", Some("0"), "BR-E-08", "BR-E-09"),
    ("AE", Some("0"), "BR-AE-08", "BR-AE-09"),
    ("K", Some("0"), "BR-IC-08", "BR-IC-09"),
    ("G", Some("0"), "BR-G-08", "BR-G-09"),
    ("O", None, "BR-O-08", "BR-O-09"),
];

fn invoice(category: TaxCategory, rate: Option<Decimal>) -> Invoice {
    Invoice {
        currency: Currency::EUR,
        lines: vec![
            InvoiceLine::new(d("2"), d("50.00"), category, rate),
            InvoiceLine::new(d("3"), d("9.95"), category, rate),
        ],
        allowances: vec![],
        charges: vec![],
        paid_amount: None,
        rounding_amount: None,
    }
}

fn business_rules(invoice: &Invoice, totals: &fin_invariants::invoice::Totals) -> BTreeSet<String> {
    check(invoice, totals)
        .iter()
        .filter(|v| v.is_business_rule())
        .map(|v| v.code.to_string())
        .collect()
}

#[test]
fn each_category_has_its_own_breakdown_rules_and_a_cent_breaks_exactly_them() {
    let cent = d("0.01");
    for (code, rate, taxable_rule, tax_rule) in CATEGORIES {
        let category: TaxCategory = code.parse().unwrap();
        assert_eq!(category.taxable_rule(), taxable_rule);
        assert_eq!(category.tax_rule(), tax_rule);
        let invoice = invoice(category, rate.map(d));
        let totals = compute(&invoice).unwrap();
        assert_eq!(totals.tax_breakdown.len(), 1, "{code}");
        assert!(check(&invoice, &totals).is_empty(), "{code}");

        // One cent more tax in the breakdown: the category rule, BR-CO-17 and BR-CO-14 (BT-110 no longer
        // the sum of the breakdown).
        let mut more_tax = totals.clone();
        more_tax.tax_breakdown[0].tax_amount += cent;
        let expected: BTreeSet<String> =
            [tax_rule, "BR-CO-14", "BR-CO-17"].map(str::to_owned).into();
        assert_eq!(business_rules(&invoice, &more_tax), expected, "{code}");

        // One cent more taxable amount: the category's taxable rule, and for the standard rate, whose tax
        // follows from the taxable amount, possibly its tax rules; nothing else.
        let mut more_taxable = totals.clone();
        more_taxable.tax_breakdown[0].taxable_amount += cent;
        let found = business_rules(&invoice, &more_taxable);
        assert!(found.contains(taxable_rule), "{code}: {found:?}");
        let allowed: BTreeSet<String> = [taxable_rule, tax_rule, "BR-CO-17"]
            .map(str::to_owned)
            .into();
        assert!(found.is_subset(&allowed), "{code}: {found:?}");
        if rate.is_none_or(|r| d(r).is_zero()) {
            assert_eq!(found, BTreeSet::from([taxable_rule.to_owned()]), "{code}");
        }
    }
}

#[test]
fn standard_rate_tax_is_rounded_half_away_from_zero() {
    // 3 x 9.95 + 2 x 50.00 = 129.85 at 10 % = 12.985: 12.99, not banker's 12.98.
    let invoice = invoice(TaxCategory::Standard, Some(d("10")));
    let totals = compute(&invoice).unwrap();
    assert_eq!(totals.tax_breakdown[0].taxable_amount, d("129.85"));
    assert_eq!(totals.tax_breakdown[0].tax_amount, d("12.99"));
    assert_eq!(totals.payable_amount, d("142.84"));
}
