-- The change log every replica follows (PostgreSQL): one row per rating set, changed or removed,
-- written in the same transaction as the ratings row. Positions come from a sequence, so two
-- writers can commit them out of order: readers track the gaps (recommendations::changelog).
CREATE TABLE IF NOT EXISTS rating_changes (
    position        BIGSERIAL PRIMARY KEY,
    user_id         TEXT      NOT NULL,
    book_id         BIGINT    NOT NULL,
    stars           BIGINT,
    previous_stars  BIGINT,
    at_ms           BIGINT    NOT NULL
);
CREATE INDEX IF NOT EXISTS rating_changes_by_time ON rating_changes (at_ms);
