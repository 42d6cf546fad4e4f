//! EN 16931 invoice arithmetic: line net amounts, the VAT breakdown and the document totals BT-106..BT-115.
//!
//! Two uses: [`compute`] turns an [`Invoice`] into its [`Totals`]; [`check`] (and [`check_with`]) compares
//! an invoice with the totals it states and returns every violation. The rules are read as the official
//! validation artefacts (the schematron of ConnectingEurope/eInvoicing-EN16931) read them:
//!
//! | rule | equation (stated figures unless said otherwise) |
//! |---|---|
//! | BR-CO-10 | BT-106 = sum of line net amounts BT-131 |
//! | BR-CO-11 | BT-107 = sum of document allowance amounts BT-92 |
//! | BR-CO-12 | BT-108 = sum of document charge amounts BT-99 |
//! | BR-CO-13 | BT-109 = BT-106 - BT-107 + BT-108 |
//! | BR-CO-14 | BT-110 = sum of BT-117 |
//! | BR-CO-15 | BT-112 = BT-109 + BT-110 |
//! | BR-CO-16 | BT-115 = BT-112 - BT-113 + BT-114 |
//! | BR-S-08 (and BR-Z/E/AE/IC/G/O-08) | BT-116 = sum of line nets + document charges - document allowances of that category and rate |
//! | BR-S-09, BR-CO-17 | BT-117 = round(BT-116 x BT-119 / 100, 2); 0 for the categories without tax |
//!
//! Absent optional totals count as zero. Rounding is half away from zero (EN 16931 and the GST Act), not
//! rust_decimal's default banker's rounding: 1460.50 x 25 % = 365.125 gives 365.13.
//!
//! Arithmetic that no EN 16931 rule checks (quantity x price / base quantity against the stated line net,
//! gross price - discount against the net price, base x percent against an allowance amount) is reported
//! under codes of its own ([`codes::LINE_NET`], [`codes::LINE_PRICE`],
//! [`codes::ALLOWANCE_CHARGE_PERCENT`]), never as a BR violation.
//!
//! The VAT total in the accounting currency (BT-111) is not modelled: EN 16931 carries no exchange rate,
//! so no rule can check it.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
#[cfg(feature = "serde")]
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decimal::{self, Plain, round_half_up};
#[cfg(feature = "serde")]
use crate::decimal::{decimal_str, decimal_str_opt};
use crate::money::Currency;
use crate::violation::{Validate, Violation, Violations, codes};

/// EN 16931 amounts have two decimals.
const AMOUNT_DP: u32 = 2;

/// A VAT category code (BT-118, BT-151, UNTDID 5305 subset of EN 16931).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TaxCategory {
    /// `S`: standard rate.
    Standard,
    /// `Z`: zero rated goods.
    ZeroRated,
    /// `E`: exempt from tax.
    Exempt,
    /// `AE`: VAT reverse charge.
    ReverseCharge,
    /// `K`: intra-community supply (VAT exempt for EEA intra-community supply).
    IntraCommunity,
    /// `G`: free export item, tax not charged.
    Export,
    /// `O`: services outside scope of tax.
    OutsideScope,
    /// `L`: Canary Islands general indirect tax (IGIC).
    CanaryIslands,
    /// `M`: tax for production, services and importation in Ceuta and Melilla (IPSI).
    CeutaMelilla,
}

impl TaxCategory {
    /// The code: `S`, `Z`, `E`, `AE`, `K`, `G`, `O`, `L` or `M`.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Standard => "S",
            Self::ZeroRated => "Z",
            Self::Exempt => "E",
            Self::ReverseCharge => "AE",
            Self::IntraCommunity => "K",
            Self::Export => "G",
            Self::OutsideScope => "O",
            Self::CanaryIslands => "L",
            Self::CeutaMelilla => "M",
        }
    }

    /// Whether tax is charged at the stated rate (S, L, M); the others carry a tax amount of zero.
    #[must_use]
    pub const fn is_taxed(self) -> bool {
        matches!(
            self,
            Self::Standard | Self::CanaryIslands | Self::CeutaMelilla
        )
    }

    /// The rule for the taxable amount per category and rate: `BR-S-08`, `BR-IC-08` for K, ...
    #[must_use]
    pub const fn taxable_rule(self) -> &'static str {
        match self {
            Self::Standard => "BR-S-08",
            Self::ZeroRated => "BR-Z-08",
            Self::Exempt => "BR-E-08",
            Self::ReverseCharge => "BR-AE-08",
            Self::IntraCommunity => "BR-IC-08",
            Self::Export => "BR-G-08",
            Self::OutsideScope => "BR-O-08",
            Self::CanaryIslands => "BR-AF-08",
            Self::CeutaMelilla => "BR-AG-08",
        }
    }

    /// The rule for the tax amount per category and rate: `BR-S-09`, `BR-IC-09` for K, ...
    #[must_use]
    pub const fn tax_rule(self) -> &'static str {
        match self {
            Self::Standard => "BR-S-09",
            Self::ZeroRated => "BR-Z-09",
            Self::Exempt => "BR-E-09",
            Self::ReverseCharge => "BR-AE-09",
            Self::IntraCommunity => "BR-IC-09",
            Self::Export => "BR-G-09",
            Self::OutsideScope => "BR-O-09",
            Self::CanaryIslands => "BR-AF-09",
            Self::CeutaMelilla => "BR-AG-09",
        }
    }
}

