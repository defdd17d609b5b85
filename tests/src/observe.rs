//! Reading a suite from outside, as an operator would: a metric's value, a condition awaited.

use std::time::{Duration, Instant};

/// The sum of one metric's samples, scraped from `admin_url`'s `/metrics`, whose labels contain
/// every `a="b"` given.
pub async fn metric(admin_url: &str, name: &str, labels: &[&str]) -> f64 {
    let text = reqwest::get(format!("{admin_url}/metrics"))
        .await
        .expect("metrics answered")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `check` every 25 ms until it holds; fails the test after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
