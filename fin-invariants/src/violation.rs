//! Violations as values: `{code, path, message, expected, actual}`, collected, never just the first.

use std::borrow::Cow;
use std::fmt;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// The stable violation codes this crate emits. Clients may match on them; they never change meaning.
pub mod codes {
    /// BT-106 = sum of line net amounts (BT-131).
    pub const BR_CO_10: &str = "BR-CO-10";
    /// BT-107 = sum of document-level allowance amounts (BT-92).
    pub const BR_CO_11: &str = "BR-CO-11";
    /// BT-108 = sum of document-level charge amounts (BT-99).
    pub const BR_CO_12: &str = "BR-CO-12";
    /// BT-109 = BT-106 - BT-107 + BT-108 (with the stated BT-106, as the official artefacts test it).
    pub const BR_CO_13: &str = "BR-CO-13";
    /// BT-110 = sum of the VAT category tax amounts (BT-117).
    pub const BR_CO_14: &str = "BR-CO-14";
    /// BT-112 = BT-109 + BT-110.
    pub const BR_CO_15: &str = "BR-CO-15";
    /// BT-115 = BT-112 - BT-113 + BT-114.
    pub const BR_CO_16: &str = "BR-CO-16";
    /// BT-117 = BT-116 x BT-119 / 100, rounded to two decimals.
    pub const BR_CO_17: &str = "BR-CO-17";
    /// Line net amount (BT-131) differs from quantity x net price / base quantity + line charges - line
    /// allowances. No EN 16931 business rule checks this; it is a finding of our own.
    pub const LINE_NET: &str = "LINE-NET";
    /// Item net price (BT-146) differs from gross price (BT-148) - price discount (BT-147). Our own.
    pub const LINE_PRICE: &str = "LINE-PRICE";
    /// An allowance or charge amount differs from base amount x percentage / 100. Our own.
    pub const ALLOWANCE_CHARGE_PERCENT: &str = "ALLOWANCE-CHARGE-PERCENT";
    /// A value that makes the arithmetic impossible: base quantity zero or negative.
    pub const INVALID_VALUE: &str = "INVALID-VALUE";
    /// An amount out of the representable range.
    pub const OVERFLOW: &str = "OVERFLOW";
    /// The GST stated on an invoice matches neither GST Act rounding method.
    pub const GST: &str = "GST";
    /// A journal entry whose debits and credits differ in some currency.
    pub const UNBALANCED: &str = "UNBALANCED";
    /// A journal entry with fewer than two lines.
    pub const TOO_FEW_LINES: &str = "TOO-FEW-LINES";
    /// A journal line amount that is zero or negative.
    pub const NON_POSITIVE_AMOUNT: &str = "NON-POSITIVE-AMOUNT";
    /// A journal line on an account that does not exist.
    pub const UNKNOWN_ACCOUNT: &str = "UNKNOWN-ACCOUNT";
    /// A journal line on an account of another organization.
    pub const FOREIGN_ACCOUNT: &str = "FOREIGN-ACCOUNT";
    /// A journal line in another currency than its account.
    pub const CURRENCY_MISMATCH: &str = "CURRENCY-MISMATCH";
    /// Posting would make an account's debits exceed its credits (TigerBeetle
    /// `debits_must_not_exceed_credits`).
    pub const EXCEEDS_CREDITS: &str = "EXCEEDS-CREDITS";
    /// Posting would make an account's credits exceed its debits (TigerBeetle
    /// `credits_must_not_exceed_debits`).
    pub const EXCEEDS_DEBITS: &str = "EXCEEDS-DEBITS";
    /// An entry id already posted with different lines (idempotent ids).
    pub const ID_REUSED: &str = "ID-REUSED";
    /// A stored account balance differs from the one rebuilt from journal lines.
    pub const BALANCE_DRIFT: &str = "BALANCE-DRIFT";
    /// A balance assertion (Beancount's `balance`) that does not hold.
    pub const BALANCE_ASSERTION: &str = "BALANCE-ASSERTION";
    /// Australian Business Number.
    pub const ABN: &str = "ABN";
    /// Australian Company Number.
    pub const ACN: &str = "ACN";
    /// International Bank Account Number.
    pub const IBAN: &str = "IBAN";
    /// EU VAT identification number.
    pub const VAT_NUMBER: &str = "VAT-NUMBER";
}

