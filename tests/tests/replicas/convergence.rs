//! After a fault: every replica's index must equal a rebuild from the ratings table.

use std::time::{Duration, Instant};

use catalog::Digest;
use platform::database::LazyPool;
use recommendations::{
    changelog::{IndexState, rebuild_digest},
    store::{Backend, SqlRatingStore, migrator},
};
use tests::Suite;

use crate::{postgres::PgServer, replica_names};

pub(crate) async fn index_state(s: &Suite, replica: &str) -> Option<IndexState> {
    let admin = s.admin(replica)?;
    reqwest::get(format!("{admin}/index"))
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .await
        .ok()
}

/// Waits (at most 20 s) until every replica's index equals a rebuild from the ratings table.
pub(crate) async fn assert_every_index_equals_a_rebuild(s: &Suite, pg: &PgServer, replicas: usize) {
    let pool = platform::database::connect(&pg.url(), 2, &migrator(Backend::Postgres))
        .await
        .unwrap();
    let lazy = LazyPool::default();
    lazy.set(pool);
    let store = SqlRatingStore::new(lazy, Backend::Postgres);
    let rebuilt = rebuild_digest(&store, Digest::builtin().unwrap())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for name in replica_names(replicas) {
        loop {
            let state = index_state(s, &name).await;
            if state.as_ref().is_some_and(|x| x.digest == rebuilt.digest) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}'s index {state:?} is not a rebuild's {rebuilt:?}\n{}",
                s.log(&name)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
