//! `loadgen seed`: users and ratings through the public API, from `workload`
//! (heavy-tailed activity per user, books by the catalog's popularity, stars from each book's
//! histogram). The same seed gives the same emails, books and stars, so running it again
//! changes nothing: sign-up answers 409 and the user signs in, each rating is set again (200).

use std::{
    collections::BTreeMap,
    fmt,
    io::{IsTerminal, Write},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use catalog::Digest;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use serde_json::{Value, json};
use workload::{Spec, Synthetic};

use crate::{
    Error,
    cli::SeedArgs,
    request::{detail_of, random_seed, rng_for, traceparent},
    stats::Outcome,
    steps::Step,
    summary::StepSummary,
};

/// The seeder's client: reqwest (the shoppers, who send far more requests, use the leaner
/// [`crate::http::Http`]).
fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(crate::USER_AGENT)
        .connect_timeout(crate::connect_timeout(timeout))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
}

/// The email of seeded user `i`.
pub fn email(seed: u64, i: u32) -> String {
    format!("seed-{seed}-{i}@example.org")
}

/// The password of seeded user `i` (deterministic, so a second run can sign in).
pub fn password(seed: u64, i: u32) -> String {
    format!("seed-{seed}-{i}-correct-horse")
}

/// What a seeding run did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeedSummary {
    /// Every user signed in and every rating stored.
    pub passed: bool,
    pub target: String,
    pub seed: u64,
    pub users: u32,
    pub users_created: u64,
    pub users_existing: u64,
    /// Ratings the seed asks for (heavy-tailed over the users).
    pub ratings: u64,
    /// First ratings of a book by a user (201).
    pub ratings_created: u64,
    /// Ratings set again (200): a re-run.
    pub ratings_replaced: u64,
    /// The first user (`seed-{SEED}-0@example.org`) and how many ratings the seed gives them:
    /// what `GET /api/v1/me/ratings` shows them after a run.
    pub first_user_email: String,
    pub first_user_ratings: u32,
    /// Ratings of the heaviest user, and of the median one.
    pub most_active_user_ratings: u32,
    pub median_user_ratings: u32,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub requests: u64,
    pub elapsed_s: f64,
    pub rps: f64,
    pub steps: BTreeMap<String, StepSummary>,
}

impl fmt::Display for SeedSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "loadgen seed {}: {} users against {} in {:.1} s ({} requests, {:.1}/s)",
            self.seed, self.users, self.target, self.elapsed_s, self.requests, self.rps
        )?;
        writeln!(
            f,
            "  users: {} created, {} existing; ratings: {} asked (most active user {}, median {}), {} created, {} set again",
            self.users_created,
            self.users_existing,
            self.ratings,
            self.most_active_user_ratings,
            self.median_user_ratings,
            self.ratings_created,
            self.ratings_replaced
        )?;
        for (name, s) in &self.steps {
            let statuses = s
                .statuses
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect::<Vec<_>>()
                .join(" ");
            writeln!(
                f,
                "  {:<7} {:>6} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, statuses {}",
                name, s.requests, s.latency_ms.p50, s.latency_ms.p99, s.latency_ms.max, statuses
            )?;
        }
        for e in &self.error_samples {
            writeln!(f, "  error: {e}")?;
        }
        write!(
            f,
            "  {}: {} errors",
            if self.passed { "PASS" } else { "FAIL" },
            self.errors
        )
    }
}

struct Seeder {
    client: reqwest::Client,
    base: String,
    timeout: Duration,
    stats: Mutex<crate::stats::Stats>,
    samples: Mutex<Vec<String>>,
    errors: AtomicU64,
    trace_seed: u64,
    counter: AtomicU64,
    /// The 429 hint was printed.
    hinted: std::sync::atomic::AtomicBool,
}

/// The answer to one request: status and body, or why there was none.
type Answer = Result<(u16, Value), String>;