impl fmt::Display for TaxCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An unknown VAT category code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown VAT category code")]
pub struct UnknownTaxCategory;

impl FromStr for TaxCategory {
    type Err = UnknownTaxCategory;
    /// Reads a code, ignoring surrounding spaces as the official artefacts do.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "S" => Self::Standard,
            "Z" => Self::ZeroRated,
            "E" => Self::Exempt,
            "AE" => Self::ReverseCharge,
            "K" => Self::IntraCommunity,
            "G" => Self::Export,
            "O" => Self::OutsideScope,
            "L" => Self::CanaryIslands,
            "M" => Self::CeutaMelilla,
            _ => return Err(UnknownTaxCategory),
        })
    }
}

#[cfg(feature = "serde")]
impl Serialize for TaxCategory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

#[cfg(feature = "serde")]
impl<'de> Deserialize<'de> for TaxCategory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An invoice: what [`compute`] needs to produce the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invoice {
    /// BT-5, the invoice currency.
    pub currency: Currency,
    /// BG-25, the invoice lines.
    pub lines: Vec<InvoiceLine>,
    /// BG-20, document-level allowances.
    #[cfg_attr(feature = "serde", serde(default))]
    pub allowances: Vec<DocumentAllowanceCharge>,
    /// BG-21, document-level charges.
    #[cfg_attr(feature = "serde", serde(default))]
    pub charges: Vec<DocumentAllowanceCharge>,
    /// BT-113, the amount already paid.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub paid_amount: Option<Decimal>,
    /// BT-114, the rounding amount added to the amount due.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub rounding_amount: Option<Decimal>,
}

/// An invoice line (BG-25).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvoiceLine {
    /// BT-129, the invoiced quantity (negative for returns).
    #[cfg_attr(feature = "serde", serde(with = "decimal_str"))]
    pub quantity: Decimal,
    /// BT-146, the item net price.
    #[cfg_attr(feature = "serde", serde(with = "decimal_str"))]
    pub net_price: Decimal,
    /// BT-149, the base quantity the price is for (1 when absent).
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub base_quantity: Option<Decimal>,
    /// BT-148, the item gross price.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub gross_price: Option<Decimal>,
    /// BT-147, the item price discount.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub price_discount: Option<Decimal>,
    /// BG-27, line allowances.
    #[cfg_attr(feature = "serde", serde(default))]
    pub allowances: Vec<LineAllowanceCharge>,
    /// BG-28, line charges.
    #[cfg_attr(feature = "serde", serde(default))]
    pub charges: Vec<LineAllowanceCharge>,
    /// BT-151, the VAT category of the item.
    pub tax_category: TaxCategory,
    /// BT-152, the VAT rate in percent (absent for category O).
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub tax_rate: Option<Decimal>,
    /// BT-131, the line net amount as stated; [`compute`] uses it when present, and [`check`] compares it
    /// with quantity x price / base quantity + charges - allowances.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub net_amount: Option<Decimal>,
}

impl InvoiceLine {
    /// A line of `quantity` at `net_price` in `tax_category` at `tax_rate` percent, with no allowances,
    /// charges or stated net amount.
    #[must_use]
    pub fn new(
        quantity: Decimal,
        net_price: Decimal,
        tax_category: TaxCategory,
        tax_rate: Option<Decimal>,
    ) -> Self {
        Self {
            quantity,
            net_price,
            base_quantity: None,
            gross_price: None,
            price_discount: None,
            allowances: Vec::new(),
            charges: Vec::new(),
            tax_category,
            tax_rate,
            net_amount: None,
        }
    }
}

/// A line-level allowance (BG-27) or charge (BG-28).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineAllowanceCharge {
    /// BT-136 / BT-141, the amount.
    #[cfg_attr(feature = "serde", serde(with = "decimal_str"))]
    pub amount: Decimal,
    /// BT-137 / BT-142, the base amount.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub base_amount: Option<Decimal>,
    /// BT-138 / BT-143, the percentage.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub percent: Option<Decimal>,
}

/// A document-level allowance (BG-20) or charge (BG-21).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentAllowanceCharge {
    /// BT-92 / BT-99, the amount.
    #[cfg_attr(feature = "serde", serde(with = "decimal_str"))]
    pub amount: Decimal,
    /// BT-93 / BT-100, the base amount.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub base_amount: Option<Decimal>,
    /// BT-94 / BT-101, the percentage.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub percent: Option<Decimal>,
    /// BT-95 / BT-102, the VAT category.
    pub tax_category: TaxCategory,
    /// BT-96 / BT-103, the VAT rate in percent.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub tax_rate: Option<Decimal>,
}

