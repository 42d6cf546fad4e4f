-- Debits and credits posted per account and calendar month, moved in the posting's transaction, so the
-- dashboard's revenue and expenses by month read at most accounts x 12 rows instead of every journal line.
CREATE TABLE account_months (
    account_id       UUID NOT NULL REFERENCES accounts (id),
    month            TEXT NOT NULL,                  -- YYYY-MM of the entry date
    organization_id  UUID NOT NULL REFERENCES organizations (id),
    debits           BIGINT NOT NULL DEFAULT 0,
    credits          BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, month)
);
CREATE INDEX account_months_organization ON account_months (organization_id, month);
INSERT INTO account_months (account_id, month, organization_id, debits, credits)
SELECT l.account_id, to_char(e.entry_date, 'YYYY-MM'), l.organization_id,
       SUM(CASE WHEN l.side = 'debit' THEN l.amount_minor ELSE 0 END),
       SUM(CASE WHEN l.side = 'credit' THEN l.amount_minor ELSE 0 END)
FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
GROUP BY l.account_id, to_char(e.entry_date, 'YYYY-MM'), l.organization_id;
