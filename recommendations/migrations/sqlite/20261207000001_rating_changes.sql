-- The change log every replica follows (SQLite): one row per rating set, changed or removed,
-- written in the same transaction as the ratings row. AUTOINCREMENT: positions only grow, even
-- after retention deletes the newest rows. SQLite has one writer at a time, so positions commit
-- in order.
CREATE TABLE IF NOT EXISTS rating_changes (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         TEXT    NOT NULL,
    book_id         BIGINT  NOT NULL,
    stars           BIGINT,
    previous_stars  BIGINT,
    at_ms           BIGINT  NOT NULL
);
CREATE INDEX IF NOT EXISTS rating_changes_by_time ON rating_changes (at_ms);