impl Seeder {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < 10 {
            s.push(what);
        }
    }

    /// Sends one request (429 retried after its `Retry-After`; 503 and lost connections up to
    /// 4 times with backoff) and records every try under `step`.
    async fn send(
        &self,
        step: Step,
        make: impl Fn() -> reqwest::RequestBuilder,
        ok: &[u16],
    ) -> Answer {
        let (mut attempt, mut paced) = (0u32, 0u32);
        loop {
            let mut rng = rng_for(
                self.trace_seed,
                self.counter.fetch_add(1, Ordering::Relaxed),
            );
            let (tp, trace_id) = traceparent(&mut rng, true);
            let started = Instant::now();
            let sent = make()
                .header("traceparent", tp)
                .timeout(self.timeout)
                .send()
                .await;
            let (outcome, answer, retry_after) = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    match resp.bytes().await {
                        Ok(b) => {
                            let outcome = if status < 400 {
                                Outcome::Ok(status)
                            } else {
                                Outcome::Status {
                                    status,
                                    expected: ok.contains(&status),
                                }
                            };
                            let value = serde_json::from_slice(&b)
                                .unwrap_or_else(|_| Value::String(detail_of(&b)));
                            (outcome, Ok((status, value)), retry_after)
                        }
                        Err(e) => (
                            Outcome::Transport { expected: false },
                            Err(e.to_string()),
                            None,
                        ),
                    }
                }
                Err(e) => (
                    if e.is_timeout() {
                        Outcome::Timeout { expected: false }
                    } else {
                        Outcome::Transport { expected: false }
                    },
                    Err(e.to_string()),
                    None,
                ),
            };
            self.stats.lock().unwrap_or_else(|e| e.into_inner()).record(
                step,
                outcome,
                started.elapsed(),
            );
            // 429 is the gateway's per-client sign-in budget: wait as told, as long as it takes
            // (bounded); 503 and lost connections: four tries with backoff.
            if matches!(answer, Ok((429, _))) && paced < 1_000 {
                paced += 1;
                if !self.hinted.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "loadgen seed: the gateway answers 429: it allows each client a few \
                         sign-ins and sign-ups a minute (AUTH_RATE_PER_MINUTE, 10 by default), so \
                         seeding goes at that pace; start the gateway with \
                         AUTH_RATE_PER_MINUTE=6000 AUTH_RATE_BURST=1000 to seed at full speed"
                    );
                }
                let wait = Duration::from_secs(retry_after.unwrap_or(6).clamp(1, 60));
                tokio::time::sleep(wait).await;
                continue;
            }
            let retry = matches!(answer, Ok((503, _)) | Err(_));
            if retry && attempt < 4 {
                attempt += 1;
                let wait = retry_after
                    .map(|s| Duration::from_secs(s.min(5)))
                    .unwrap_or(Duration::from_millis(250 << attempt));
                tokio::time::sleep(wait).await;
                continue;
            }
            return match answer {
                Ok((status, v)) if status < 400 || ok.contains(&status) => Ok((status, v)),
                Ok((status, v)) => {
                    let detail = v
                        .get("detail")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string());
                    Err(format!("{step}: {status} {detail} (trace {trace_id})"))
                }
                Err(e) => Err(format!("{step}: {e} (trace {trace_id})")),
            };
        }
    }
}

