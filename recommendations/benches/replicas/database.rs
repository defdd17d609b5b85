//! The run's two fresh PostgreSQL databases (the replicas' and the users service's), made
//! beside the one the benchmark is given and dropped after.

use crate::common::Error;

/// The two fresh databases of a run: the replicas' and the users service's (each service runs
/// its own migrations).
#[derive(Clone)]
pub(crate) struct Databases {
    pub(crate) recommendations: String,
    pub(crate) users: String,
}

impl Databases {
    pub(crate) async fn admin(admin_url: &str) -> Result<sqlx::PgConnection, Error> {
        use sqlx::Connection;
        Ok(sqlx::PgConnection::connect(admin_url).await?)
    }

    pub(crate) async fn create(&self, admin_url: &str) -> Result<(), Error> {
        let mut conn = Self::admin(admin_url).await?;
        for db in [&self.recommendations, &self.users] {
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn drop_all(&self, admin_url: &str) {
        let Ok(mut conn) = Self::admin(admin_url).await else {
            eprintln!("warning: cannot reach PostgreSQL to drop the bench databases");
            return;
        };
        for db in [&self.recommendations, &self.users] {
            if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&mut conn)
                .await
            {
                eprintln!("warning: dropping {db}: {e}");
            }
        }
    }
}

/// `admin_url` with its database replaced by `db` (query string kept).
pub(crate) fn database_url(admin_url: &str, db: &str) -> String {
    let (main, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(m, q)| (m, Some(q)));
    let base = match main.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((authority, _)) => format!("{scheme}://{authority}"),
            None => main.to_owned(),
        },
        None => main.to_owned(),
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}