/// One VAT breakdown group (BG-23).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaxBreakdown {
    /// BT-118.
    pub category: TaxCategory,
    /// BT-119, in percent (absent for category O).
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub rate: Option<Decimal>,
    /// BT-116.
    #[cfg_attr(feature = "serde", serde(with = "decimal_str"))]
    pub taxable_amount: Decimal,
    /// BT-117.
    #[cfg_attr(feature = "serde", serde(with = "decimal_str"))]
    pub tax_amount: Decimal,
}

/// The document totals BT-106..BT-115 (without BT-111) and the VAT breakdown: what [`compute`] returns and
/// what [`check`] compares an invoice with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Totals {
    /// BT-106, sum of invoice line net amounts.
    #[cfg_attr(feature = "serde", serde(with = "decimal_str"))]
    pub line_net_total: Decimal,
    /// BT-107, sum of allowances on document level.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub allowance_total: Option<Decimal>,
    /// BT-108, sum of charges on document level.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub charge_total: Option<Decimal>,
    /// BT-109, invoice total amount without VAT.
    #[cfg_attr(feature = "serde", serde(with = "decimal_str"))]
    pub tax_exclusive_amount: Decimal,
    /// BT-110, invoice total VAT amount.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub tax_total: Option<Decimal>,
    /// BT-112, invoice total amount with VAT.
    #[cfg_attr(feature = "serde", serde(with = "decimal_str"))]
    pub tax_inclusive_amount: Decimal,
    /// BT-113, paid amount.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub paid_amount: Option<Decimal>,
    /// BT-114, rounding amount.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            with = "decimal_str_opt",
            skip_serializing_if = "Option::is_none"
        )
    )]
    pub rounding_amount: Option<Decimal>,
    /// BT-115, amount due for payment.
    #[cfg_attr(feature = "serde", serde(with = "decimal_str"))]
    pub payable_amount: Decimal,
    /// BG-23, the VAT breakdown.
    pub tax_breakdown: Vec<TaxBreakdown>,
}

/// A document total, by its EN 16931 business term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Term {
    /// BT-106, sum of line net amounts.
    Bt106,
    /// BT-107, sum of document allowances.
    Bt107,
    /// BT-108, sum of document charges.
    Bt108,
    /// BT-109, total without VAT.
    Bt109,
    /// BT-110, total VAT.
    Bt110,
    /// BT-112, total with VAT.
    Bt112,
    /// BT-113, paid amount.
    Bt113,
    /// BT-114, rounding amount.
    Bt114,
    /// BT-115, amount due.
    Bt115,
}

impl Term {
    /// Every term, in order.
    pub const ALL: [Self; 9] = [
        Self::Bt106,
        Self::Bt107,
        Self::Bt108,
        Self::Bt109,
        Self::Bt110,
        Self::Bt112,
        Self::Bt113,
        Self::Bt114,
        Self::Bt115,
    ];

    /// `BT-106` ...
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Bt106 => "BT-106",
            Self::Bt107 => "BT-107",
            Self::Bt108 => "BT-108",
            Self::Bt109 => "BT-109",
            Self::Bt110 => "BT-110",
            Self::Bt112 => "BT-112",
            Self::Bt113 => "BT-113",
            Self::Bt114 => "BT-114",
            Self::Bt115 => "BT-115",
        }
    }

    /// The JSON Pointer of the term in an [`InvoiceWithTotals`] document (`/totals/line_net_total`).
    #[must_use]
    pub const fn path(self) -> &'static str {
        match self {
            Self::Bt106 => "/totals/line_net_total",
            Self::Bt107 => "/totals/allowance_total",
            Self::Bt108 => "/totals/charge_total",
            Self::Bt109 => "/totals/tax_exclusive_amount",
            Self::Bt110 => "/totals/tax_total",
            Self::Bt112 => "/totals/tax_inclusive_amount",
            Self::Bt113 => "/totals/paid_amount",
            Self::Bt114 => "/totals/rounding_amount",
            Self::Bt115 => "/totals/payable_amount",
        }
    }

    /// The rules whose equation contains this term (as the official artefacts test them).
    #[must_use]
    pub const fn rules(self) -> &'static [&'static str] {
        match self {
            Self::Bt106 => &[codes::BR_CO_10, codes::BR_CO_13],
            Self::Bt107 => &[codes::BR_CO_11, codes::BR_CO_13],
            Self::Bt108 => &[codes::BR_CO_12, codes::BR_CO_13],
            Self::Bt109 => &[codes::BR_CO_13, codes::BR_CO_15],
            Self::Bt110 => &[codes::BR_CO_14, codes::BR_CO_15],
            Self::Bt112 => &[codes::BR_CO_15, codes::BR_CO_16],
            Self::Bt113 | Self::Bt114 | Self::Bt115 => &[codes::BR_CO_16],
        }
    }
}

