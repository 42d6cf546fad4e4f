//! Reads the official EN 16931 examples from `tests/data/en16931-sample.json`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use fin_invariants::invoice::{
    DocumentAllowanceCharge, Invoice, InvoiceLine, LineAllowanceCharge, TaxBreakdown, Totals,
};
use fin_invariants::{Currency, Decimal, parse_decimal};
use serde_json::Value;

pub struct Example {
    pub name: String,
    pub invoice: Invoice,
    pub totals: Totals,
}

fn dec(v: &Value) -> Option<Decimal> {
    v.as_str()
        .map(|s| parse_decimal(s).unwrap_or_else(|e| panic!("{s:?}: {e}")))
}

fn req(v: &Value) -> Decimal {
    dec(v).unwrap_or_else(|| panic!("missing amount: {v}"))
}

fn line_ac(v: &Value) -> LineAllowanceCharge {
    LineAllowanceCharge {
        amount: req(&v["amount"]),
        base_amount: dec(&v["base_amount"]),
        percent: dec(&v["percent"]),
    }
}

fn doc_ac(v: &Value) -> DocumentAllowanceCharge {
    DocumentAllowanceCharge {
        amount: req(&v["amount"]),
        base_amount: dec(&v["base_amount"]),
        percent: dec(&v["percent"]),
        tax_category: v["tax_category"].as_str().unwrap().parse().unwrap(),
        tax_rate: dec(&v["tax_rate"]),
    }
}

fn list<T>(v: &Value, f: impl Fn(&Value) -> T) -> Vec<T> {
    v.as_array()
        .map(|a| a.iter().map(f).collect())
        .unwrap_or_default()
}

pub fn examples() -> Vec<Example> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/en16931-sample.json"
    ))
    .unwrap();
    let root: Value = serde_json::from_str(&text).unwrap();
    root["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|inv| {
            let t = &inv["totals"];
            let invoice = Invoice {
                currency: Currency::from_code(inv["currency"].as_str().unwrap()).unwrap(),
                lines: list(&inv["lines"], |l| InvoiceLine {
                    quantity: req(&l["quantity"]),
                    net_price: req(&l["price"]),
                    base_quantity: dec(&l["base_quantity"]),
                    gross_price: dec(&l["gross_price"]),
                    price_discount: dec(&l["price_discount"]),
                    allowances: list(&l["allowances"], line_ac),
                    charges: list(&l["charges"], line_ac),
                    tax_category: l["tax_category"].as_str().unwrap().parse().unwrap(),
                    tax_rate: dec(&l["tax_rate"]),
                    net_amount: dec(&l["line_net_amount"]),
                }),
                allowances: list(&inv["document_allowances"], doc_ac),
                charges: list(&inv["document_charges"], doc_ac),
                paid_amount: dec(&t["BT-113"]),
                rounding_amount: dec(&t["BT-114"]),
            };
            let totals = Totals {
                line_net_total: req(&t["BT-106"]),
                allowance_total: dec(&t["BT-107"]),
                charge_total: dec(&t["BT-108"]),
                tax_exclusive_amount: req(&t["BT-109"]),
                tax_total: dec(&t["BT-110"]),
                tax_inclusive_amount: req(&t["BT-112"]),
                paid_amount: dec(&t["BT-113"]),
                rounding_amount: dec(&t["BT-114"]),
                payable_amount: req(&t["BT-115"]),
                tax_breakdown: list(&inv["tax_breakdown"], |b| TaxBreakdown {
                    category: b["category"].as_str().unwrap().parse().unwrap(),
                    rate: dec(&b["rate"]),
                    taxable_amount: req(&b["taxable_amount"]),
                    tax_amount: req(&b["tax_amount"]),
                }),
            };
            Example {
                name: inv["name"].as_str().unwrap().to_owned(),
                invoice,
                totals,
            }
        })
        .collect()
}

/// The line-level findings the official examples are known to contain (testdata README), as
/// `(code, path)`.
pub fn expected_findings(name: &str) -> Vec<(&'static str, &'static str)> {
    match name {
        "ubl-tc434-example1" | "ubl-tc434-example10" => vec![("LINE-NET", "/lines/19/net_amount")],
        "ubl-tc434-example2" => vec![
            ("LINE-NET", "/lines/0/net_amount"),
            ("LINE-PRICE", "/lines/2/net_price"),
        ],
        "ubl-tc434-example3" => vec![
            ("LINE-NET", "/lines/0/net_amount"),
            ("LINE-NET", "/lines/1/net_amount"),
        ],
        _ => vec![],
    }
}

pub mod memory_source;

/// The totals rules of EN 16931 as the official artefacts (the schematron of
/// ConnectingEurope/eInvoicing-EN16931) test them, each with the business terms its equation reads.
/// Written here from the artefacts' formulas, independently of the crate's own `Term::rules()`.
pub const TOTALS_FORMULAS: [(&str, &[&str]); 7] = [
    // BT-106 = sum of BT-131
    ("BR-CO-10", &["BT-106"]),
    // BT-107 = sum of BT-92
    ("BR-CO-11", &["BT-107"]),
    // BT-108 = sum of BT-99
    ("BR-CO-12", &["BT-108"]),
    // BT-109 = BT-106 - BT-107 + BT-108 (the stated BT-106, as the artefacts read it)
    ("BR-CO-13", &["BT-109", "BT-106", "BT-107", "BT-108"]),
    // BT-110 = sum of BT-117
    ("BR-CO-14", &["BT-110"]),
    // BT-112 = BT-109 + BT-110
    ("BR-CO-15", &["BT-112", "BT-109", "BT-110"]),
    // BT-115 = BT-112 - BT-113 + BT-114
    ("BR-CO-16", &["BT-115", "BT-112", "BT-113", "BT-114"]),
];

/// The rules whose equation contains business term `bt` (for example `"BT-110"`), from
/// [`TOTALS_FORMULAS`].
pub fn rules_reading(bt: &str) -> std::collections::BTreeSet<String> {
    TOTALS_FORMULAS
        .iter()
        .filter(|(_, terms)| terms.contains(&bt))
        .map(|(rule, _)| (*rule).to_owned())
        .collect()
}
