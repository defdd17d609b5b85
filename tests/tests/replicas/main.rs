//! Recommendations replicas on one real PostgreSQL under faults: a replica killed during writes
//! and started again, the replicas' listening connections terminated, PostgreSQL itself
//! restarted. After each, every replica's index equals a rebuild from the ratings table, and
//! every rating the API acknowledged reached every feed subscriber that stayed connected.
//!
//! Each test runs a PostgreSQL server of its own (initdb into a temporary folder, on a free
//! port) so it can restart it. Needs Debian's `postgresql` package; without it the tests say so
//! and pass, unless `BOOKSTORE_REQUIRE_POSTGRES=1` (CI sets it).

mod convergence;
mod postgres;
mod traffic;

use std::time::Duration;

use reqwest::Client;
use tests::{Suite, SuiteOptions, wait_until};

use crate::{
    convergence::assert_every_index_equals_a_rebuild,
    postgres::{PgServer, psql},
    traffic::{BOOKS_PER_TEST, Subscriber, books, rate_while, readers},
};

/// The suite with `replicas` recommendations processes on `pg`, with `env` for them.
async fn suite(pg: &PgServer, replicas: usize, env: &[(&str, &str)]) -> Suite {
    Suite::start_options(SuiteOptions {
        recommendations_replicas: replicas,
        recommendations_db: Some(pg.url()),
        env_for: env
            .iter()
            .map(|(k, v)| {
                (
                    "recommendations".to_owned(),
                    (*k).to_owned(),
                    (*v).to_owned(),
                )
            })
            .collect(),
        ..SuiteOptions::default()
    })
    .await
}

fn replica_names(replicas: usize) -> Vec<String> {
    (1..=replicas)
        .map(|i| {
            if i == 1 {
                "recommendations".to_owned()
            } else {
                format!("recommendations-{i}")
            }
        })
        .collect()
}

#[tokio::test]
async fn a_replica_killed_during_writes_catches_up_when_started_again() {
    let Some(pg) = PgServer::start() else { return };
    let mut s = suite(&pg, 2, &[]).await;
    let c = Client::new();
    let tokens = readers(&s, &c, 3).await;
    let base = s.base_url.clone();
    let mut stayed = Subscriber::connect(&s, "recommendations").await;
    let killed = async {
        s.signal("recommendations-2", "KILL").await;
        s.wait_exit("recommendations-2", Duration::from_secs(10))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.restart("recommendations-2").await;
    };
    let acked = rate_while(
        &base,
        &tokens,
        &books(1_000),
        Duration::from_millis(20),
        killed,
    )
    .await;
    assert!(
        acked.len() > 100,
        "only {} ratings acknowledged",
        acked.len()
    );
    stayed.assert_received(&acked, "recommendations").await;
    assert_every_index_equals_a_rebuild(&s, &pg, 2).await;
    // The restarted replica follows the log again: its feed carries what comes next.
    let mut restarted = Subscriber::connect(&s, "recommendations-2").await;
    let more = &books(1_000 + BOOKS_PER_TEST)[..20];
    let after = rate_while(&base, &tokens, more, Duration::from_millis(10), async {}).await;
    restarted
        .assert_received(&after, "the restarted recommendations-2")
        .await;
    assert_every_index_equals_a_rebuild(&s, &pg, 2).await;
}

#[tokio::test]
async fn listening_connections_terminated_during_writes_lose_no_change() {
    let Some(pg) = PgServer::start() else { return };
    // A minute between polls: only a notification (or a listener's reconnect) wakes a replica,
    // so a listener that did not come back would leave it behind.
    let s = suite(&pg, 2, &[("LOG_POLL_MS", "60000")]).await;
    let c = Client::new();
    let tokens = readers(&s, &c, 3).await;
    let mut feeds = [
        Subscriber::connect(&s, "recommendations").await,
        Subscriber::connect(&s, "recommendations-2").await,
    ];
    let listeners =
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'recommendations-log'";
    assert_eq!(psql(&pg, listeners).await, 2);
    let terminated = async {
        let n = psql(
            &pg,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'recommendations-log'",
        )
        .await;
        assert_eq!(n, 2);
    };
    let acked = rate_while(
        &s.base_url,
        &tokens,
        &books(3_000),
        Duration::from_millis(20),
        terminated,
    )
    .await;
    assert!(
        acked.len() > 200,
        "only {} ratings acknowledged",
        acked.len()
    );
    for (feed, name) in feeds.iter_mut().zip(replica_names(2)) {
        feed.assert_received(&acked, &name).await;
    }
    assert_every_index_equals_a_rebuild(&s, &pg, 2).await;
    wait_until("both listeners back", Duration::from_secs(10), || async {
        psql(&pg, listeners).await == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_during_writes_every_replica_converges() {
    let Some(pg) = PgServer::start() else { return };
    let s = suite(&pg, 3, &[]).await;
    let c = Client::new();
    let tokens = readers(&s, &c, 3).await;
    let mut feeds = Vec::new();
    for name in replica_names(3) {
        feeds.push(Subscriber::connect(&s, &name).await);
    }
    let restarted = async {
        tokio::task::block_in_place(|| pg.ctl("restart"));
    };
    let acked = rate_while(
        &s.base_url,
        &tokens,
        &books(5_000),
        Duration::from_millis(20),
        restarted,
    )
    .await;
    assert!(
        acked.len() > 60,
        "only {} ratings acknowledged",
        acked.len()
    );
    for (feed, name) in feeds.iter_mut().zip(replica_names(3)) {
        feed.assert_received(&acked, &name).await;
    }
    assert_every_index_equals_a_rebuild(&s, &pg, 3).await;
}
