//! `loadgen seed` run twice with one seed: the same users and ratings, created once.

use std::time::Duration;

use serde_json::Value;
use tests::{Suite, bin_dir, unique};

use crate::run::Run;

/// Runs `loadgen seed` against `s`.
pub(crate) async fn seed(s: &Suite, args: &[&str]) -> Run {
    let mut all = vec!["seed"];
    all.extend_from_slice(args);
    let bin = bin_dir().join("loadgen");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(bin)
            .args(&all)
            .args(["--target", &s.base_url, "--json", "--progress-every", "0"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("loadgen seed finished within 60 s")
    .expect("loadgen seed ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "loadgen seed printed no JSON ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    println!("loadgen seed {}: {summary}", args.join(" "));
    Run {
        summary,
        code: out.status.code(),
    }
}

#[tokio::test]
async fn seeding_twice_with_one_seed_creates_the_same_users_and_ratings_once() {
    let s = Suite::start().await;
    // A seed of its own, so runs against a shared suite (a cluster) do not meet.
    let seed_number = u64::from_str_radix(&unique(), 16).unwrap().to_string();
    let args = [
        "--users",
        "6",
        "--ratings",
        "40",
        "--seed",
        &seed_number,
        "--concurrency",
        "4",
    ];
    let first = seed(&s, &args).await;
    assert_eq!(first.code, Some(0), "{:#}", first.summary);
    assert_eq!(first.summary["users_created"], 6);
    assert_eq!(first.summary["users_existing"], 0);
    assert_eq!(first.summary["ratings"], 40);
    assert_eq!(first.summary["ratings_created"], 40);
    assert_eq!(first.summary["errors"], 0);
    // A heavy tail: someone rates far more than the median user.
    assert!(
        first.summary["most_active_user_ratings"].as_u64().unwrap()
            > first.summary["median_user_ratings"].as_u64().unwrap()
    );

    let second = seed(&s, &args).await;
    assert_eq!(second.code, Some(0), "{:#}", second.summary);
    assert_eq!(second.summary["users_created"], 0);
    assert_eq!(second.summary["users_existing"], 6);
    assert_eq!(second.summary["ratings_created"], 0);
    assert_eq!(second.summary["ratings_replaced"], 40);
    assert_eq!(
        first.summary["first_user_email"],
        second.summary["first_user_email"]
    );

    // One seeded user, seen through the API: exactly the ratings the seed gives them.
    let email = first.summary["first_user_email"].as_str().unwrap();
    assert_eq!(email, format!("seed-{seed_number}-0@example.org"));
    let c = reqwest::Client::new();
    let token = s
        .sign_in(&c, email, &format!("seed-{seed_number}-0-correct-horse"))
        .await;
    let mut ratings = Vec::new();
    let mut page_token: Option<String> = None;
    for _ in 0..20 {
        let mut url = format!("{}/api/v1/me/ratings?page_size=100", s.base_url);
        if let Some(t) = &page_token {
            url.push_str(&format!("&page_token={t}"));
        }
        let page: Value = c
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ratings.extend(page["ratings"].as_array().unwrap().iter().cloned());
        page_token = page["next_page_token"].as_str().map(str::to_owned);
        if page_token.is_none() {
            break;
        }
    }
    println!("{email}: {} ratings", ratings.len());
    assert_eq!(
        ratings.len() as u64,
        first.summary["first_user_ratings"].as_u64().unwrap()
    );
    assert!(
        ratings
            .iter()
            .all(|r| (1..=5).contains(&r["stars"].as_i64().unwrap()))
    );
    s.stop().await;
}
