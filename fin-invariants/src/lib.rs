//! Financial invariants as code: exact money, EN 16931 invoice totals, balanced journals, identifier
//! checks, violations as values, and an integrity audit runner.
//!
//! # Example
//!
//! ```
//! use fin_invariants::invoice::{check, compute, Invoice, InvoiceLine, TaxCategory, Term};
//! use fin_invariants::{parse_decimal, Currency, Money};
//!
//! let d = |s| parse_decimal(s).unwrap();
//! let invoice = Invoice {
//!     currency: Currency::AUD,
//!     lines: vec![
//!         InvoiceLine::new(d("2"), d("9.95"), TaxCategory::Standard, Some(d("10"))),
//!         InvoiceLine::new(d("1"), d("120.00"), TaxCategory::Standard, Some(d("10"))),
//!     ],
//!     allowances: vec![], charges: vec![], paid_amount: None, rounding_amount: None,
//! };
//! let mut totals = compute(&invoice)?;
//! assert_eq!(totals.payable_amount, d("153.89"));
//! assert!(check(&invoice, &totals).is_empty());
//!
//! // One cent off the VAT total breaks exactly the rules that read it.
//! totals.set(Term::Bt110, d("13.98"));
//! let violations = check(&invoice, &totals);
//! assert_eq!(violations.codes().collect::<Vec<_>>(), ["BR-CO-14", "BR-CO-15"]);
//!
//! // Money is exact, in the currency's minor unit, and checked.
//! let parts = Money::parse("100.00", Currency::AUD)?.allocate(&[1, 1, 1])?;
//! assert_eq!(Money::sum(Currency::AUD, parts)?, Money::parse("100", Currency::AUD)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is here
//!
//! - [`Money`] and [`Currency`]: `i64` minor units (BIGINT at rest) with the ISO 4217 minor unit (AUD 2,
//!   JPY 0, BHD 3); checked arithmetic that returns [`MoneyError`]; decimal strings on the wire; allocation
//!   by largest remainders. [`Quantity`], [`UnitPrice`] and [`Rate`] convert to and from the 6- and
//!   4-decimal scaled integers of the database.
//! - [`invoice`]: EN 16931 line nets, VAT breakdown and totals BT-106..BT-115; [`invoice::compute`] and
//!   [`invoice::check`] (every violation, BR-CO-10..17, BR-S-08/09 and the other categories).
//! - [`gst`]: Australian GST, exclusive and inclusive, both GST Act rounding methods.
//! - [`journal`]: balanced double-entry journals, balances rebuilt from lines, account limits.
//! - [`ident`]: ABN, ACN, IBAN, EU VAT numbers.
//! - [`Violation`] / [`Violations`]: `{code, path, message, expected, actual}` with stable [`codes`].
//! - [`audit`]: the integrity audit over an [`audit::AuditSource`]: EN 16931 invoices, invoices with
//!   GST-inclusive prices ([`audit::StoredGstInvoice`]), journal entries and stored balances.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `serde` | no | `Serialize`/`Deserialize` for money (decimal strings), invoices, totals, journals, identifiers, violations and audit records; `decimal_str` and `decimal_str_opt` |
//! | `axum` | no | `Validated<T>`: an extractor that answers 422 `application/problem+json` with every violation (implies `serde`) |
//!
//! # Pitfalls
//!
//! - Rounding is half away from zero (EN 16931, the GST Act), not rust_decimal's default banker's rounding.
//!   Use [`Rounding`] explicitly whenever you multiply or divide [`Money`].
//! - [`invoice::check`] reads the rules as the official EN 16931 artefacts do: BR-CO-13 uses the *stated*
//!   BT-106, BR-CO-14 the stated BT-117s. Arithmetic that no rule checks (quantity x price against the
//!   stated line net) comes back under codes of its own (`LINE-NET`, `LINE-PRICE`), not as BR-CO.
//! - Invoice amounts carry two decimals (EN 16931), whatever the currency; convert totals to [`Money`]
//!   with [`Money::from_decimal`], which refuses what a currency with fewer decimals cannot hold.
//! - A [`journal::Ledger`] remembers every entry id for idempotent retries unless told not to
//!   ([`journal::Ledger::track_ids`]); the audit runner turns that off so its memory stays bounded by the
//!   number of accounts.
#![forbid(unsafe_code)]
#![deny(
    clippy::float_arithmetic,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod audit;
mod decimal;
#[cfg(feature = "axum")]
mod extract;
pub mod gst;
pub mod ident;
pub mod invoice;
pub mod journal;
mod money;
#[cfg(feature = "openapi")]
mod openapi;
mod scaled;
mod violation;

pub use decimal::{DecimalError, parse_decimal};
#[cfg(feature = "serde")]
pub use decimal::{decimal_str, decimal_str_opt};
#[cfg(feature = "axum")]
pub use extract::{PROBLEM_TYPE, Validated, ValidationRejection};
pub use money::{Currency, Money, MoneyError, Rounding};
pub use rust_decimal::Decimal;
pub use scaled::{Quantity, Rate, ScaleError, UnitPrice};
pub use violation::{Validate, Violation, Violations, codes};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
