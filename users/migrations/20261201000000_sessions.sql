-- Every session signed in (its token's `sid`) until its token expires, so that a password change
-- can end the account's other sessions one by one, here and in recommendations (RevokeSession).
-- Expired rows are deleted as sign-ins pass; a signed-out session's row goes with its sign-out.
CREATE TABLE IF NOT EXISTS sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at_ms);