impl Totals {
    /// The stated value of `term`; absent optional totals are `None`.
    #[must_use]
    pub fn get(&self, term: Term) -> Option<Decimal> {
        match term {
            Term::Bt106 => Some(self.line_net_total),
            Term::Bt107 => self.allowance_total,
            Term::Bt108 => self.charge_total,
            Term::Bt109 => Some(self.tax_exclusive_amount),
            Term::Bt110 => self.tax_total,
            Term::Bt112 => Some(self.tax_inclusive_amount),
            Term::Bt113 => self.paid_amount,
            Term::Bt114 => self.rounding_amount,
            Term::Bt115 => Some(self.payable_amount),
        }
    }

    /// Sets `term` to `value`.
    pub fn set(&mut self, term: Term, value: Decimal) {
        match term {
            Term::Bt106 => self.line_net_total = value,
            Term::Bt107 => self.allowance_total = Some(value),
            Term::Bt108 => self.charge_total = Some(value),
            Term::Bt109 => self.tax_exclusive_amount = value,
            Term::Bt110 => self.tax_total = Some(value),
            Term::Bt112 => self.tax_inclusive_amount = value,
            Term::Bt113 => self.paid_amount = Some(value),
            Term::Bt114 => self.rounding_amount = Some(value),
            Term::Bt115 => self.payable_amount = value,
        }
    }
}

/// An invoice together with the totals it states: the usual request body, checked by [`Validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct InvoiceWithTotals {
    /// The invoice.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub invoice: Invoice,
    /// The totals it states.
    pub totals: Totals,
}

impl Validate for InvoiceWithTotals {
    fn violations(&self) -> Violations {
        check(&self.invoice, &self.totals)
    }
}

/// How exactly the per-category taxable and tax amounts must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Tolerance {
    /// Exact equality for every rule (the default).
    #[default]
    Exact,
    /// As the official validation artefacts: exact for BR-CO-10..16, a difference under 1.00 accepted for
    /// the per-category taxable and tax amounts (BR-x-08, BR-x-09, BR-CO-17).
    Artefacts,
}

/// How the tax of a VAT group was rounded (the GST Act allows both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TaxRounding {
    /// Rounded once per invoice and rate (EN 16931 BR-CO-17; GST "total invoice" rounding).
    PerInvoice,
    /// Rounded per line (taxable supply), then summed (GST "taxable supply" rounding).
    PerSupply,
    /// Both methods give the stated amounts, so the method cannot be told.
    Either,
}

/// Options of [`check_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CheckOptions {
    /// How exactly per-category amounts must match.
    pub tolerance: Tolerance,
    /// Accept tax rounded per line (GST "taxable supply" rounding) as well as per invoice and rate.
    pub accept_per_supply_rounding: bool,
}

impl CheckOptions {
    /// Strict EN 16931: exact amounts, tax rounded per category and rate.
    #[must_use]
    pub const fn strict() -> Self {
        Self {
            tolerance: Tolerance::Exact,
            accept_per_supply_rounding: false,
        }
    }

    /// As the official validation artefacts ([`Tolerance::Artefacts`]).
    #[must_use]
    pub const fn artefacts() -> Self {
        Self {
            tolerance: Tolerance::Artefacts,
            accept_per_supply_rounding: false,
        }
    }

    /// The GST Act: exact amounts, either rounding method accepted (and recorded).
    #[must_use]
    pub const fn gst() -> Self {
        Self {
            tolerance: Tolerance::Exact,
            accept_per_supply_rounding: true,
        }
    }

    /// Sets the tolerance.
    #[must_use]
    pub const fn tolerance(mut self, tolerance: Tolerance) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Accepts per-supply rounding or not.
    #[must_use]
    pub const fn accept_per_supply_rounding(mut self, accept: bool) -> Self {
        self.accept_per_supply_rounding = accept;
        self
    }
}

/// What [`check_with`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Every violation and line-level finding.
    pub violations: Violations,
    /// How the stated tax amounts were rounded, when every group matched one method.
    pub tax_rounding: Option<TaxRounding>,
}

/// The net amount of one line: quantity x net price / base quantity + line charges - line allowances,
/// rounded half away from zero to two decimals (the stated BT-131 is not used).
///
/// # Errors
///
/// A [`codes::INVALID_VALUE`] violation for a base quantity of zero or below, [`codes::OVERFLOW`] when an
/// intermediate value leaves the decimal range. Paths are relative to the line (`/base_quantity`).
pub fn line_net(line: &InvoiceLine) -> Result<Decimal, Violation> {
    let base = line.base_quantity.unwrap_or(Decimal::ONE);
    if base <= Decimal::ZERO {
        return Err(Violation::new(
            codes::INVALID_VALUE,
            "/base_quantity",
            "base quantity must be positive",
        )
        .with_values("> 0", Plain(&base)));
    }
    let overflow = || {
        Violation::new(
            codes::OVERFLOW,
            "/net_amount",
            "line net amount out of range",
        )
    };
    let mut net = decimal::mul(line.quantity, line.net_price).ok_or_else(overflow)?;
    if base != Decimal::ONE {
        net = decimal::div(net, base).ok_or_else(overflow)?;
    }
    for charge in &line.charges {
        net = decimal::add(net, charge.amount).ok_or_else(overflow)?;
    }
    for allowance in &line.allowances {
        net = decimal::sub(net, allowance.amount).ok_or_else(overflow)?;
    }
    Ok(round_half_up(net, AMOUNT_DP))
}

