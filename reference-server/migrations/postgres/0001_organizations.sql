-- Tenants. Every other table of the domain hangs off an organization.
CREATE TABLE organizations (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan        TEXT NOT NULL DEFAULT 'authenticated' CHECK (plan IN ('authenticated', 'premium')),
    require_totp BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
