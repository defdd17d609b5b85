//! "Popular now" for nobody in particular: a Bayesian average of each book's stars, where the
//! catalog's real 1-5 star distribution is the evidence, local ratings are added to it, and the
//! prior pulls books with few ratings towards the global mean.

/// Stars count and sum for one book.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: i64,
    pub sum: i64,
}

impl Tally {
    /// From a 1..=5 star histogram.
    pub fn from_histogram(h: &[i64; 5]) -> Self {
        Self {
            count: h.iter().sum(),
            sum: h.iter().enumerate().map(|(i, n)| (i as i64 + 1) * n).sum(),
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

/// The prior: `weight` imaginary ratings at the global `mean`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub mean: f64,
    pub weight: f64,
}

impl Prior {
    /// The global mean of every rating, weighted by the median ratings count of a book.
    pub fn from_tallies<'a>(tallies: impl IntoIterator<Item = &'a Tally>) -> Self {
        let mut counts = Vec::new();
        let (mut n, mut s) = (0i64, 0i64);
        for t in tallies {
            counts.push(t.count);
            n += t.count;
            s += t.sum;
        }
        counts.sort_unstable();
        let weight = counts.get(counts.len() / 2).copied().unwrap_or(0).max(1) as f64;
        let mean = if n > 0 { s as f64 / n as f64 } else { 3.0 };
        Self { mean, weight }
    }

    /// The Bayesian average of a book with this tally.
    pub fn score(&self, t: Tally) -> f64 {
        (self.weight * self.mean + t.sum as f64) / (self.weight + t.count as f64)
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
    fn the_prior_is_the_global_mean_weighted_by_the_median_count() {
        let ts = [
            Tally { count: 10, sum: 50 },
            Tally { count: 20, sum: 20 },
            Tally { count: 30, sum: 90 },
        ];
        let p = Prior::from_tallies(&ts);
        assert_eq!(p.weight, 20.0);
        assert!((p.mean - 160.0 / 60.0).abs() < 1e-12);
    }

    #[test]
    fn few_perfect_ratings_do_not_beat_many_good_ones() {
        let p = Prior {
            mean: 3.5,
            weight: 100.0,
        };
        let few_perfect = p.score(Tally { count: 3, sum: 15 });
        let many_good = p.score(Tally {
            count: 10_000,
            sum: 45_000,
        });
        assert!(many_good > few_perfect, "{many_good} vs {few_perfect}");
    }

    #[test]
    fn with_no_ratings_a_book_scores_the_global_mean() {
        let p = Prior {
            mean: 3.9,
            weight: 50.0,
        };
        assert!((p.score(Tally::default()) - 3.9).abs() < 1e-12);
    }
}
