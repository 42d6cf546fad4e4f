//! Financial invariants as code: exact money, EN 16931 invoice totals, balanced journals and identifiers.
//!
//! This crate will hold: `Money` with ISO 4217 minor units and checked, exact arithmetic; allocation by
//! largest remainders; EN 16931 line nets, tax breakdown and totals (BR-CO-10..17, BR-S-08/09); double-entry
//! journal checks; ABN, ACN, IBAN and EU VAT number checks; violations as values with stable codes; and an
//! integrity audit runner over a data source trait.
//!
//! Status: planned (issue 8). No API is published yet.
#![forbid(unsafe_code)]
