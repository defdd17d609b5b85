//! A PostgreSQL server of the test's own (initdb into a temporary folder, on a free port), so a
//! test can restart it, and a superuser session to query it.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use tests::unique;

/// A PostgreSQL server of the test's own, stopped when dropped.
pub(crate) struct PgServer {
    pub(crate) bin: PathBuf,
    pub(crate) data: PathBuf,
    pub(crate) port: u16,
    /// Root cannot run PostgreSQL: the server runs as the `postgres` user then.
    pub(crate) as_postgres: bool,
}

impl PgServer {
    /// initdb and start a server on a free loopback port; `None` (after saying so) when the
    /// server binaries are not installed.
    pub(crate) fn start() -> Option<PgServer> {
        let Some(bin) = server_bin_dir() else {
            assert!(
                std::env::var("BOOKSTORE_REQUIRE_POSTGRES").is_err(),
                "BOOKSTORE_REQUIRE_POSTGRES is set but no PostgreSQL server is installed \
                 (/usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)"
            );
            platform::database::testing::note_skip(
                "replicas on PostgreSQL: no PostgreSQL server installed (apt-get install postgresql)",
            );
            return None;
        };
        let as_postgres = is_root();
        let data = if as_postgres {
            let out = Command::new("runuser")
                .args([
                    "-u",
                    "postgres",
                    "--",
                    "mktemp",
                    "-d",
                    "/tmp/bookstore-pg-XXXXXX",
                ])
                .output()
                .expect("runuser mktemp");
            assert!(out.status.success(), "mktemp as postgres: {out:?}");
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
        } else {
            let d = std::env::temp_dir().join(format!("bookstore-pg-{}", unique()));
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let server = PgServer {
            bin,
            data,
            port,
            as_postgres,
        };
        let pgdata = server.data.join("db");
        server.run(
            "initdb",
            &[
                "-D",
                pgdata.to_str().unwrap(),
                "-U",
                "bookstore",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        server.ctl("start");
        Some(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://bookstore@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).output().expect("PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl start|stop|restart`, waiting until it is done.
    pub(crate) fn ctl(&self, action: &str) {
        let pgdata = self.data.join("db");
        let log = self.data.join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.data.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                pgdata.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                action,
            ],
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let pgdata = self.data.join("db");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .args([
                "-D",
                pgdata.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// The newest installed server's `bin` folder (Debian: /usr/lib/postgresql/<major>/bin).
pub(crate) fn server_bin_dir() -> Option<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Runs `sql` on `pg` (a superuser session of its own).
pub(crate) async fn psql(pg: &PgServer, sql: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&pg.url()).await.unwrap();
    let n: i64 = sqlx::Row::try_get(&sqlx::query(sql).fetch_one(&pool).await.unwrap(), 0).unwrap();
    pool.close().await;
    n
}
