//! Synthetic ratings that look like the catalog's readers, reproducible from a seed: for the
//! scale benchmark, and for load generators that seed a running suite.
//!
//! - **Who**: each user's number of ratings is a Pareto draw (heavy tail, `alpha` 1.2 by
//!   default), scaled so the total is exactly the requested count, at least 1 and at most
//!   `max_per_user` (6,000 by default: a few users rate thousands of books, most a handful).
//! - **What**: books are drawn following the catalog's real popularity (`ratings_count`), without
//!   repeating a book for a user (rejection sampling for most users, weighted sampling without
//!   replacement by Efraimidis–Spirakis keys for the heaviest).
//! - **How many stars**: drawn from that book's real 1-5 star histogram.
//! - **When**: sorted random instants over one year from a fixed start, so a user's ratings have
//!   a definite order (oldest first).
//!
//! Every user's ratings are generated from `(seed, user)` alone, so any user can be regenerated
//! without the others, and the same seed always gives the same ratings.
#![forbid(unsafe_code)]

use std::collections::HashSet;

use catalog::Digest;

/// splitmix64: a tiny, fast, deterministic pseudo-random generator (not for secrets).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// Ratings in all (clamped to what `users` users can hold).
    pub ratings: u64,
    /// Users (clamped to `ratings`: everyone rates at least one book).
    pub users: u32,
    pub seed: u64,
    /// The most ratings one user has (also at most the catalog's size).
    pub max_per_user: u32,
    /// The Pareto shape of per-user activity: smaller is a heavier tail.
    pub alpha: f64,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            ratings: 1_000_000,
            users: 50_000,
            seed: 42,
            max_per_user: 6_000,
            alpha: 1.2,
        }
    }
}

/// One generated rating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticRating {
    /// The user's index (`0..users`); [`Synthetic::user_id`] names it.
    pub user: u32,
    pub book_id: i64,
    pub stars: i64,
    pub updated_at_ms: i64,
}

/// The first instant of the generated year (2023-11-14).
pub const START_MS: i64 = 1_700_000_000_000;
const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;

/// A synthetic population of readers over a catalog.
#[derive(Debug, Clone)]
pub struct Synthetic {
    seed: u64,
    ids: Vec<i64>,
    /// Cumulative ratings counts, in `ids` order.
    popularity: Vec<u64>,
    weights: Vec<f64>,
    /// Cumulative star histograms, in `ids` order.
    stars: Vec<[u64; 5]>,
    activity: Vec<u32>,
}

