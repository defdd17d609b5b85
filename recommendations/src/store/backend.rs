//! The two SQL engines: which one a database URL names, and the migrations each runs.

use platform::{
    database::{EmbeddedMigration, embedded_migrator},
    migration,
};
use sqlx::migrate::Migrator;

/// The database engine behind a URL: the two differ only in how log positions are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Self {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// The migrations shared by both engines (`migrations/*.sql`).
pub const PORTABLE: &[EmbeddedMigration] = &[
    migration!("20261101000000_create_ratings.sql"),
    migration!("20261120000000_ratings_by_user_time.sql"),
    migration!("20261122000000_revocations.sql"),
    migration!("20261207000000_rating_log_meta.sql"),
];

/// The change log's table, whose position column each engine makes its own way.
pub const SQLITE_ONLY: &[EmbeddedMigration] =
    &[migration!("sqlite/20261207000001_rating_changes.sql")];
pub const POSTGRES_ONLY: &[EmbeddedMigration] =
    &[migration!("postgres/20261207000001_rating_changes.sql")];

/// The migrations of the ratings database on `backend`: the portable ones plus its own.
pub fn migrator(backend: Backend) -> Migrator {
    let own = match backend {
        Backend::Sqlite => SQLITE_ONLY,
        Backend::Postgres => POSTGRES_ONLY,
    };
    embedded_migrator(&[PORTABLE, own].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_compiled_in() {
        use platform::database::testing::assert_embeds_every_file;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        assert_embeds_every_file(&dir, PORTABLE);
        assert_embeds_every_file(&dir.join("sqlite"), SQLITE_ONLY);
        assert_embeds_every_file(&dir.join("postgres"), POSTGRES_ONLY);
    }
}
