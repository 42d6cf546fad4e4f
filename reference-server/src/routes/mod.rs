//! HTTP routes: one file per resource. Each handler extracts, calls the domain, and answers; errors are
//! problem+json through [`crate::error::AppError`].

pub mod audit;
pub mod auth;
pub mod dashboard;
pub mod integrity;
pub mod invoices;
pub mod ledger;
pub mod rights;
pub mod users;
