//! The drills of docs/reliability.md ("Drills: fault injection"), run with the real `loadgen` binary
//! against the real suite: no fault, a slow marketplace, recommendations failing, users not
//! ready; and `loadgen seed` run twice with one seed. Each run is bounded (a few hundred
//! requests); `cargo test -p tests --test drills -- --nocapture` prints loadgen's summaries.

use std::{process::Stdio, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{Suite, bin_dir, metric, unique, wait_until};

/// What one loadgen run printed (its `--json` summary) and how it exited.
struct Run {
    summary: Value,
    code: Option<i32>,
}

impl Run {
    fn step(&self, name: &str) -> &Value {
        &self.summary["steps"][name]
    }

    /// The statuses a step was answered with.
    fn statuses(&self, name: &str) -> Vec<u16> {
        self.step(name)["statuses"]
            .as_object()
            .map(|m| m.keys().filter_map(|k| k.parse().ok()).collect())
            .unwrap_or_default()
    }

    fn count(&self, step: &str, field: &str) -> u64 {
        self.step(step)[field].as_u64().unwrap_or(0)
    }
}

/// Runs loadgen against `s` with `args` (plus `--target`, `--json`, no progress line), 60 s at
/// most, and parses its summary.
async fn loadgen(s: &Suite, args: &[&str]) -> Run {
    let bin = bin_dir().join("loadgen");
    assert!(
        bin.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; `make test` does)",
        bin.display()
    );
    let child = tokio::process::Command::new(bin)
        .args(["--target", &s.base_url, "--json", "--progress-every", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start loadgen");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("loadgen finished within 60 s")
        .expect("loadgen output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "loadgen {args:?} printed no JSON summary ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    println!(
        "loadgen {}: {} requests, {} ok, errors {}, p99 {} ms, exit {:?}",
        args.join(" "),
        summary["requests"],
        summary["ok"],
        summary["errors"],
        summary["latency_ms"]["p99"],
        out.status.code()
    );
    Run {
        summary,
        code: out.status.code(),
    }
}

/// Runs `loadgen seed` against `s`.
async fn seed(s: &Suite, args: &[&str]) -> Run {
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

async fn put_faults(s: &Suite, service: &str, faults: Value) {
    let r = reqwest::Client::new()
        .put(format!("{}/faults", s.admin(service).unwrap()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

async fn clear_faults(s: &Suite, service: &str) {
    let r = reqwest::Client::new()
        .delete(format!("{}/faults", s.admin(service).unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

/// Faults are injected through the admin ports of a suite the test started.
fn skip_external() -> bool {
    if Suite::is_external() {
        platform::database::testing::note_skip(
            "drills: inject faults, so they run only against a suite they started",
        );
        return true;
    }
    false
}

const RECOMMENDATIONS: &str =
    "grpc_service=\"bookstore.recommendations.v1.RecommendationsService\"";

#[tokio::test]
async fn no_fault_a_bounded_run_sees_no_unexpected_error() {
    let s = Suite::start().await;
    let run = loadgen(
        &s,
        &[
            "--rate",
            "50",
            "--requests",
            "200",
            "--accounts",
            "4",
            "--account-prefix",
            &format!("drill-{}", unique()),
            "--feed-time",
            "1s",
            // The suite's gateway allows sign-ins in bulk; the default budget is for one
            // gateway's default AUTH_RATE_PER_MINUTE.
            "--auth-per-minute",
            "0",
            "--seed",
            "1",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{:#}", run.summary);
    assert_eq!(run.summary["passed"], true);
    assert_eq!(run.summary["requests"], 200);
    assert_eq!(run.summary["errors"]["unexpected"], 0, "{:#}", run.summary);
    assert_eq!(run.summary["mode"], "open");
    // The mix is the shoppers' one: pages, the API, accounts.
    for step in ["home", "book_page", "book_api", "browse", "signup"] {
        assert!(
            run.count(step, "requests") > 0,
            "no {step} in {:#}",
            run.summary
        );
    }
    for q in ["p50", "p90", "p99", "p999"] {
        assert!(run.summary["latency_ms"][q].as_f64().unwrap() > 0.0);
    }
    s.stop().await;
}

#[tokio::test]
async fn a_warmup_ramps_up_and_is_sent_but_left_out_of_the_summary() {
    let s = Suite::start().await;
    let gateway = s.admin("gateway").unwrap().to_owned();
    let api = "route=\"/api/v1/books/{id}\"";
    let count = "http_request_duration_seconds_count";
    let before = metric(&gateway, count, &[api]).await;
    let started = std::time::Instant::now();
    let run = loadgen(
        &s,
        &[
            "--rate",
            "200",
            "--warmup",
            "1s",
            "--requests",
            "100",
            "--duration",
            "0",
            "--weights",
            "home=0,browse=0,search=0,book_page=0,similar=0,popular=0,signup=0,signin=0,rate=0,for_you=0,feed=0,book_api=1",
            "--seed",
            "3",
        ],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(run.code, Some(0), "{:#}", run.summary);
    // The summary holds the measured steps only, and their own time.
    assert_eq!(run.summary["requests"], 100, "{:#}", run.summary);
    assert_eq!(run.summary["warmup_s"], 1.0);
    // loadgen's own lateness is reported beside the latency.
    let lag = &run.summary["schedule_lag"];
    let (max_ms, late) = (
        lag["max_ms"].as_f64().unwrap(),
        lag["late_over_1ms"].as_u64().unwrap(),
    );
    // The two figures agree: some step was more than 1 ms late exactly when the worst one was.
    assert!(max_ms.is_finite() && max_ms > 0.0, "{lag}");
    assert_eq!(late > 0, max_ms > 1.0, "{lag}");
    // The measured time is the measured steps' own: at least their schedule (the 100th starts
    // 99 intervals after the first, at 200/s), and the warm-up before it is not in it (the run
    // as seen from outside held both). A loaded machine only makes both longer.
    let elapsed = run.summary["elapsed_s"].as_f64().unwrap();
    let warmup = run.summary["warmup_s"].as_f64().unwrap();
    let schedule = 99.0 / 200.0;
    // (To the millisecond: the figures are rounded floats.)
    assert!(elapsed >= schedule - 1e-3, "measured for {elapsed} s");
    assert!(
        took.as_secs_f64() >= warmup + elapsed,
        "the summary's {elapsed} s include the {warmup} s warm-up: the run took {took:?}"
    );
    // The ramp (200/s reached linearly over 1 s: 100 steps) went to the gateway too.
    wait_until(
        "the gateway to count the 200 book requests",
        Duration::from_secs(30),
        || async { metric(&gateway, count, &[api]).await - before == 200.0 },
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn slow_marketplace_pages_still_answer_and_book_latency_shows_it() {
    if skip_external() {
        return;
    }
    let s = Suite::start().await;
    let gateway = s.admin("gateway").unwrap().to_owned();
    let market = s.admin("marketplace").unwrap().to_owned();
    let route = |r: &str| format!("route=\"{r}\"");
    let api = route("/api/v1/books/{id}");
    let page = route("/books/{id}");
    let before = (
        metric(&gateway, "http_request_duration_seconds_count", &[&api]).await,
        metric(&gateway, "http_request_duration_seconds_sum", &[&api]).await,
        metric(
            &gateway,
            "http_request_duration_seconds_bucket",
            &[&api, "le=\"0.25\""],
        )
        .await,
        metric(&gateway, "http_request_duration_seconds_count", &[&page]).await,
    );

    put_faults(
        &s,
        "marketplace",
        json!({"rules":[{"method":"GetBook","latency_ms":300}]}),
    )
    .await;
    let run = loadgen(
        &s,
        &[
            "--rate",
            "30",
            "--requests",
            "120",
            "--weights",
            "book_page=20,book_api=20,feed=0,signup=0,signin=0,rate=0,for_you=0",
            "--seed",
            "2",
        ],
    )
    .await;
    clear_faults(&s, "marketplace").await;

    // Every page and API call still answered 200, only slower.
    assert_eq!(run.code, Some(0), "{:#}", run.summary);
    assert_eq!(run.summary["errors"]["total"], 0, "{:#}", run.summary);
    for step in ["book_page", "book_api"] {
        assert_eq!(run.statuses(step), vec![200], "{step}");
        let p99 = run.step(step)["latency_ms"]["p99"].as_f64().unwrap();
        let p50 = run.step(step)["latency_ms"]["p50"].as_f64().unwrap();
        println!("{step}: p50 {p50} ms, p99 {p99} ms with 300 ms on GetBook");
        assert!(p50 >= 300.0 && p99 >= 300.0, "{step}: p50 {p50}, p99 {p99}");
    }
    // Steps that do not call GetBook stay fast.
    let browse = run.step("browse")["latency_ms"]["p50"].as_f64().unwrap();
    assert!(browse < 300.0, "browse p50 {browse} ms");

    // The marketplace counted what it injected; the gateway's latency histogram moved, all of
    // it above 250 ms for the book routes.
    let book_api = run.count("book_api", "requests") as f64;
    let injected = metric(
        &market,
        "faults_injected_total",
        &["fault=\"latency\"", "grpc_method=\"GetBook\""],
    )
    .await;
    assert!(
        injected >= book_api,
        "faults_injected_total {injected} < {book_api}"
    );
    let after = (
        metric(&gateway, "http_request_duration_seconds_count", &[&api]).await,
        metric(&gateway, "http_request_duration_seconds_sum", &[&api]).await,
        metric(
            &gateway,
            "http_request_duration_seconds_bucket",
            &[&api, "le=\"0.25\""],
        )
        .await,
        metric(&gateway, "http_request_duration_seconds_count", &[&page]).await,
    );
    let (count, sum) = (after.0 - before.0, after.1 - before.1);
    println!(
        "gateway http_request_duration_seconds{{route=/api/v1/books/{{id}}}}: +{count} requests, +{sum:.2} s, le=0.25 +{}",
        after.2 - before.2
    );
    assert!(
        count >= book_api,
        "count moved by {count}, loadgen sent {book_api}"
    );
    assert!(
        sum >= 0.3 * count,
        "sum moved by {sum} s over {count} requests"
    );
    assert_eq!(
        after.2 - before.2,
        0.0,
        "no book API request was under 250 ms"
    );
    assert!(after.3 - before.3 >= run.count("book_page", "requests") as f64);
    s.stop().await;
}

#[tokio::test]
async fn recommendations_failing_degrade_pages_and_fail_only_their_routes() {
    if skip_external() {
        return;
    }
    let s = Suite::start().await;
    let gateway = s.admin("gateway").unwrap().to_owned();
    let recs = s.admin("recommendations").unwrap().to_owned();
    let calls = |code: &'static str| {
        let gateway = gateway.clone();
        async move {
            let code_label = format!("grpc_code=\"{code}\"");
            let mut labels = vec![RECOMMENDATIONS];
            if !code.is_empty() {
                labels.push(&code_label);
            }
            metric(&gateway, "grpc_client_handled_total", &labels).await
        }
    };
    let before = (calls("Unavailable").await, calls("").await);

    put_faults(
        &s,
        "recommendations",
        json!({"rules":[{"error_rate":1.0,"error_code":"UNAVAILABLE"}]}),
    )
    .await;
    let run = loadgen(
        &s,
        &[
            "--rate",
            "40",
            "--requests",
            "200",
            "--accounts",
            "3",
            "--feed-time",
            "1s",
            "--weights",
            "feed=3",
            "--expect-status",
            "recommendations:503",
            "--seed",
            "3",
        ],
    )
    .await;
    clear_faults(&s, "recommendations").await;

    // Expected errors, and only those: the run passes with --max-error-rate 0.
    assert_eq!(run.code, Some(0), "{:#}", run.summary);
    assert_eq!(run.summary["errors"]["unexpected"], 0, "{:#}", run.summary);
    assert!(run.summary["errors"]["expected"].as_u64().unwrap() > 0);
    // Pages leave the section out and answer 200; catalog routes are untouched.
    for step in ["home", "book_page", "book_api", "browse", "search"] {
        assert!(run.count(step, "requests") > 0, "no {step}");
        assert_eq!(
            run.statuses(step),
            vec![200],
            "{step}: {:#}",
            run.step(step)
        );
    }
    // The API's recommendation routes answer 503, every time.
    for step in ["similar", "popular"] {
        assert!(run.count(step, "requests") > 0, "no {step}");
        assert_eq!(
            run.statuses(step),
            vec![503],
            "{step}: {:#}",
            run.step(step)
        );
    }
    for step in ["rate", "for_you", "feed"] {
        let st = run.statuses(step);
        assert!(
            !st.is_empty() && st.iter().all(|&c| c == 503),
            "{step}: {st:?}"
        );
    }

    // loadgen's traceparent was continued by the gateway: an error's trace id is in its log.
    let samples = run.summary["error_samples"].as_array().unwrap();
    assert!(!samples.is_empty());
    assert!(samples.iter().all(|e| e["expected"] == true));
    let trace = samples[0]["trace_id"].as_str().unwrap();
    wait_until(
        "the gateway logged the trace id loadgen sent",
        Duration::from_secs(5),
        || async { s.log("gateway").contains(trace) },
    )
    .await;

    // What the dashboards and the alert see: faults counted by recommendations, and the
    // gateway's client calls failing Unavailable, the series under BookstoreUpstreamErrors
    // (service_grpc_service:grpc_client_errors:ratio_rate5m > 0.05).
    let injected = metric(&recs, "faults_injected_total", &["fault=\"error\""]).await;
    let after = (calls("Unavailable").await, calls("").await);
    let (unavailable, all) = (after.0 - before.0, after.1 - before.1);
    println!(
        "faults_injected_total{{fault=error}} {injected}; gateway grpc_client_handled_total to recommendations: +{all}, Unavailable +{unavailable} ({:.0}%)",
        100.0 * unavailable / all.max(1.0)
    );
    assert!(injected > 0.0);
    assert!(unavailable > 0.0);
    assert!(
        unavailable / all > 0.05,
        "the alert's ratio: {unavailable}/{all}"
    );
    s.stop().await;
}

#[tokio::test]
async fn users_not_ready_leave_the_balancer_sign_in_503_and_catalog_answers() {
    if skip_external() {
        return;
    }
    let s = Suite::start().await;
    let gateway = s.admin("gateway").unwrap().to_owned();
    let users = s.admin("users").unwrap().to_owned();
    let ready_users = || {
        let gateway = gateway.clone();
        async move {
            metric(
                &gateway,
                "gateway_upstream_ready_replicas",
                &["upstream=\"users\""],
            )
            .await
        }
    };
    assert_eq!(ready_users().await, 1.0);

    put_faults(&s, "users", json!({"not_ready": true})).await;
    let readyz = reqwest::get(format!("{users}/readyz")).await.unwrap();
    assert_eq!(readyz.status(), StatusCode::SERVICE_UNAVAILABLE);
    wait_until(
        "the gateway took users out of its balancer",
        Duration::from_secs(10),
        || async { ready_users().await == 0.0 },
    )
    .await;
    let signin = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", s.base_url))
        .json(&json!({"email": "nobody@example.org", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signin.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(signin.headers().contains_key("retry-after"));

    let run = loadgen(
        &s,
        &[
            "--rate",
            "40",
            "--requests",
            "160",
            "--accounts",
            "3",
            "--weights",
            "feed=0",
            "--expect-status",
            "signup+signin:503",
            "--seed",
            "4",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{:#}", run.summary);
    assert_eq!(run.summary["errors"]["unexpected"], 0, "{:#}", run.summary);
    for step in ["signup", "signin"] {
        let st = run.statuses(step);
        assert!(st.iter().all(|&c| c == 503), "{step}: {st:?}");
    }
    assert!(run.count("signup", "requests") + run.count("signin", "requests") > 0);
    for step in [
        "home",
        "book_page",
        "book_api",
        "browse",
        "search",
        "popular",
        "similar",
    ] {
        assert!(run.count(step, "requests") > 0, "no {step}");
        assert_eq!(run.statuses(step), vec![200], "{step}");
    }

    clear_faults(&s, "users").await;
    wait_until(
        "users back in the balancer",
        Duration::from_secs(10),
        || async { ready_users().await == 1.0 },
    )
    .await;
    s.stop().await;
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
    let session: Value = c
        .post(format!("{}/api/v1/sessions", s.base_url))
        .json(&json!({"email": email, "password": format!("seed-{seed_number}-0-correct-horse")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["access_token"]
        .as_str()
        .expect("signed in")
        .to_owned();
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