/// One VAT group as tallied from lines and document allowances and charges.
struct Group {
    category: TaxCategory,
    rate: Option<Decimal>,
    taxable: Decimal,
    /// Sum of per-line rounded tax, when asked for.
    per_supply_tax: Decimal,
}

/// The sums [`compute`] and [`check`] share.
struct Tally {
    line_net_total: Decimal,
    allowance_total: Decimal,
    charge_total: Decimal,
    groups: Vec<Group>,
}

fn same_rate(a: Option<Decimal>, b: Option<Decimal>) -> bool {
    // Rates compare as numbers (25 = 25.00); Decimal's equality is numeric.
    a == b
}

fn group_mut(groups: &mut Vec<Group>, category: TaxCategory, rate: Option<Decimal>) -> &mut Group {
    let position = groups
        .iter()
        .position(|g| g.category == category && same_rate(g.rate, rate));
    let index = position.unwrap_or_else(|| {
        groups.push(Group {
            category,
            rate,
            taxable: Decimal::ZERO,
            per_supply_tax: Decimal::ZERO,
        });
        groups.len().saturating_sub(1)
    });
    // `index` is in range: found by `position` or just pushed.
    &mut groups[index]
}

/// The tax of `taxable` at `rate` percent, rounded half away from zero to two decimals.
fn tax_of(taxable: Decimal, rate: Option<Decimal>) -> Option<Decimal> {
    match rate {
        None => Some(Decimal::ZERO),
        Some(rate) if rate.is_zero() => Some(Decimal::ZERO),
        Some(rate) => {
            let product = decimal::mul(taxable, rate)?;
            Some(round_half_up(
                decimal::div(product, Decimal::ONE_HUNDRED)?,
                AMOUNT_DP,
            ))
        }
    }
}

fn overflow_at(path: String) -> Violation {
    Violation::new(codes::OVERFLOW, path, "amount out of range")
}

/// Sums lines and document allowances and charges. Line-level findings go to `findings` when given.
fn tally(
    invoice: &Invoice,
    mut findings: Option<&mut Violations>,
    per_supply: bool,
) -> Result<Tally, Violation> {
    let mut groups: Vec<Group> = Vec::with_capacity(4);
    let mut line_net_total = Decimal::ZERO;
    for (i, line) in invoice.lines.iter().enumerate() {
        let computed = line_net(line).map_err(|mut v| {
            v.path = format!("/lines/{i}{}", v.path);
            v
        });
        if let Some(findings) = findings.as_deref_mut() {
            line_findings(i, line, computed.as_ref().ok().copied(), findings);
        }
        let net = match (line.net_amount, computed) {
            (Some(stated), _) => stated,
            (None, Ok(computed)) => computed,
            (None, Err(v)) => return Err(v),
        };
        line_net_total = decimal::add(line_net_total, net)
            .ok_or_else(|| overflow_at(format!("/lines/{i}/net_amount")))?;
        let group = group_mut(&mut groups, line.tax_category, line.tax_rate);
        group.taxable = decimal::add(group.taxable, net)
            .ok_or_else(|| overflow_at(format!("/lines/{i}/net_amount")))?;
        if per_supply {
            let tax = tax_of(net, line.tax_rate)
                .ok_or_else(|| overflow_at(format!("/lines/{i}/net_amount")))?;
            group.per_supply_tax = decimal::add(group.per_supply_tax, tax)
                .ok_or_else(|| overflow_at(format!("/lines/{i}")))?;
        }
    }
    let mut allowance_total = Decimal::ZERO;
    let mut charge_total = Decimal::ZERO;
    for (kind, list, total) in [
        ("allowances", &invoice.allowances, &mut allowance_total),
        ("charges", &invoice.charges, &mut charge_total),
    ] {
        let is_allowance = kind == "allowances";
        for (j, ac) in list.iter().enumerate() {
            if let Some(findings) = findings.as_deref_mut() {
                percent_finding(
                    ac.amount,
                    ac.base_amount,
                    ac.percent,
                    || format!("/{kind}/{j}/amount"),
                    findings,
                );
            }
            let path = || format!("/{kind}/{j}/amount");
            *total = decimal::add(*total, ac.amount).ok_or_else(|| overflow_at(path()))?;
            let group = group_mut(&mut groups, ac.tax_category, ac.tax_rate);
            let signed = if is_allowance {
                decimal::sub(Decimal::ZERO, ac.amount).ok_or_else(|| overflow_at(path()))?
            } else {
                ac.amount
            };
            group.taxable =
                decimal::add(group.taxable, signed).ok_or_else(|| overflow_at(path()))?;
            if per_supply {
                let tax = tax_of(signed, ac.tax_rate).ok_or_else(|| overflow_at(path()))?;
                group.per_supply_tax =
                    decimal::add(group.per_supply_tax, tax).ok_or_else(|| overflow_at(path()))?;
            }
        }
    }
    Ok(Tally {
        line_net_total,
        allowance_total,
        charge_total,
        groups,
    })
}

