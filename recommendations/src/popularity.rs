//! "Popular now" for nobody in particular: a Bayesian average of each book's stars.
//!
//! The catalog's real 1-5 star histograms hold millions of ratings (4.7M for the most rated
//! book), which would drown every rating given here. So the catalog evidence is compressed: a
//! book's histogram counts as its mean stars with a weight that grows with the log of its count,
//! `w = 10·log10(1 + count)` (about 67 for the most rated book, 44 for the median one), while
//! each local rating counts 1. The prior pulls every book towards the global mean of the
//! catalog's ratings with the weight of the median book's evidence:
//!
//! ```text
//! score = (W·μ + w·catalog_mean + local_sum) / (W + w + local_count)
//! ```
//!
//! A few dozen enthusiastic local readers can lift a well-rated book into the top of the list,
//! while a lone perfect rating cannot.

/// Stars count and sum for one book.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: i64,
    pub sum: i64,
}

impl Tally {
    /// From a 1..=5 star histogram.
    pub fn from_histogram(h: &[u32; 5]) -> Self {
        Self {
            count: h.iter().map(|&n| i64::from(n)).sum(),
            sum: h
                .iter()
                .enumerate()
                .map(|(i, &n)| (i as i64 + 1) * i64::from(n))
                .sum(),
        }
    }

    pub fn add(&mut self, stars: i64) {
        self.count += 1;
        self.sum += stars;
    }

    pub fn remove(&mut self, stars: i64) {
        self.count -= 1;
        self.sum -= stars;
    }
}

/// The weight of a catalog histogram with `count` ratings: `10·log10(1 + count)`.
pub fn evidence_weight(count: i64) -> f64 {
    10.0 * (1.0 + count.max(0) as f64).log10()
}

/// The prior: `weight` imaginary ratings at the global `mean`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub mean: f64,
    pub weight: f64,
}

impl Prior {
    /// The global mean of every catalog rating, weighted by the median evidence weight of a
    /// book.
    pub fn from_catalog(tallies: impl IntoIterator<Item = Tally>) -> Self {
        let mut weights = Vec::new();
        let (mut n, mut s) = (0i64, 0i64);
        for t in tallies {
            weights.push(evidence_weight(t.count));
            n += t.count;
            s += t.sum;
        }
        weights.sort_unstable_by(f64::total_cmp);
        let weight = weights
            .get(weights.len() / 2)
            .copied()
            .unwrap_or(1.0)
            .max(1.0);
        let mean = if n > 0 { s as f64 / n as f64 } else { 3.0 };
        Self { mean, weight }
    }

    /// The Bayesian average of a book with this `catalog` histogram and these `local` ratings.
    pub fn score(&self, catalog: Tally, local: Tally) -> f64 {
        let (w, catalog_mean) = if catalog.count > 0 {
            (
                evidence_weight(catalog.count),
                catalog.sum as f64 / catalog.count as f64,
            )
        } else {
            (0.0, 0.0)
        };
        (self.weight * self.mean + w * catalog_mean + local.sum as f64)
            / (self.weight + w + local.count as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_becomes_a_count_and_a_sum_of_stars() {
        assert_eq!(
            Tally::from_histogram(&[1, 0, 0, 0, 2]),
            Tally { count: 3, sum: 11 }
        );
    }

    #[test]
    fn the_prior_is_the_global_mean_weighted_by_the_median_evidence() {
        let ts = [
            Tally { count: 9, sum: 45 },
            Tally { count: 99, sum: 99 },
            Tally {
                count: 999,
                sum: 2997,
            },
        ];
        let p = Prior::from_catalog(ts);
        assert!((p.weight - 20.0).abs() < 1e-9, "{}", p.weight);
        assert!((p.mean - 3141.0 / 1107.0).abs() < 1e-12);
    }

    #[test]
    fn catalog_evidence_grows_with_the_log_of_its_count() {
        assert!((evidence_weight(4_700_000) - 66.7).abs() < 0.1);
        assert_eq!(evidence_weight(0), 0.0);
        // 4.7M ratings at 4.5 weigh like 67 local ratings at 4.5.
        let p = Prior {
            mean: 4.0,
            weight: 44.0,
        };
        let catalog = Tally {
            count: 4_700_000,
            sum: 21_150_000,
        };
        let s = p.score(catalog, Tally::default());
        assert!(
            (s - (44.0 * 4.0 + 66.72 * 4.5) / (44.0 + 66.72)).abs() < 1e-3,
            "{s}"
        );
    }

    #[test]
    fn few_perfect_ratings_do_not_beat_many_good_ones() {
        let p = Prior {
            mean: 3.5,
            weight: 40.0,
        };
        let few_perfect = p.score(Tally::default(), Tally { count: 3, sum: 15 });
        let many_good = p.score(
            Tally {
                count: 10_000,
                sum: 45_000,
            },
            Tally::default(),
        );
        assert!(many_good > few_perfect, "{many_good} vs {few_perfect}");
    }

    #[test]
    fn with_no_ratings_a_book_scores_the_global_mean() {
        let p = Prior {
            mean: 3.9,
            weight: 50.0,
        };
        assert!((p.score(Tally::default(), Tally::default()) - 3.9).abs() < 1e-12);
    }
}
