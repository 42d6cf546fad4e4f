-- Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): one row per user and key, kept 24 hours. The
-- fingerprint is SHA-256 of method, path and body; the stored answer is replayed for the same key and body.
CREATE TABLE idempotency_keys (
    user_id         UUID NOT NULL REFERENCES users (id),
    idempotency_key TEXT NOT NULL,
    fingerprint     BYTEA NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('running', 'done')),
    response_status INTEGER,
    content_type    TEXT,
    response_body   BYTEA,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
);