fn percent_finding(
    amount: Decimal,
    base: Option<Decimal>,
    percent: Option<Decimal>,
    path: impl FnOnce() -> String,
    findings: &mut Violations,
) {
    let (Some(base), Some(percent)) = (base, percent) else {
        return;
    };
    let expected = decimal::mul(base, percent)
        .and_then(|p| decimal::div(p, Decimal::ONE_HUNDRED))
        .map(|v| round_half_up(v, AMOUNT_DP));
    if expected != Some(amount) {
        let shown = expected.map_or_else(|| "out of range".to_owned(), |e| Plain(&e).to_string());
        findings.push(
            Violation::new(
                codes::ALLOWANCE_CHARGE_PERCENT,
                path(),
                "amount differs from base amount x percentage / 100",
            )
            .with_values(shown, Plain(&amount)),
        );
    }
}

fn line_findings(
    i: usize,
    line: &InvoiceLine,
    computed: Option<Decimal>,
    findings: &mut Violations,
) {
    if let Some(gross) = line.gross_price {
        let expected = decimal::sub(gross, line.price_discount.unwrap_or(Decimal::ZERO));
        if expected != Some(line.net_price) {
            let shown =
                expected.map_or_else(|| "out of range".to_owned(), |e| Plain(&e).to_string());
            findings.push(
                Violation::new(
                    codes::LINE_PRICE,
                    format!("/lines/{i}/net_price"),
                    "net price differs from gross price - price discount",
                )
                .with_values(shown, Plain(&line.net_price)),
            );
        }
    }
    for (kind, list) in [("allowances", &line.allowances), ("charges", &line.charges)] {
        for (j, ac) in list.iter().enumerate() {
            percent_finding(
                ac.amount,
                ac.base_amount,
                ac.percent,
                || format!("/lines/{i}/{kind}/{j}/amount"),
                findings,
            );
        }
    }
    match (line.net_amount, computed) {
        (Some(stated), Some(computed)) if stated != computed => findings.push(
            Violation::new(
                codes::LINE_NET,
                format!("/lines/{i}/net_amount"),
                "line net amount differs from quantity x price / base quantity + charges - allowances",
            )
            .with_values(Plain(&computed), Plain(&stated)),
        ),
        (Some(_), None) => {
            // line_net failed (base quantity or overflow): report why, the stated amount is used.
            if let Err(mut v) = line_net(line) {
                v.path = format!("/lines/{i}{}", v.path);
                findings.push(v);
            }
        }
        _ => {}
    }
}

/// Computes the totals and VAT breakdown of an invoice.
///
/// Line net amounts are the stated BT-131 where given, else quantity x price / base quantity + charges -
/// allowances ([`line_net`]). The breakdown lists each VAT category and rate in order of first appearance;
/// its tax is rounded once per group, half away from zero. Optional totals (BT-107, BT-108) are present
/// when there are allowances or charges; BT-113 and BT-114 are taken from the invoice.
///
/// ```
/// use fin_invariants::invoice::{compute, Invoice, InvoiceLine, TaxCategory};
/// use fin_invariants::{parse_decimal, Currency};
/// let d = |s| parse_decimal(s).unwrap();
/// let invoice = Invoice {
///     currency: Currency::AUD,
///     lines: vec![InvoiceLine::new(d("3"), d("33.33"), TaxCategory::Standard, Some(d("10")))],
///     allowances: vec![], charges: vec![], paid_amount: None, rounding_amount: None,
/// };
/// let totals = compute(&invoice)?;
/// assert_eq!(totals.tax_total, Some(d("10.00")));
/// assert_eq!(totals.payable_amount.to_string(), "109.99");
/// # Ok::<(), fin_invariants::Violations>(())
/// ```
///
/// # Errors
///
/// [`codes::INVALID_VALUE`] (a base quantity of zero or below on a line without a stated net amount) or
/// [`codes::OVERFLOW`] violations.
pub fn compute(invoice: &Invoice) -> Result<Totals, Violations> {
    let tally = tally(invoice, None, false)?;
    let overflow = |path: &str| Violations::from(overflow_at(path.to_owned()));
    let tax_exclusive_amount = decimal::add(tally.line_net_total, tally.charge_total)
        .and_then(|v| decimal::sub(v, tally.allowance_total))
        .ok_or_else(|| overflow(Term::Bt109.path()))?;
    let mut tax_total = Decimal::ZERO;
    let mut tax_breakdown = Vec::with_capacity(tally.groups.len());
    for group in tally.groups {
        let tax =
            tax_of(group.taxable, group.rate).ok_or_else(|| overflow("/totals/tax_breakdown"))?;
        tax_total = decimal::add(tax_total, tax).ok_or_else(|| overflow(Term::Bt110.path()))?;
        tax_breakdown.push(TaxBreakdown {
            category: group.category,
            rate: group.rate,
            taxable_amount: group.taxable,
            tax_amount: tax,
        });
    }
    let tax_inclusive_amount = decimal::add(tax_exclusive_amount, tax_total)
        .ok_or_else(|| overflow(Term::Bt112.path()))?;
    let payable_amount = decimal::sub(
        tax_inclusive_amount,
        invoice.paid_amount.unwrap_or(Decimal::ZERO),
    )
    .and_then(|v| decimal::add(v, invoice.rounding_amount.unwrap_or(Decimal::ZERO)))
    .ok_or_else(|| overflow(Term::Bt115.path()))?;
    Ok(Totals {
        line_net_total: tally.line_net_total,
        allowance_total: (!invoice.allowances.is_empty()).then_some(tally.allowance_total),
        charge_total: (!invoice.charges.is_empty()).then_some(tally.charge_total),
        tax_exclusive_amount,
        tax_total: Some(tax_total),
        tax_inclusive_amount,
        paid_amount: invoice.paid_amount,
        rounding_amount: invoice.rounding_amount,
        payable_amount,
        tax_breakdown,
    })
}

