//! An in-memory [`AuditSource`] (the trait's reference implementation, not a mock of a database): pages are
//! slices of vectors, cursors are indices.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;

use fin_invariants::audit::{
    AuditSink, AuditSource, Deviation, Page, Progress, StoredBalance, StoredGstInvoice,
    StoredInvoice,
};
use fin_invariants::invoice::TaxRounding;
use fin_invariants::journal::{Account, JournalEntry};

#[derive(Default, Clone)]
pub struct MemorySource {
    pub accounts: Vec<Account>,
    pub invoices: Vec<StoredInvoice>,
    pub gst_invoices: Vec<StoredGstInvoice>,
    pub entries: Vec<JournalEntry>,
    pub balances: Vec<StoredBalance>,
    /// The most records any one call returned.
    pub largest_page: usize,
}

fn page<T: Clone>(items: &[T], cursor: Option<&str>, limit: usize, largest: &mut usize) -> Page<T> {
    let start: usize = cursor.map_or(0, |c| c.parse().unwrap());
    let end = (start + limit).min(items.len());
    *largest = (*largest).max(end - start);
    Page {
        items: items[start..end].to_vec(),
        next: (end < items.len()).then(|| end.to_string()),
    }
}

impl AuditSource for MemorySource {
    type Error = Infallible;

    async fn accounts(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>, Infallible> {
        Ok(page(&self.accounts, cursor, limit, &mut self.largest_page))
    }

    async fn invoices(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredInvoice>, Infallible> {
        Ok(page(&self.invoices, cursor, limit, &mut self.largest_page))
    }

    async fn gst_invoices(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredGstInvoice>, Infallible> {
        Ok(page(
            &self.gst_invoices,
            cursor,
            limit,
            &mut self.largest_page,
        ))
    }

    async fn journal_entries(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<JournalEntry>, Infallible> {
        Ok(page(&self.entries, cursor, limit, &mut self.largest_page))
    }

    async fn stored_balances(
        &mut self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<StoredBalance>, Infallible> {
        Ok(page(&self.balances, cursor, limit, &mut self.largest_page))
    }
}

/// Keeps what it is given.
#[derive(Default)]
pub struct VecSink {
    pub deviations: Vec<Deviation>,
    pub progress: Vec<Progress>,
    pub roundings: Vec<(String, TaxRounding)>,
}

impl AuditSink for VecSink {
    type Error = Infallible;

    async fn deviation(&mut self, deviation: Deviation) -> Result<(), Infallible> {
        self.deviations.push(deviation);
        Ok(())
    }

    fn progress(&mut self, progress: Progress) {
        self.progress.push(progress);
    }

    fn tax_rounding(&mut self, invoice_id: &str, rounding: TaxRounding) {
        self.roundings.push((invoice_id.to_owned(), rounding));
    }
}
