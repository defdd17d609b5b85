-- The change log's bookkeeping: positions at or below pruned_through have been deleted by
-- retention, so a replica whose last applied position is lower must reload (see
-- recommendations::changelog). The log itself (rating_changes) needs a per-engine position
-- column: migrations/sqlite/ and migrations/postgres/. Portable: SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS rating_log_meta (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through  BIGINT  NOT NULL
);
INSERT INTO rating_log_meta (id, pruned_through) VALUES (1, 0);
