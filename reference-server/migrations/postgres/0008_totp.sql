-- TOTP second factor (RFC 6238): a user's secret, whether it is confirmed, and the last time step accepted
-- (a code is accepted once). Whether an organization requires it is `organizations.require_totp` (0001).
ALTER TABLE users ADD COLUMN totp_secret TEXT;                            -- base32; set by enrolment
ALTER TABLE users ADD COLUMN totp_enabled BOOLEAN NOT NULL DEFAULT FALSE; -- confirmed with a first code
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;    -- replays of this step or older are refused
