//! The database pool for the stateful services: an embedded SQLite file by default, PostgreSQL
//! for a `postgres://` URL, through `sqlx`'s Any driver so one set of queries and migrations
//! serves both. Connecting retries with backoff, so start-up order does not matter.

use std::time::Duration;

use sqlx::{
    AnyPool, Executor,
    any::{AnyPoolOptions, install_default_drivers},
    migrate::{Migration, MigrationType, Migrator},
};

use crate::{backoff::Backoff, health::Health};

/// A URL safe to log: the password, if any, replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A migration compiled into the binary: its path under `migrations/` (the file name is
/// `<version>_<words>.sql`) and its SQL; [`migration!`](crate::migration) makes one.
pub type EmbeddedMigration = (&'static str, &'static str);

/// A migrator over migrations compiled in with `include_str!`, versioned and described by file
/// name exactly as sqlx's `migrate!` macro would (so databases it migrated stay valid), without
/// the macro's compile-time database stack. [`testing::assert_embeds_every_file`] keeps each
/// list equal to its folder.
pub fn embedded_migrator(files: &[EmbeddedMigration]) -> Migrator {
    let mut migrations: Vec<Migration> = files
        .iter()
        .map(|&(path, sql)| {
            let name = base_name(path);
            let stem = name.strip_suffix(".sql").unwrap_or(name);
            let (version, words) = stem
                .split_once('_')
                .unwrap_or_else(|| panic!("migration {name} is not <version>_<words>.sql"));
            let version = version
                .parse()
                .unwrap_or_else(|_| panic!("migration {name}: {version} is not a version"));
            let no_tx = sql.starts_with("-- no-transaction");
            Migration::new(
                version,
                words.replace('_', " ").into(),
                MigrationType::Simple,
                sql.into(),
                no_tx,
            )
        })
        .collect();
    migrations.sort_by_key(|m| m.version);
    Migrator {
        migrations: migrations.into(),
        ..Migrator::DEFAULT
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// One [`EmbeddedMigration`]: `migration!("20261101000000_create_users.sql")` compiles in that
/// file from the calling crate's `migrations/` folder (a sub-folder may be named).
#[macro_export]
macro_rules! migration {
    ($path:literal) => {
        (
            $path,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $path)),
        )
    };
}

/// Opens a pool once and runs the migrations.
pub async fn connect(
    url: &str,
    max_connections: u32,
    migrator: &Migrator,
) -> sqlx::Result<AnyPool> {
    install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let pool = AnyPoolOptions::new()
        .max_connections(if sqlite {
            1.max(max_connections.min(4))
        } else {
            max_connections
        })
        .acquire_timeout(Duration::from_secs(3))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if sqlite {
                    // WAL lets readers work beside the writer; wait instead of failing on a lock.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?;
    migrator.run(&pool).await?;
    Ok(pool)
}

/// Connects and migrates, retrying with exponential backoff (100 ms doubling to 5 s) until it
/// works: the database may start after the service.
pub async fn connect_with_retry(url: &str, max_connections: u32, migrator: &Migrator) -> AnyPool {
    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(5),
        floor: Duration::ZERO,
    };
    let mut failures = 0u32;
    loop {
        match connect(url, max_connections, migrator).await {
            Ok(pool) => {
                tracing::info!(database = %redact(url), "database ready");
                return pool;
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = BACKOFF.step(failures);
                tracing::warn!(database = %redact(url), %error, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Keeps `health` in step with the database: NOT_SERVING while it cannot be reached.
pub async fn watch_health(pool: AnyPool, health: Health, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ok = tokio::time::timeout(every, sqlx::query("SELECT 1").execute(&pool))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false);
        if !ok {
            tracing::warn!("database ping failed");
        }
        health.set_serving(ok).await;
    }
}

/// A pool that arrives after the server has started (the database may come up later).
#[derive(Clone, Default)]
pub struct LazyPool(std::sync::Arc<std::sync::OnceLock<AnyPool>>);

/// The database has not been reached yet.
#[derive(Debug, thiserror::Error)]
#[error("the database is not reachable yet")]
pub struct NotReady;

impl LazyPool {
    pub fn set(&self, pool: AnyPool) {
        let _ = self.0.set(pool);
    }

    pub fn get(&self) -> Result<&AnyPool, NotReady> {
        self.0.get().ok_or(NotReady)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_logged_without_its_password() {
        assert_eq!(
            redact("postgres://books:s3cret@db:5432/users"),
            "postgres://books:***@db:5432/users"
        );
        assert_eq!(
            redact("sqlite://users.db?mode=rwc"),
            "sqlite://users.db?mode=rwc"
        );
    }
}

/// Test databases: a fresh SQLite file, or a fresh PostgreSQL database when
/// `TEST_POSTGRES_URL` names a server (CI sets it; `BOOKSTORE_REQUIRE_POSTGRES=1` makes its
/// absence an error rather than a skip).
pub mod testing {
    /// Fails unless `files` names every `.sql` file directly in `dir` and nothing else, so a
    /// migration added to a folder cannot be left out of the binary.
    pub fn assert_embeds_every_file(dir: &std::path::Path, files: &[super::EmbeddedMigration]) {
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.ends_with(".sql").then_some(name)
            })
            .collect();
        let mut listed: Vec<String> = files
            .iter()
            .map(|(path, _)| super::base_name(path).to_owned())
            .collect();
        on_disk.sort();
        listed.sort();
        assert_eq!(
            listed,
            on_disk,
            "the embedded migrations differ from {}",
            dir.display()
        );
    }

    /// Says that a test checked nothing, and why: on stderr (which `cargo test` hides for a
    /// passing test) and, when `BOOKSTORE_SKIP_LOG` names a file, as a line appended to it, so
    /// `make test` can list at its end what it did not check.
    pub fn note_skip(why: &str) {
        eprintln!("SKIPPED: {why}");
        if let Ok(path) = std::env::var("BOOKSTORE_SKIP_LOG") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{why}");
            }
        }
    }

    /// A SQLite URL for a new file under the temp directory.
    pub fn sqlite_url(tag: &str) -> String {
        let mut rnd = [0u8; 8];
        getrandom::getrandom(&mut rnd).expect("random source");
        let name: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("bookstore-{tag}-{name}.db"));
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// A URL of a new, empty PostgreSQL database, or `None` when no server is configured.
    pub async fn postgres_url(tag: &str) -> Option<String> {
        let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("BOOKSTORE_REQUIRE_POSTGRES").is_err(),
                "BOOKSTORE_REQUIRE_POSTGRES is set but TEST_POSTGRES_URL is not"
            );
            note_skip("the PostgreSQL half of the storage tests (TEST_POSTGRES_URL not set)");
            return None;
        };
        sqlx::any::install_default_drivers();
        let mut rnd = [0u8; 6];
        getrandom::getrandom(&mut rnd).expect("random source");
        let db: String = format!(
            "bookstore_{tag}_{}",
            rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let pool = sqlx::AnyPool::connect(&admin_url)
            .await
            .expect("TEST_POSTGRES_URL reachable");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&pool)
            .await
            .expect("create test database");
        pool.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        Some(format!("{base}/{db}"))
    }
}
