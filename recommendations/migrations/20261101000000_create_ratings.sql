-- Ratings: one per user and book. Portable SQL: runs on SQLite (default) and PostgreSQL (cluster).
CREATE TABLE IF NOT EXISTS ratings (
    user_id        TEXT   NOT NULL,
    book_id        BIGINT NOT NULL,
    stars          BIGINT NOT NULL CHECK (stars BETWEEN 1 AND 5),
    updated_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (user_id, book_id)
);
CREATE INDEX IF NOT EXISTS ratings_by_user_recent ON ratings (user_id, updated_at_ms);
