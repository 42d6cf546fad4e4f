-- Integrity audits: each run recomputes an organization's invoices and journals with fin-invariants and
-- stores every deviation as an integrity event; an event stays open until a later run no longer finds it.
CREATE TABLE integrity_runs (
    id                UUID PRIMARY KEY NOT NULL,
    organization_id   UUID NOT NULL REFERENCES organizations (id),
    started_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ,
    status            TEXT NOT NULL CHECK (status IN ('running', 'clean', 'deviations', 'failed')),
    summary           TEXT,                 -- JSON of fin-invariants' audit summary
    deviations        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX integrity_runs_organization ON integrity_runs (organization_id, started_at);

CREATE TABLE integrity_events (
    id                UUID PRIMARY KEY NOT NULL,
    organization_id   UUID NOT NULL REFERENCES organizations (id),
    run_id            UUID NOT NULL REFERENCES integrity_runs (id),
    record_kind       TEXT NOT NULL,        -- invoice, journal_entry, account
    record_id         TEXT NOT NULL,
    violations        TEXT NOT NULL,        -- JSON: every violation found
    opened_at         TIMESTAMPTZ NOT NULL,
    closed_at         TIMESTAMPTZ,
    closed_by_run     UUID
);
CREATE INDEX integrity_events_open ON integrity_events (organization_id, closed_at);
