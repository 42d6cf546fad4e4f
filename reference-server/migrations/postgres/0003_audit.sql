-- The audit trail: append-only events per organization, chained by HMAC (shared/API.md, Audit chain).
CREATE TABLE audit_events (
    organization_id  UUID NOT NULL REFERENCES organizations (id),
    seq              BIGINT NOT NULL,              -- 1, 2, 3 ... per organization
    id               UUID NOT NULL UNIQUE,
    actor_id         UUID,                         -- a user id, never a name or email
    action           TEXT NOT NULL,
    entity_type      TEXT NOT NULL,
    entity_id        TEXT NOT NULL,
    before_value     TEXT,                         -- JSON
    after_value      TEXT,                         -- JSON
    occurred_at      TIMESTAMPTZ NOT NULL,
    hash             BYTEA NOT NULL,               -- HMAC-SHA256(key, previous hash || canonical JSON)
    PRIMARY KEY (organization_id, seq)
);

-- The newest link of each organization's chain, updated in the same transaction as each append, so deleting
-- the newest event is found too.
CREATE TABLE audit_heads (
    organization_id  UUID PRIMARY KEY REFERENCES organizations (id),
    last_hash        BYTEA NOT NULL,
    count            BIGINT NOT NULL
);
