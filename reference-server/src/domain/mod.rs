//! The domain: rules and queries, no HTTP types.
//!
//! Who may call what is declared once, in each route's `x-roles` (see [`crate::openapi`]), and enforced
//! before a handler runs; the domain checks only what depends on the data (a user's own export, an admin
//! adding an owner).

pub mod audit;
pub mod dashboard;
pub mod identity;
pub mod integrity;
pub mod invoices;
pub mod ledger;
pub mod retention;
pub mod rights;
pub mod totp;
