-- Users, their server-side sessions and the refresh tokens of each session.
CREATE TABLE users (
    id                BLOB PRIMARY KEY NOT NULL,
    organization_id   BLOB NOT NULL REFERENCES organizations (id),
    email             TEXT NOT NULL UNIQUE,          -- lowercased; pseudonymized on erasure
    name              TEXT NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'accountant', 'staff', 'viewer')),
    password_hash     TEXT,                          -- argon2id PHC string
    pin_hash          TEXT,                          -- argon2id PHC string
    pin_failures      INTEGER NOT NULL DEFAULT 0,
    pin_window_start  TEXT,
    pin_locked        INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    erased_at         TEXT
);
CREATE INDEX users_organization ON users (organization_id);

-- One row per login; the access token's `sid`. Ends by logout, revocation or idleness.
CREATE TABLE sessions (
    id               BLOB PRIMARY KEY NOT NULL,
    user_id          BLOB NOT NULL REFERENCES users (id),
    organization_id  BLOB NOT NULL REFERENCES organizations (id),
    created_at       TEXT NOT NULL,
    last_seen_at     TEXT NOT NULL,
    revoked_at       TEXT,
    revoke_reason    TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Refresh tokens, stored as SHA-256 hashes; each is used once and replaced by the next of its session.
CREATE TABLE refresh_tokens (
    token_hash   BLOB PRIMARY KEY NOT NULL,
    session_id   BLOB NOT NULL REFERENCES sessions (id),
    created_at   TEXT NOT NULL,
    used_at      TEXT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
