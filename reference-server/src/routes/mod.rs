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

use serde::Deserialize;

use crate::error::{AppError, FieldError};

/// Cursor pagination (shared/API.md): an opaque `cursor` and a `limit` (default 50, at most 200).
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    cursor: Option<String>,
    limit: Option<String>,
}

impl Page {
    /// The position after which to continue (none on the first page), read by `cursor`, and the page size;
    /// 422 naming each parameter at fault.
    pub(crate) fn parse<T>(
        &self,
        cursor: impl FnOnce(&str) -> Option<T>,
    ) -> Result<(Option<T>, i64), AppError> {
        let mut errors = Vec::new();
        let after = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => {
                let after = cursor(c);
                if after.is_none() {
                    errors.push(FieldError::new(
                        "cursor",
                        "/cursor",
                        "is not a cursor this API gave out",
                    ));
                }
                after
            }
        };
        let limit = match self.limit.as_deref() {
            None => Some(50),
            Some(l) => l.parse::<i64>().ok().filter(|n| (1..=200).contains(n)),
        };
        match limit {
            Some(limit) if errors.is_empty() => Ok((after, limit)),
            _ => {
                if limit.is_none() {
                    errors.push(FieldError::new(
                        "limit",
                        "/limit",
                        "must be a whole number from 1 to 200",
                    ));
                }
                Err(AppError::Validation(errors))
            }
        }
    }

    /// The cursor of the page after `items`: none when the page was not full.
    pub(crate) fn next<T>(
        items: &[T],
        limit: i64,
        cursor: impl Fn(&T) -> String,
    ) -> Option<String> {
        let full = i64::try_from(items.len()).is_ok_and(|n| n == limit);
        items.last().filter(|_| full).map(cursor)
    }
}
