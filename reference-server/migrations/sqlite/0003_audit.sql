-- The audit trail: append-only events per organization, chained by HMAC (shared/API.md, Audit chain).
CREATE TABLE audit_events (
    organization_id  BLOB NOT NULL REFERENCES organizations (id),
    seq              INTEGER NOT NULL,             -- 1, 2, 3 ... per organization
    id               BLOB NOT NULL UNIQUE,
    actor_id         BLOB,                         -- a user id, never a name or email
    action           TEXT NOT NULL,
    entity_type      TEXT NOT NULL,
    entity_id        TEXT NOT NULL,
    before_value     TEXT,                         -- JSON
    after_value      TEXT,                         -- JSON
    occurred_at      TEXT NOT NULL,
    hash             BLOB NOT NULL,                -- HMAC-SHA256(key, previous hash || canonical JSON)
    PRIMARY KEY (organization_id, seq)
);

-- The newest link of each organization's chain, updated in the same transaction as each append, so deleting
-- the newest event is found too.
CREATE TABLE audit_heads (
    organization_id  BLOB PRIMARY KEY NOT NULL REFERENCES organizations (id),
    last_hash        BLOB NOT NULL,
    count            INTEGER NOT NULL
);
