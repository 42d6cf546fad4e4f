-- Tenants. Every other table of the domain hangs off an organization.
CREATE TABLE organizations (
    id          BLOB PRIMARY KEY NOT NULL,          -- UUIDv7, 16 bytes
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan        TEXT NOT NULL DEFAULT 'authenticated' CHECK (plan IN ('authenticated', 'premium')),
    require_totp INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL                       -- RFC 3339, UTC
);