/// Checks an invoice against the totals it states with strict EN 16931 options; returns every violation
/// (empty when it adds up).
#[must_use]
pub fn check(invoice: &Invoice, stated: &Totals) -> Violations {
    check_with(invoice, stated, &CheckOptions::default()).violations
}

/// Compares `stated` with `expected`; pushes a violation with `code` at `path` when they differ.
fn expect_eq(
    v: &mut Violations,
    code: &'static str,
    path: &str,
    message: &'static str,
    expected: Option<Decimal>,
    actual: Decimal,
) {
    match expected {
        Some(expected) if expected == actual => {}
        Some(expected) => v.push(
            Violation::new(code, path, message).with_values(Plain(&expected), Plain(&actual)),
        ),
        None => v.push(Violation::new(codes::OVERFLOW, path, "amount out of range")),
    }
}

fn within(stated: Decimal, expected: Decimal, tolerance: Tolerance) -> bool {
    match tolerance {
        Tolerance::Exact => stated == expected,
        Tolerance::Artefacts => {
            decimal::sub(stated, expected).is_some_and(|d| d.abs() < Decimal::ONE)
        }
    }
}

/// Checks an invoice against the totals it states; returns every violation and how the tax was rounded.
///
/// See the [module docs](self) for the rules and how they are read.
#[must_use]
pub fn check_with(invoice: &Invoice, stated: &Totals, options: &CheckOptions) -> CheckReport {
    let mut v = Violations::new();
    let zero = Decimal::ZERO;
    let tally = match tally(invoice, Some(&mut v), options.accept_per_supply_rounding) {
        Ok(t) => Some(t),
        Err(e) => {
            v.push(e);
            None
        }
    };
    if let Some(t) = &tally {
        expect_eq(
            &mut v,
            codes::BR_CO_10,
            Term::Bt106.path(),
            "sum of line net amounts differs",
            Some(t.line_net_total),
            stated.line_net_total,
        );
        expect_eq(
            &mut v,
            codes::BR_CO_11,
            Term::Bt107.path(),
            "sum of document allowances differs",
            Some(t.allowance_total),
            stated.allowance_total.unwrap_or(zero),
        );
        expect_eq(
            &mut v,
            codes::BR_CO_12,
            Term::Bt108.path(),
            "sum of document charges differs",
            Some(t.charge_total),
            stated.charge_total.unwrap_or(zero),
        );
    }
    let bt109 = decimal::sub(
        stated.line_net_total,
        stated.allowance_total.unwrap_or(zero),
    )
    .and_then(|x| decimal::add(x, stated.charge_total.unwrap_or(zero)));
    expect_eq(
        &mut v,
        codes::BR_CO_13,
        Term::Bt109.path(),
        "total without VAT differs from BT-106 - BT-107 + BT-108",
        bt109,
        stated.tax_exclusive_amount,
    );
    let bt110 = stated
        .tax_breakdown
        .iter()
        .try_fold(zero, |acc, b| decimal::add(acc, b.tax_amount));
    expect_eq(
        &mut v,
        codes::BR_CO_14,
        Term::Bt110.path(),
        "total VAT differs from the sum of the VAT breakdown",
        bt110,
        stated.tax_total.unwrap_or(zero),
    );
    let bt112 = decimal::add(
        stated.tax_exclusive_amount,
        stated.tax_total.unwrap_or(zero),
    );
    expect_eq(
        &mut v,
        codes::BR_CO_15,
        Term::Bt112.path(),
        "total with VAT differs from BT-109 + BT-110",
        bt112,
        stated.tax_inclusive_amount,
    );
    let bt115 = decimal::sub(
        stated.tax_inclusive_amount,
        stated.paid_amount.unwrap_or(zero),
    )
    .and_then(|x| decimal::add(x, stated.rounding_amount.unwrap_or(zero)));
    expect_eq(
        &mut v,
        codes::BR_CO_16,
        Term::Bt115.path(),
        "amount due differs from BT-112 - BT-113 + BT-114",
        bt115,
        stated.payable_amount,
    );

    let tax_rounding = check_breakdown(tally.as_ref(), stated, options, &mut v);
    CheckReport {
        violations: v,
        tax_rounding,
    }
}

