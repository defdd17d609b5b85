-- Ended tokens (sessions signed out, users deleted) until the last one expires; see
-- platform::revocation. Portable: SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS revocations (
    id             TEXT PRIMARY KEY,
    expires_at_ms  BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS revocations_by_created ON revocations (created_at_ms);
-- What recommendations must be told, written in the same transaction as the change that calls
-- for it and deleted only once recommendations has confirmed: `delete_user` (subject: the user
-- id) and `revoke_session` (subject: the session id). Retried with backoff until then.
CREATE TABLE IF NOT EXISTS outbox (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    subject          TEXT NOT NULL,
    expires_at_ms    BIGINT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_ms  BIGINT NOT NULL,
    created_at_ms    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_due ON outbox (next_attempt_ms);
