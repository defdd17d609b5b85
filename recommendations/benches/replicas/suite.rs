//! The suite under test: marketplace, users, three recommendations replicas on one database,
//! and a gateway balancing over the three, started from the release binaries and waited for.

use std::{
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    common::Error,
    free_addr,
    procs::{Proc, get_text, metric, token_env},
    streams::{REPLICAS, Replica},
};

/// The running processes; each is killed when dropped.
pub(crate) struct Suite {
    pub(crate) marketplace: Proc,
    pub(crate) replicas: Vec<Replica>,
    pub(crate) users: Proc,
    pub(crate) gateway: Proc,
    pub(crate) gateway_http: SocketAddr,
}

/// Starts the suite (logs in `logs`) and returns once every process is ready and the gateway's
/// balancer holds all three replicas.
pub(crate) async fn start(
    bin_dir: &Path,
    logs: &Path,
    recs_db: &str,
    users_db: String,
    http: &reqwest::Client,
) -> Result<Suite, Error> {
    let (signing, verifying) = token_env(bin_dir)?;
    let market_grpc = free_addr();
    let mut marketplace = Proc::spawn(
        bin_dir,
        "marketplace",
        "marketplace",
        &[("GRPC_ADDR", market_grpc.to_string())],
        free_addr(),
        logs,
    )?;
    let mut replicas = Vec::with_capacity(REPLICAS);
    for i in 0..REPLICAS {
        let grpc = free_addr();
        let proc = Proc::spawn(
            bin_dir,
            "recommendations",
            &format!("recommendations-{}", i + 1),
            &[
                vec![
                    ("GRPC_ADDR", grpc.to_string()),
                    ("DATABASE_URL", recs_db.to_owned()),
                ],
                verifying.clone(),
            ]
            .concat(),
            free_addr(),
            logs,
        )?;
        replicas.push(Replica {
            proc,
            grpc,
            feed: Arc::default(),
        });
    }
    let users_grpc = free_addr();
    let mut users = Proc::spawn(
        bin_dir,
        "users",
        "users",
        &[
            vec![
                ("GRPC_ADDR", users_grpc.to_string()),
                ("DATABASE_URL", users_db),
                (
                    "RECOMMENDATIONS_URL",
                    format!("http://{}", replicas[0].grpc),
                ),
            ],
            verifying,
            signing,
        ]
        .concat(),
        free_addr(),
        logs,
    )?;
    let gateway_http = free_addr();
    let recommendations_url = replicas
        .iter()
        .map(|r| format!("http://{}", r.grpc))
        .collect::<Vec<_>>()
        .join(",");
    let mut gateway = Proc::spawn(
        bin_dir,
        "gateway",
        "gateway",
        &[
            ("HTTP_ADDR", gateway_http.to_string()),
            ("MARKETPLACE_URL", format!("http://{market_grpc}")),
            ("RECOMMENDATIONS_URL", recommendations_url),
            ("USERS_URL", format!("http://{users_grpc}")),
            // Every reader signs up and in from this one address.
            ("AUTH_RATE_PER_MINUTE", "1000000".into()),
            ("AUTH_RATE_BURST", "1000000".into()),
        ],
        free_addr(),
        logs,
    )?;
    let within = Duration::from_secs(120);
    marketplace.ready(http, within).await?;
    for r in &mut replicas {
        r.proc.ready(http, within).await?;
    }
    users.ready(http, within).await?;
    gateway.ready(http, within).await?;
    // Until the gateway's balancer holds all three, a phase would not be balanced over them.
    let started = Instant::now();
    loop {
        let text = get_text(http, &format!("http://{}/metrics", gateway.admin)).await?;
        let ready = metric(
            &text,
            "gateway_upstream_ready_replicas",
            &["upstream=\"recommendations\""],
        );
        if ready as usize == REPLICAS {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("the gateway sees {ready} ready recommendations replicas").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "suite up: gateway http://{gateway_http}, replicas {}",
        replicas
            .iter()
            .map(|r| r.grpc.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Suite {
        marketplace,
        replicas,
        users,
        gateway,
        gateway_http,
    })
}
