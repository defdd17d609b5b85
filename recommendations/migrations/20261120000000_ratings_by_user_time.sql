-- One covering index for both reads by user: the start-up stream (ORDER BY user_id,
-- updated_at_ms, book_id) becomes an index-only scan with no sort, and a user's page of ratings
-- is a range of it. Replaces the narrower ratings_by_user_recent. Portable: SQLite and PostgreSQL.
DROP INDEX IF EXISTS ratings_by_user_recent;
CREATE INDEX IF NOT EXISTS ratings_by_user_time ON ratings (user_id, updated_at_ms, book_id, stars);