fn check_breakdown(
    tally: Option<&Tally>,
    stated: &Totals,
    options: &CheckOptions,
    v: &mut Violations,
) -> Option<TaxRounding> {
    let mut per_invoice_all = true;
    let mut per_supply_all = options.accept_per_supply_rounding;
    let mut matched_all = true;
    // Taxable amounts per category and rate (BR-x-08), from the computed groups.
    if let Some(tally) = tally {
        for group in &tally.groups {
            let found = stated
                .tax_breakdown
                .iter()
                .position(|b| b.category == group.category && same_rate(b.rate, group.rate));
            match found {
                Some(k) => {
                    let b = stated.tax_breakdown.get(k);
                    let actual = b.map_or(Decimal::ZERO, |b| b.taxable_amount);
                    if !within(actual, group.taxable, options.tolerance) {
                        v.push(
                            Violation::new(group.category.taxable_rule(), format!("/totals/tax_breakdown/{k}/taxable_amount"), "VAT category taxable amount differs from the sum of its lines, allowances and charges")
                                .with_values(Plain(&group.taxable), Plain(&actual)),
                        );
                    }
                }
                None => {
                    // Expected: the category, rate and taxable amount of the missing breakdown;
                    // actual: that no breakdown states them.
                    let expected = format!(
                        "{} {} {}",
                        group.category,
                        group
                            .rate
                            .map_or_else(String::new, |r| Plain(&r).to_string()),
                        Plain(&group.taxable)
                    );
                    v.push(
                        Violation::new(
                            group.category.taxable_rule(),
                            "/totals/tax_breakdown",
                            "no VAT breakdown for a category and rate that the invoice uses",
                        )
                        .with_values(expected, "absent"),
                    );
                }
            }
        }
        for (k, b) in stated.tax_breakdown.iter().enumerate() {
            if !tally
                .groups
                .iter()
                .any(|g| g.category == b.category && same_rate(g.rate, b.rate))
                && !b.taxable_amount.is_zero()
            {
                v.push(
                    Violation::new(
                        b.category.taxable_rule(),
                        format!("/totals/tax_breakdown/{k}/taxable_amount"),
                        "VAT breakdown for a category and rate that nothing on the invoice uses",
                    )
                    .with_values("0.00", Plain(&b.taxable_amount)),
                );
            }
        }
    }
    // Tax amounts per category and rate (BR-x-09, BR-CO-17), from the stated taxable amounts.
    for (k, b) in stated.tax_breakdown.iter().enumerate() {
        let path = || format!("/totals/tax_breakdown/{k}/tax_amount");
        let Some(expected) = tax_of(b.taxable_amount, b.rate) else {
            v.push(overflow_at(path()));
            matched_all = false;
            continue;
        };
        let per_invoice = within(b.tax_amount, expected, options.tolerance);
        let per_supply = options.accept_per_supply_rounding
            && tally.is_some_and(|t| {
                t.groups.iter().any(|g| {
                    g.category == b.category
                        && same_rate(g.rate, b.rate)
                        && g.per_supply_tax == b.tax_amount
                })
            });
        per_invoice_all &= per_invoice;
        per_supply_all &= per_supply;
        if per_invoice || per_supply {
            continue;
        }
        matched_all = false;
        let category_expected = if b.category.is_taxed() {
            expected
        } else {
            Decimal::ZERO
        };
        if !within(b.tax_amount, category_expected, options.tolerance) {
            v.push(
                Violation::new(
                    b.category.tax_rule(),
                    path(),
                    "VAT category tax amount differs from taxable amount x rate",
                )
                .with_values(Plain(&category_expected), Plain(&b.tax_amount)),
            );
        }
        v.push(
            Violation::new(codes::BR_CO_17, path(), "VAT category tax amount differs from taxable amount x rate / 100, rounded to two decimals")
                .with_values(Plain(&expected), Plain(&b.tax_amount)),
        );
    }
    if !matched_all {
        None
    } else if per_invoice_all && per_supply_all {
        Some(TaxRounding::Either)
    } else if per_invoice_all {
        Some(TaxRounding::PerInvoice)
    } else {
        Some(TaxRounding::PerSupply)
    }
}
