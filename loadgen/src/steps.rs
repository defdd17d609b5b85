//! The shopper's steps: what each one requests, its weight, and which answers count as errors.

use std::{collections::BTreeMap, fmt, str::FromStr};

/// One thing a shopper does; each is one HTTP request to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// `GET /` (the home page: grid, popular or "for you" panel).
    Home,
    /// `GET /api/v1/books?page_size=..&page_token=..` (paging on, a few pages deep).
    Browse,
    /// `GET /api/v1/books/search?q=..` (words of a popular book's title or author).
    Search,
    /// `GET /books/{id}` (the book page, with "also liked").
    BookPage,
    /// `GET /api/v1/books/{id}`.
    BookApi,
    /// `GET /api/v1/books/{id}/similar`.
    Similar,
    /// `GET /api/v1/recommendations/popular`.
    Popular,
    /// `POST /api/v1/users` (an account of the pool that does not exist yet).
    Signup,
    /// `POST /api/v1/sessions` (an account of the pool; its token is kept until it expires).
    Signin,
    /// `PUT /api/v1/me/ratings/{book_id}` (stars from the book's real histogram).
    Rate,
    /// `GET /api/v1/me/recommendations`.
    ForYou,
    /// `GET /api/v1/ratings/stream`: the live feed, read for a few seconds, then closed.
    Feed,
}

impl Step {
    pub const ALL: [Step; 12] = [
        Step::Home,
        Step::Browse,
        Step::Search,
        Step::BookPage,
        Step::BookApi,
        Step::Similar,
        Step::Popular,
        Step::Signup,
        Step::Signin,
        Step::Rate,
        Step::ForYou,
        Step::Feed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Home => "home",
            Step::Browse => "browse",
            Step::Search => "search",
            Step::BookPage => "book_page",
            Step::BookApi => "book_api",
            Step::Similar => "similar",
            Step::Popular => "popular",
            Step::Signup => "signup",
            Step::Signin => "signin",
            Step::Rate => "rate",
            Step::ForYou => "for_you",
            Step::Feed => "feed",
        }
    }

    /// The gateway route the step calls (its `http_requests_total{route}`).
    pub fn route(self) -> &'static str {
        match self {
            Step::Home => "GET /",
            Step::Browse => "GET /api/v1/books",
            Step::Search => "GET /api/v1/books/search",
            Step::BookPage => "GET /books/{id}",
            Step::BookApi => "GET /api/v1/books/{id}",
            Step::Similar => "GET /api/v1/books/{id}/similar",
            Step::Popular => "GET /api/v1/recommendations/popular",
            Step::Signup => "POST /api/v1/users",
            Step::Signin => "POST /api/v1/sessions",
            Step::Rate => "PUT /api/v1/me/ratings/{book_id}",
            Step::ForYou => "GET /api/v1/me/recommendations",
            Step::Feed => "GET /api/v1/ratings/stream",
        }
    }

    /// Whether the step needs a signed-in shopper.
    pub fn needs_token(self) -> bool {
        matches!(self, Step::Rate | Step::ForYou)
    }

    /// Steps served (in part) by the recommendations service, for `--expect-status recommendations:503`.
    pub fn uses_recommendations(self) -> bool {
        matches!(
            self,
            Step::Similar | Step::Popular | Step::Rate | Step::ForYou | Step::Feed
        )
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Step {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Step::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| format!("unknown step {s:?} (steps: {})", step_names()))
    }
}

pub fn step_names() -> String {
    Step::ALL.map(Step::name).join(", ")
}

/// The default mix: mostly reading, some signing in and rating, a little of the live feed.
pub const DEFAULT_WEIGHTS: &str = "home=10,browse=10,search=8,book_page=12,book_api=8,similar=8,popular=6,signup=1,signin=2,rate=6,for_you=5,feed=1";

/// Step weights: the share of iterations that do each step.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// (step, cumulative weight), zero weights left out.
    cumulative: Vec<(Step, u64)>,
    pub by_step: BTreeMap<Step, u32>,
}

impl Weights {
    /// `name=weight,...` over the defaults: a step not named keeps its default weight, 0 turns it
    /// off.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut by_step = BTreeMap::new();
        for part in DEFAULT_WEIGHTS.split(',').chain(spec.split(',')) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("weight {part:?} is not STEP=N"))?;
            let step: Step = name.trim().parse()?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight of {name} must be a whole number, got {weight:?}"))?;
            by_step.insert(step, weight);
        }
        let mut total = 0u64;
        let cumulative: Vec<(Step, u64)> = by_step
            .iter()
            .filter(|(_, w)| **w > 0)
            .map(|(s, w)| {
                total += u64::from(*w);
                (*s, total)
            })
            .collect();
        if cumulative.is_empty() {
            return Err("every step has weight 0: nothing to do".into());
        }
        Ok(Self {
            cumulative,
            by_step,
        })
    }

    pub fn total(&self) -> u64 {
        self.cumulative.last().map(|c| c.1).unwrap_or(0)
    }

    /// The step whose share `x` (in `0..total`) falls in.
    pub fn pick(&self, x: u64) -> Step {
        let i = self.cumulative.partition_point(|&(_, c)| c <= x);
        self.cumulative[i.min(self.cumulative.len() - 1)].0
    }
}

