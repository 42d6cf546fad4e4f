-- Users, their server-side sessions and the refresh tokens of each session.
CREATE TABLE users (
    id                UUID PRIMARY KEY,
    organization_id   UUID NOT NULL REFERENCES organizations (id),
    email             TEXT NOT NULL UNIQUE,          -- lowercased; pseudonymized on erasure
    name              TEXT NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'accountant', 'staff', 'viewer')),
    password_hash     TEXT,                          -- argon2id PHC string
    pin_hash          TEXT,                          -- argon2id PHC string
    pin_failures      INTEGER NOT NULL DEFAULT 0,
    pin_window_start  TIMESTAMPTZ,
    pin_locked        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMPTZ NOT NULL,
    erased_at         TIMESTAMPTZ
);
CREATE INDEX users_organization ON users (organization_id);

-- One row per login; the access token's `sid`. Ends by logout, revocation or idleness.
CREATE TABLE sessions (
    id               UUID PRIMARY KEY,
    user_id          UUID NOT NULL REFERENCES users (id),
    organization_id  UUID NOT NULL REFERENCES organizations (id),
    created_at       TIMESTAMPTZ NOT NULL,
    last_seen_at     TIMESTAMPTZ NOT NULL,
    revoked_at       TIMESTAMPTZ,
    revoke_reason    TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Refresh tokens, stored as SHA-256 hashes; each is used once and replaced by the next of its session.
CREATE TABLE refresh_tokens (
    token_hash   BYTEA PRIMARY KEY,
    session_id   UUID NOT NULL REFERENCES sessions (id),
    created_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