/// One broken rule: which rule (`code`), where (`path`, a JSON Pointer into the checked document), what
/// the rule computes (`expected`) and what the document states (`actual`).
///
/// Amounts in `expected` and `actual` are decimal strings, never numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Violation {
    /// A stable code: a business rule (`BR-CO-10`, `BR-S-08`) or one of [`codes`].
    pub code: Cow<'static, str>,
    /// A JSON Pointer (RFC 6901) to the stated value that breaks the rule (`/totals/tax_exclusive_amount`).
    pub path: String,
    /// What is wrong, in words.
    pub message: Cow<'static, str>,
    /// The value the rule computes, where there is one.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub expected: Option<String>,
    /// The value the document states, where there is one.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub actual: Option<String>,
}

impl Violation {
    /// A violation without expected and actual values.
    pub fn new(
        code: impl Into<Cow<'static, str>>,
        path: impl Into<String>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            code: code.into(),
            path: path.into(),
            message: message.into(),
            expected: None,
            actual: None,
        }
    }

    /// Adds what the rule computes and what the document states.
    #[must_use]
    pub fn with_values(mut self, expected: impl fmt::Display, actual: impl fmt::Display) -> Self {
        self.expected = Some(expected.to_string());
        self.actual = Some(actual.to_string());
        self
    }

    /// Whether this is an EN 16931 business rule (`BR-...`) rather than one of this crate's own codes.
    #[must_use]
    pub fn is_business_rule(&self) -> bool {
        self.code.starts_with("BR-")
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.code, self.path, self.message)?;
        if let (Some(expected), Some(actual)) = (&self.expected, &self.actual) {
            write!(f, " (expected {expected}, actual {actual})")?;
        }
        Ok(())
    }
}

/// Every violation found, in the order the checks ran. Empty means valid.
///
/// It is an error type too, so `check(..).into_result()?` works in a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
#[error("{} violation(s){}", self.0.len(), self.0.first().map(|v| format!(", first: {v}")).unwrap_or_default())]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// No violations.
    #[must_use]
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds one.
    pub fn push(&mut self, violation: Violation) {
        self.0.push(violation);
    }

    /// Adds all of `other`.
    pub fn extend(&mut self, other: Self) {
        self.0.extend(other.0);
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over them.
    pub fn iter(&self) -> std::slice::Iter<'_, Violation> {
        self.0.iter()
    }

    /// Their codes, in order (with repeats).
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|v| v.code.as_ref())
    }

    /// Whether one of them has `code`.
    #[must_use]
    pub fn contains_code(&self, code: &str) -> bool {
        self.0.iter().any(|v| v.code == code)
    }

    /// The violations as a slice.
    #[must_use]
    pub fn as_slice(&self) -> &[Violation] {
        &self.0
    }

    /// `Ok(())` when empty, else `Err(self)`.
    ///
    /// # Errors
    ///
    /// `self`, when there is at least one violation.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl From<Vec<Violation>> for Violations {
    fn from(v: Vec<Violation>) -> Self {
        Self(v)
    }
}

impl From<Violation> for Violations {
    fn from(v: Violation) -> Self {
        Self(vec![v])
    }
}

impl From<Violations> for Vec<Violation> {
    fn from(v: Violations) -> Self {
        v.0
    }
}

impl IntoIterator for Violations {
    type Item = Violation;
    type IntoIter = std::vec::IntoIter<Violation>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Violations {
    type Item = &'a Violation;
    type IntoIter = std::slice::Iter<'a, Violation>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Violation> for Violations {
    fn from_iter<I: IntoIterator<Item = Violation>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// A value that can check its own invariants: the route checks it (through `Validated<T>` with the
/// `axum` feature) and the service checks it again with the same code.
pub trait Validate {
    /// Every violation of the value's invariants; empty when valid.
    fn violations(&self) -> Violations;

    /// `Ok(())` when valid.
    ///
    /// # Errors
    ///
    /// Every violation, when there is at least one.
    fn validate(&self) -> Result<(), Violations> {
        self.violations().into_result()
    }
}