/// Seeds the suite at `args.target`; the summary says what was created and what existed.
pub async fn seed(args: SeedArgs) -> Result<SeedSummary, Error> {
    let catalog = Digest::builtin().map_err(|e| Error::Catalog(e.to_string()))?;
    let users = args.users.max(1);
    let synthetic = Arc::new(Synthetic::new(
        &catalog,
        Spec {
            ratings: args.ratings.unwrap_or(u64::from(users) * 15),
            users,
            seed: args.seed,
            max_per_user: args.max_per_user,
            alpha: args.alpha,
        },
    ));
    let n = synthetic.users();
    let mut activity: Vec<u32> = (0..n).map(|u| synthetic.activity(u)).collect();
    activity.sort_unstable();
    let base = args.target.target.trim_end_matches('/').to_owned();
    let seeder = Arc::new(Seeder {
        client: http_client(args.target.timeout)?,
        base: base.clone(),
        timeout: args.target.timeout,
        stats: Mutex::new(crate::stats::Stats::default()),
        samples: Mutex::new(Vec::new()),
        errors: AtomicU64::new(0),
        trace_seed: random_seed(),
        counter: AtomicU64::new(0),
        hinted: std::sync::atomic::AtomicBool::new(false),
    });
    let created = Arc::new(AtomicU64::new(0));
    let existing = Arc::new(AtomicU64::new(0));
    let signed_in = Arc::new(AtomicU64::new(0));
    let rated = Arc::new(AtomicU64::new(0));
    let replaced = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let concurrency = args.concurrency.max(1);
    let total_ratings = synthetic.ratings();

    let progress = {
        let every = args.target.progress_every;
        let (seeder, signed_in, rated, replaced) = (
            seeder.clone(),
            signed_in.clone(),
            rated.clone(),
            replaced.clone(),
        );
        tokio::spawn(async move {
            if every.is_zero() {
                return;
            }
            let tty = std::io::stderr().is_terminal();
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let line = format!(
                    "[{:>6.1}s] users signed in {}/{n}  ratings {}/{total_ratings}  errors {}",
                    started.elapsed().as_secs_f64(),
                    signed_in.load(Ordering::Relaxed),
                    rated.load(Ordering::Relaxed) + replaced.load(Ordering::Relaxed),
                    seeder.errors.load(Ordering::Relaxed)
                );
                let mut err = std::io::stderr().lock();
                let _ = if tty {
                    write!(err, "\r\x1b[2K{line}")
                } else {
                    writeln!(err, "loadgen seed: {line}")
                };
                let _ = err.flush();
            }
        })
    };

    let work = async {
        // Users first: sign up (409: there already) and sign in.
        let seed = args.seed;
        let tokens: Vec<(u32, Option<String>)> = stream::iter(0..n)
            .map(|i| {
                let (s, created, existing, signed_in) = (
                    seeder.clone(),
                    created.clone(),
                    existing.clone(),
                    signed_in.clone(),
                );
                async move {
                    let body = json!({
                        "email": email(seed, i),
                        "display_name": format!("Seed reader {i}"),
                        "password": password(seed, i),
                    });
                    let up = s
                        .send(
                            Step::Signup,
                            || {
                                s.client
                                    .post(format!("{}/api/v1/users", s.base))
                                    .json(&body)
                            },
                            &[409],
                        )
                        .await;
                    match up {
                        Ok((201, _)) => created.fetch_add(1, Ordering::Relaxed),
                        Ok(_) => existing.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            s.error(e);
                            return (i, None);
                        }
                    };
                    let body = json!({ "email": email(seed, i), "password": password(seed, i) });
                    let session = s
                        .send(
                            Step::Signin,
                            || {
                                s.client
                                    .post(format!("{}/api/v1/sessions", s.base))
                                    .json(&body)
                            },
                            &[],
                        )
                        .await;
                    match session {
                        Ok((_, v)) => match v.get("access_token").and_then(Value::as_str) {
                            Some(t) => {
                                signed_in.fetch_add(1, Ordering::Relaxed);
                                (i, Some(t.to_owned()))
                            }
                            None => {
                                s.error(format!("signin: no access_token in {v}"));
                                (i, None)
                            }
                        },
                        Err(e) => {
                            s.error(e);
                            (i, None)
                        }
                    }
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        // Then every user's ratings, oldest first per user.
        let jobs = tokens
            .into_iter()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .flat_map(|(i, token)| {
                let token: Arc<str> = token.into();
                synthetic
                    .ratings_of(i)
                    .into_iter()
                    .map(move |r| (token.clone(), r))
            });
        stream::iter(jobs)
            .map(|(token, r)| {
                let (s, rated, replaced) = (seeder.clone(), rated.clone(), replaced.clone());
                async move {
                    let body = json!({ "stars": r.stars });
                    let url = format!("{}/api/v1/me/ratings/{}", s.base, r.book_id);
                    match s
                        .send(
                            Step::Rate,
                            || s.client.put(&url).bearer_auth(&*token).json(&body),
                            &[],
                        )
                        .await
                    {
                        Ok((201, _)) => {
                            rated.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {
                            replaced.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => s.error(e),
                    }
                }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<()>>()
            .await;
    };
    let interrupted = tokio::select! {
        _ = work => false,
        _ = platform::shutdown::shutdown_signal() => true,
    };
    progress.abort();
    if args.target.progress_every > Duration::ZERO && std::io::stderr().is_terminal() {
        eprintln!();
    }
    if interrupted {
        seeder.error("interrupted by a signal before the end".into());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = seeder
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let requests = stats.requests();
    let errors = seeder.errors.load(Ordering::Relaxed);
    let detail = stats.summary(crate::summary::RunMeta {
        target: base.clone(),
        mode: "seed".into(),
        rate: None,
        users: None,
        elapsed_s: elapsed,
        warmup_s: 0.0,
        stopped_by: String::new(),
        max_error_rate: 0.0,
        expected_statuses: BTreeMap::new(),
        expect_transport_errors: false,
        auth_deferred: 0,
        schedule_lag: None,
    });
    Ok(SeedSummary {
        passed: errors == 0,
        target: base,
        seed: args.seed,
        users: n,
        users_created: created.load(Ordering::Relaxed),
        users_existing: existing.load(Ordering::Relaxed),
        ratings: total_ratings,
        ratings_created: rated.load(Ordering::Relaxed),
        ratings_replaced: replaced.load(Ordering::Relaxed),
        first_user_email: email(args.seed, 0),
        first_user_ratings: synthetic.activity(0),
        most_active_user_ratings: activity.last().copied().unwrap_or(0),
        median_user_ratings: activity.get(activity.len() / 2).copied().unwrap_or(0),
        errors,
        error_samples: seeder
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        requests,
        elapsed_s: elapsed,
        rps: requests as f64 / elapsed.max(1e-9),
        steps: detail.steps,
    })
}
