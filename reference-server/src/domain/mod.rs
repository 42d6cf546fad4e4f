//! The domain: rules and queries, no HTTP types.

pub mod audit;
pub mod dashboard;
pub mod identity;
pub mod integrity;
pub mod invoices;
pub mod ledger;
pub mod retention;
pub mod rights;
pub mod totp;
