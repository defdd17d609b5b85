//! `make bench`: CPU cost per request, measured side by side in one run on loopback.
//!
//! - a bare axum handler answering a book as JSON (the floor for any HTTP service);
//! - a direct tonic GetBook against the real marketplace (the floor for the upstream call);
//! - the real gateway's `GET /api/v1/books/{id}` over that marketplace;
//! - the RED metrics + tracing layer on a trivial gRPC-shaped service, with and without it.
//!
//! Everything runs in this one process, so CPU time (scheduler counters of all its threads)
//! includes the load generator's share; the gateway's own cost is estimated as
//! (gateway - direct gRPC), compared with the bare axum handler, whose client is the same.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Json, Router, routing::get};
use clap::Parser;
use platform::metrics::{GrpcMetricsLayer, Metrics, RpcMetrics, Side};
use protos::marketplace::v1::{
    GetBookRequest, marketplace_service_client::MarketplaceServiceClient,
};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};

/// CPU time of every thread of this process, in seconds, from the scheduler's nanosecond
/// counters (`/proc/self/task/*/schedstat`); `/proc/self/stat`'s 10 ms ticks are too coarse.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ns: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

struct Measured {
    name: &'static str,
    requests: usize,
    wall: Duration,
    cpu: f64,
}

impl Measured {
    fn cpu_us(&self) -> f64 {
        self.cpu * 1e6 / self.requests as f64
    }
    fn rps(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }
}

/// Runs `make_request` `n` times from `workers` concurrent tasks.
async fn measure<F, Fut>(name: &'static str, n: usize, workers: usize, make_request: F) -> Measured
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(make_request);
    for _ in 0..200 {
        f().await; // warm-up: connections, caches
    }
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let per = n / workers;
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    f().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    Measured {
        name,
        requests: per * workers,
        wall: t0.elapsed(),
        cpu: cpu_seconds() - cpu0,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8000);
    let workers = 8;

    // The real marketplace, in process.
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let config =
        marketplace::Config::try_parse_from(["marketplace", "--concurrency-limit", "4096"])
            .unwrap();
    tokio::spawn(marketplace::run(
        grpc,
        admin,
        config,
        std::future::pending(),
    ));
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    platform::health::wait_for_status(
        channel.clone(),
        marketplace::SERVICE_NAME,
        tonic_health::ServingStatus::Serving,
        Duration::from_secs(60),
    )
    .await
    .unwrap();

    // The real gateway over it.
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_addr = http.local_addr().unwrap();
    let url = format!("http://{grpc_addr}");
    let gw_config = gateway::Config::try_parse_from([
        "gateway",
        "--marketplace-url",
        &url,
        "--concurrency-limit",
        "4096",
    ])
    .unwrap();
    tokio::spawn(gateway::run(
        http,
        gw_admin,
        gw_config,
        std::future::pending(),
    ));

    // A bare axum handler answering the same book, serialised the same way.
    let book: gateway::api::Book = MarketplaceServiceClient::new(channel.clone())
        .get_book(GetBookRequest { id: 1 })
        .await
        .unwrap()
        .into_inner()
        .book
        .unwrap()
        .into();
    let book = Arc::new(book);
    let bare = Router::new().route(
        "/book",
        get(move || {
            let b = book.clone();
            async move { Json((*b).clone()) }
        }),
    );
    let bare_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_addr = bare_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(bare_listener, bare).await });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(workers)
        .build()
        .unwrap();
    let c = client.clone();
    let bare_url = format!("http://{bare_addr}/book");
    let axum_m = measure("bare axum handler (JSON book)", n, workers, move || {
        let (c, u) = (c.clone(), bare_url.clone());
        async move {
            let r = c.get(u).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
        }
    })
    .await;
    let ch = channel.clone();
    let grpc_m = measure("direct tonic GetBook", n, workers, move || {
        let mut cl = MarketplaceServiceClient::new(ch.clone());
        async move {
            cl.get_book(GetBookRequest { id: 1 }).await.unwrap();
        }
    })
    .await;
    let c = client.clone();
    let gw_url = format!("http://{gw_addr}/api/v1/books/1");
    let gw_m = measure("gateway GET /api/v1/books/1", n, workers, move || {
        let (c, u) = (c.clone(), gw_url.clone());
        async move {
            let r = c.get(u).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
        }
    })
    .await;

    println!(
        "\n{:<34} {:>10} {:>14}",
        "scenario (loopback, in process)", "req/s", "CPU µs/req"
    );
    for m in [&axum_m, &grpc_m, &gw_m] {
        println!("{:<34} {:>10.0} {:>14.1}", m.name, m.rps(), m.cpu_us());
    }
    let own = gw_m.cpu_us() - grpc_m.cpu_us();
    println!("\ngateway own cost per proxied GET ≈ gateway - direct gRPC = {own:.1} µs");
    println!(
        "ratio gateway own cost / bare axum handler = {:.2} (target ≤ 2.5)",
        own / axum_m.cpu_us()
    );
    println!(
        "ratio gateway throughput / direct gRPC throughput = {:.2}",
        gw_m.rps() / grpc_m.rps()
    );

    // The metrics + tracing layer alone, on a service that answers at once.
    let calls = 200_000;
    let inner = tower::service_fn(|_req: http::Request<()>| async {
        Ok::<_, Infallible>(
            http::Response::builder()
                .header("grpc-status", "0")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
    });
    let time = |label: &'static str, f: &mut dyn FnMut()| {
        let t0 = Instant::now();
        f();
        let ns = t0.elapsed().as_nanos() as f64 / calls as f64;
        println!("{label:<34} {ns:>10.0} ns/call");
        ns
    };
    let rt = tokio::runtime::Handle::current();
    let without = tokio::task::block_in_place(|| {
        time("service without metrics layer", &mut || {
            rt.block_on(async {
                let mut s = inner;
                for _ in 0..calls {
                    let req = http::Request::builder()
                        .uri("/bookstore.marketplace.v1.MarketplaceService/GetBook")
                        .body(())
                        .unwrap();
                    s.ready().await.unwrap().call(req).await.unwrap();
                }
            })
        })
    });
    let metrics = Metrics::new();
    let layer = GrpcMetricsLayer::new(RpcMetrics::new(&metrics, Side::Server));
    let with = tokio::task::block_in_place(|| {
        time("service with metrics layer", &mut || {
            rt.block_on(async {
                let mut s = layer.layer(inner);
                for _ in 0..calls {
                    let req = http::Request::builder()
                        .uri("/bookstore.marketplace.v1.MarketplaceService/GetBook")
                        .body(())
                        .unwrap();
                    s.ready().await.unwrap().call(req).await.unwrap();
                }
            })
        })
    });
    println!(
        "metrics layer cost ≈ {:.0} ns per call ({:.2}% of the gateway's CPU per proxied GET)",
        with - without,
        (with - without) / 10.0 / gw_m.cpu_us()
    );
}
