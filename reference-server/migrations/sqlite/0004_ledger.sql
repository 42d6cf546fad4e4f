-- The ledger: a chart of accounts per organization and immutable journal entries (corrections are reversals).
-- Amounts are BIGINT minor units with the ISO 4217 code beside them; never floating point.
CREATE TABLE accounts (
    id               BLOB PRIMARY KEY NOT NULL,
    organization_id  BLOB NOT NULL REFERENCES organizations (id),
    code             TEXT NOT NULL,
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('asset', 'liability', 'equity', 'income', 'expense')),
    currency         TEXT NOT NULL CHECK (length(currency) = 3),
    debits_posted    BIGINT NOT NULL DEFAULT 0,  -- sums of its journal lines, kept in the posting transaction
    credits_posted   BIGINT NOT NULL DEFAULT 0,
    no_negative      INTEGER NOT NULL DEFAULT 0,  -- the balance may not go below zero on its normal side
    created_at       TEXT NOT NULL,
    UNIQUE (organization_id, code)
);

CREATE TABLE journal_entries (
    id               BLOB PRIMARY KEY NOT NULL,
    organization_id  BLOB NOT NULL REFERENCES organizations (id),
    entry_date       TEXT NOT NULL,
    description      TEXT NOT NULL,
    source           TEXT NOT NULL CHECK (source IN ('manual', 'invoice', 'payment', 'reversal')),
    source_id        BLOB,
    reverses_id      BLOB UNIQUE REFERENCES journal_entries (id),
    created_by       BLOB,
    posted_at        TEXT NOT NULL
);
CREATE INDEX journal_entries_organization ON journal_entries (organization_id, entry_date);

CREATE TABLE journal_lines (
    entry_id         BLOB NOT NULL REFERENCES journal_entries (id),
    line_no          INTEGER NOT NULL,
    organization_id  BLOB NOT NULL REFERENCES organizations (id),
    account_id       BLOB NOT NULL REFERENCES accounts (id),
    side             TEXT NOT NULL CHECK (side IN ('debit', 'credit')),
    amount_minor     BIGINT NOT NULL CHECK (amount_minor > 0),
    currency         TEXT NOT NULL,
    PRIMARY KEY (entry_id, line_no)
);
CREATE INDEX journal_lines_account ON journal_lines (account_id);
