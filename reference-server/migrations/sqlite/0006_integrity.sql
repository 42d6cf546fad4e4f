-- Integrity audits: each run recomputes an organization's invoices and journals with fin-invariants and
-- stores every deviation as an integrity event; an event stays open until a later run no longer finds it.
CREATE TABLE integrity_runs (
    id                BLOB PRIMARY KEY NOT NULL,
    organization_id   BLOB NOT NULL REFERENCES organizations (id),
    started_at        TEXT NOT NULL,
    finished_at       TEXT,
    status            TEXT NOT NULL CHECK (status IN ('running', 'clean', 'deviations', 'failed')),
    summary           TEXT,                 -- JSON of fin-invariants' audit summary
    deviations        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX integrity_runs_organization ON integrity_runs (organization_id, started_at);

CREATE TABLE integrity_events (
    id                BLOB PRIMARY KEY NOT NULL,
    organization_id   BLOB NOT NULL REFERENCES organizations (id),
    run_id            BLOB NOT NULL REFERENCES integrity_runs (id),
    record_kind       TEXT NOT NULL,        -- invoice, journal_entry, account
    record_id         TEXT NOT NULL,
    violations        TEXT NOT NULL,        -- JSON: every violation found
    opened_at         TEXT NOT NULL,
    closed_at         TEXT,
    closed_by_run     BLOB
);
CREATE INDEX integrity_events_open ON integrity_events (organization_id, closed_at);