fn mix(seed: u64, stream: u64) -> u64 {
    SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

impl Synthetic {
    pub fn new(catalog: &Digest, spec: Spec) -> Self {
        let books = catalog.len();
        let mut total = 0u64;
        let mut popularity = Vec::with_capacity(books);
        let mut stars = Vec::with_capacity(books);
        for i in 0..books {
            total += u64::from(catalog.ratings_count(i).max(1));
            popularity.push(total);
            let mut acc = 0u64;
            stars.push(catalog.histogram(i).map(|n| {
                acc += u64::from(n);
                acc
            }));
        }
        let cap = spec.max_per_user.clamp(1, books.max(1) as u32);
        let users = spec.users.clamp(1, spec.ratings.max(1) as u32);
        let ratings = spec.ratings.clamp(users as u64, users as u64 * cap as u64);
        let activity = activity(spec.seed, users, ratings, cap, spec.alpha);
        Self {
            seed: spec.seed,
            ids: catalog.ids().to_vec(),
            popularity,
            weights: (0..books)
                .map(|i| f64::from(catalog.ratings_count(i).max(1)))
                .collect(),
            stars,
            activity,
        }
    }

    pub fn users(&self) -> u32 {
        self.activity.len() as u32
    }

    /// Ratings in all.
    pub fn ratings(&self) -> u64 {
        self.activity.iter().map(|&n| u64::from(n)).sum()
    }

    /// How many books `user` rates.
    pub fn activity(&self, user: u32) -> u32 {
        self.activity[user as usize]
    }

    /// A UUID-shaped id for `user`, stable for a seed.
    pub fn user_id(&self, user: u32) -> String {
        let mut rng = SplitMix64::new(mix(self.seed, 0x1D_0000_0000 | u64::from(user)));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// A book drawn by the catalog's popularity.
    pub fn popular_book(&self, rng: &mut SplitMix64) -> i64 {
        self.ids[self.popular_index(rng)]
    }

    fn popular_index(&self, rng: &mut SplitMix64) -> usize {
        let total = self.popularity.last().copied().unwrap_or(0);
        let x = rng.below(total);
        self.popularity.partition_point(|&c| c <= x)
    }

    /// Stars for the book at `index`, drawn from its real histogram.
    fn draw_stars(&self, index: usize, rng: &mut SplitMix64) -> i64 {
        let h = &self.stars[index];
        if h[4] == 0 {
            return 1 + rng.below(5) as i64;
        }
        let x = rng.below(h[4]);
        1 + h.partition_point(|&c| c <= x) as i64
    }

    /// `user`'s ratings, oldest first.
    pub fn ratings_of(&self, user: u32) -> Vec<SyntheticRating> {
        let n = self.activity[user as usize] as usize;
        let mut rng = SplitMix64::new(mix(self.seed, u64::from(user)));
        let picks: Vec<usize> = if n * 8 <= self.ids.len() {
            let mut seen = HashSet::with_capacity(n);
            let mut v = Vec::with_capacity(n);
            while v.len() < n {
                let i = self.popular_index(&mut rng);
                if seen.insert(i) {
                    v.push(i);
                }
            }
            v
        } else {
            // Efraimidis–Spirakis: the n largest ln(u)/w are a weighted sample without
            // replacement.
            let mut keys: Vec<(f64, usize)> = self
                .weights
                .iter()
                .enumerate()
                .map(|(i, &w)| ((1.0 - rng.unit()).ln() / w, i))
                .collect();
            keys.select_nth_unstable_by(n - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            keys.truncate(n);
            // Random order over time, not by key.
            for i in (1..keys.len()).rev() {
                keys.swap(i, rng.below(i as u64 + 1) as usize);
            }
            keys.into_iter().map(|(_, i)| i).collect()
        };
        let mut times: Vec<u64> = (0..n).map(|_| rng.below(YEAR_MS)).collect();
        times.sort_unstable();
        picks
            .into_iter()
            .zip(times)
            .map(|(i, t)| SyntheticRating {
                user,
                book_id: self.ids[i],
                stars: self.draw_stars(i, &mut rng),
                updated_at_ms: START_MS + t as i64,
            })
            .collect()
    }

    /// Every rating, user by user, each user's oldest first.
    pub fn iter(&self) -> impl Iterator<Item = SyntheticRating> + '_ {
        (0..self.users()).flat_map(|u| self.ratings_of(u))
    }

    /// `n` users spread over the activity distribution (evenly by rank, lightest to heaviest),
    /// always including the ten heaviest, in a random order.
    pub fn users_across_activity(&self, n: usize, rng: &mut SplitMix64) -> Vec<u32> {
        let mut by_activity: Vec<u32> = (0..self.users()).collect();
        by_activity.sort_by_key(|&u| (self.activity[u as usize], u));
        let len = by_activity.len();
        let mut out: Vec<u32> = by_activity.iter().rev().take(10.min(n)).copied().collect();
        let rest = n - out.len();
        out.extend((0..rest).map(|i| by_activity[i * len / rest.max(1)]));
        for i in (1..out.len()).rev() {
            out.swap(i, rng.below(i as u64 + 1) as usize);
        }
        out
    }
}

/// Per-user rating counts: Pareto weights scaled to `ratings` in all, each in `1..=cap`.
fn activity(seed: u64, users: u32, ratings: u64, cap: u32, alpha: f64) -> Vec<u32> {
    let mut rng = SplitMix64::new(mix(seed, 0xAC_0000_0000));
    let alpha = if alpha.is_finite() && alpha > 0.0 {
        alpha
    } else {
        1.2
    };
    let weights: Vec<f64> = (0..users)
        .map(|_| (1.0 - rng.unit()).powf(-1.0 / alpha))
        .collect();
    let mut order: Vec<usize> = (0..users as usize).collect();
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut counts = vec![0u32; users as usize];
    // Water-filling: the heaviest users take the cap while their share exceeds it.
    let (mut left_r, mut left_w) = (ratings as f64, weights.iter().sum::<f64>());
    let mut first_free = 0;
    for &u in &order {
        if left_w <= 0.0 || left_r * weights[u] / left_w <= f64::from(cap) {
            break;
        }
        counts[u] = cap;
        left_r -= f64::from(cap);
        left_w -= weights[u];
        first_free += 1;
    }
    for &u in &order[first_free..] {
        let share = (left_r * weights[u] / left_w).floor();
        counts[u] = (share as u32).clamp(1, cap);
    }
    // Fix the rounding so the total is exact: add to the heaviest first, take from them too.
    let mut sum: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let mut i = 0;
    while sum != ratings {
        let u = order[i % order.len()];
        if sum < ratings && counts[u] < cap {
            counts[u] += 1;
            sum += 1;
        } else if sum > ratings && counts[u] > 1 {
            counts[u] -= 1;
            sum -= 1;
        }
        i += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_ratings_with_a_heavy_tail() {
        let catalog = Digest::builtin().unwrap();
        let spec = Spec {
            ratings: 60_000,
            users: 3_000,
            seed: 9,
            ..Spec::default()
        };
        let a = Synthetic::new(&catalog, spec);
        let b = Synthetic::new(&catalog, spec);
        assert_eq!(a.ratings(), 60_000);
        let all: Vec<_> = a.iter().collect();
        assert_eq!(all.len(), 60_000);
        assert_eq!(all, b.iter().collect::<Vec<_>>());
        assert_eq!(a.user_id(5), b.user_id(5));
        assert_eq!(a.user_id(5).len(), 36);
        assert_ne!(a.user_id(5), a.user_id(6));
        let most = (0..a.users()).map(|u| a.activity(u)).max().unwrap();
        assert!(most >= 1_000, "{most}");
        assert!((0..a.users()).all(|u| a.activity(u) >= 1));
        // No book twice for one user, ratings in time order, stars in range.
        for u in 0..a.users() {
            let r = a.ratings_of(u);
            let books: HashSet<_> = r.iter().map(|x| x.book_id).collect();
            assert_eq!(books.len(), r.len());
            assert!(
                r.windows(2)
                    .all(|w| w[0].updated_at_ms <= w[1].updated_at_ms)
            );
            assert!(r.iter().all(|x| (1..=5).contains(&x.stars)));
        }
        // Popular books are rated most: the most rated catalog book beats a median one.
        let count = |id: i64| all.iter().filter(|r| r.book_id == id).count();
        assert!(count(catalog.id(0)) > 10 * count(catalog.id(5_000)).max(1));
    }

    #[test]
    fn users_across_activity_include_the_heaviest() {
        let catalog = Digest::builtin().unwrap();
        let s = Synthetic::new(
            &catalog,
            Spec {
                ratings: 20_000,
                users: 1_000,
                ..Spec::default()
            },
        );
        let picked = s.users_across_activity(100, &mut SplitMix64::new(1));
        assert_eq!(picked.len(), 100);
        let heaviest = (0..s.users()).max_by_key(|&u| (s.activity(u), u)).unwrap();
        assert!(picked.contains(&heaviest));
    }

    #[test]
    fn below_stays_below() {
        let mut r = SplitMix64::new(1);
        assert!((0..10_000).all(|_| r.below(7) < 7));
        assert_eq!(r.below(0), 0);
    }
}
