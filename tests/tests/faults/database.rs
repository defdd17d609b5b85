//! The database cut off behind a proxy and restored: services report not serving, then serving.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::json;
use tests::{Suite, SuiteOptions, unique, wait_until};

use crate::skip_external;

/// A TCP proxy to the database that the test can cut and restore (the database stays up).
struct Cut {
    pub(crate) up: Arc<AtomicBool>,
    pub(crate) conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    pub(crate) addr: std::net::SocketAddr,
}

impl Cut {
    async fn to(target: String) -> Cut {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (u, cs) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: the database is unreachable
                }
                let target = target.clone();
                cs.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Cut { up, conns, addr }
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for c in self.conns.lock().unwrap().drain(..) {
                c.abort();
            }
        }
    }
}

pub(crate) async fn readyz(s: &Suite, name: &str) -> bool {
    reqwest::get(format!("{}/readyz", s.admin(name).unwrap()))
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::test]
async fn a_database_outage_turns_services_not_serving_then_serving_again() {
    if skip_external() {
        return;
    }
    let Some(users_db) = platform::database::testing::postgres_url("outage_users").await else {
        return;
    };
    let Some(ratings_db) = platform::database::testing::postgres_url("outage_ratings").await else {
        return;
    };
    let url: reqwest::Url = users_db.parse().unwrap();
    let cut = Cut::to(format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port().unwrap_or(5432)
    ))
    .await;
    // Each service's own database, both reached through the cut.
    let via = |db: &str| {
        let mut u: reqwest::Url = db.parse().unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(cut.addr.port())).unwrap();
        u.to_string()
    };
    let s = Suite::start_options(SuiteOptions {
        env_for: vec![
            ("users".into(), "DATABASE_URL".into(), via(&users_db)),
            (
                "recommendations".into(),
                "DATABASE_URL".into(),
                via(&ratings_db),
            ),
        ],
        ..SuiteOptions::default()
    })
    .await;
    let cut_at = Instant::now();
    cut.set(false);
    wait_until(
        "NOT_SERVING without the database",
        Duration::from_secs(30),
        || async { !readyz(&s, "users").await && !readyz(&s, "recommendations").await },
    )
    .await;
    let down = cut_at.elapsed();
    let r = Client::new()
        .post(format!("{}/api/v1/users", s.base_url))
        .json(&json!({"email": format!("o{}@example.com", unique()), "password": "correct horse battery", "display_name": "o"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "an outage is 503, not 500"
    );
    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    let back_at = Instant::now();
    cut.set(true);
    wait_until(
        "SERVING once the database is back",
        Duration::from_secs(30),
        || async { readyz(&s, "users").await && readyz(&s, "recommendations").await },
    )
    .await;
    println!(
        "NOT_SERVING {down:?} after the cut; SERVING {:?} after the return",
        back_at.elapsed()
    );
}
