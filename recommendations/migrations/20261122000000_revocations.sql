-- Ended tokens (sessions signed out, users deleted) until the last one expires; see
-- platform::revocation. Portable: SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS revocations (
    id             TEXT PRIMARY KEY,
    expires_at_ms  BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS revocations_by_created ON revocations (created_at_ms);