/// Which non-2xx answers a drill expects, per step. Transport errors are expected only when
/// `--expect-transport-errors` says so.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expectations {
    by_step: BTreeMap<Step, Vec<u16>>,
    pub transport: bool,
}

impl Expectations {
    /// Each spec is `CODES` (every step), or `STEPS:CODES`, with `STEPS` step names joined by
    /// `+` (or `recommendations`: the steps served by the recommendations service) and `CODES`
    /// status codes joined by `,`. Always expected: sign-up's 409 (the account exists already,
    /// from an earlier run with the same account names) and sign-in's and sign-up's 429 (the
    /// gateway's per-client budget, spent by an earlier run from the same address; loadgen then
    /// pauses its sign-ins for the `Retry-After`).
    pub fn parse(specs: &[String], transport: bool) -> Result<Self, String> {
        let mut by_step: BTreeMap<Step, Vec<u16>> = BTreeMap::new();
        by_step.insert(Step::Signup, vec![409, 429]);
        by_step.insert(Step::Signin, vec![429]);
        for spec in specs {
            let spec = spec.trim();
            if spec.is_empty() {
                continue;
            }
            let (steps, codes) = match spec.split_once(':') {
                Some((s, c)) => (Some(s), c),
                None => (None, spec),
            };
            let steps: Vec<Step> = match steps {
                None => Step::ALL.to_vec(),
                Some(list) => {
                    let mut v = Vec::new();
                    for name in list.split('+').map(str::trim) {
                        if name == "recommendations" {
                            v.extend(Step::ALL.into_iter().filter(|s| s.uses_recommendations()));
                        } else {
                            v.push(name.parse()?);
                        }
                    }
                    v
                }
            };
            for code in codes.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                let code: u16 = code
                    .parse()
                    .ok()
                    .filter(|c| (100..600).contains(c))
                    .ok_or_else(|| {
                        format!("{code:?} in --expect-status {spec:?} is not an HTTP status code")
                    })?;
                for s in &steps {
                    let list = by_step.entry(*s).or_default();
                    if !list.contains(&code) {
                        list.push(code);
                    }
                }
            }
        }
        Ok(Self { by_step, transport })
    }

    pub fn status(&self, step: Step, status: u16) -> bool {
        self.by_step
            .get(&step)
            .is_some_and(|codes| codes.contains(&status))
    }

    /// What is expected, for the summary: `step: codes`.
    pub fn describe(&self) -> BTreeMap<String, Vec<u16>> {
        self.by_step
            .iter()
            .map(|(s, c)| (s.name().to_owned(), c.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_override_the_defaults_and_pick_by_share() {
        let w = Weights::parse("feed=0,home=30").unwrap();
        assert_eq!(w.by_step[&Step::Home], 30);
        assert_eq!(w.by_step[&Step::Feed], 0);
        assert_eq!(w.by_step[&Step::Browse], 10);
        let mut seen = BTreeMap::new();
        for x in 0..w.total() {
            *seen.entry(w.pick(x)).or_insert(0u64) += 1;
        }
        assert_eq!(seen[&Step::Home], 30);
        assert!(!seen.contains_key(&Step::Feed));
        assert!(Weights::parse("nope=1").is_err());
        assert!(Weights::parse(&Step::ALL.map(|s| format!("{s}=0")).join(",")).is_err());
    }

    #[test]
    fn expectations_by_step_and_group() {
        let e = Expectations::parse(
            &["recommendations:503".into(), "signin+rate:429,503".into()],
            false,
        )
        .unwrap();
        assert!(e.status(Step::Popular, 503));
        assert!(e.status(Step::Feed, 503));
        assert!(!e.status(Step::Home, 503));
        assert!(e.status(Step::Signin, 429));
        assert!(e.status(Step::Signup, 409));
        assert!(e.status(Step::Signin, 429));
        assert!(!e.status(Step::ForYou, 429));
        assert!(!e.status(Step::BookApi, 404));
        let all = Expectations::parse(&["404".into()], false).unwrap();
        assert!(all.status(Step::BookApi, 404));
        assert!(Expectations::parse(&["home:abc".into()], false).is_err());
        assert!(Expectations::parse(&["shop:503".into()], false).is_err());
    }
}
