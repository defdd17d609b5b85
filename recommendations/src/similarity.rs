//! Item-item similarity kept up to date as ratings arrive. Each rating is centred on the middle
//! of the scale (stars - 3: liked is positive, disliked negative), and two books are as similar
//! as the cosine of their centred rating vectors. Dot products and norms are integers, updated
//! in O(ratings of that user) per change, so nothing is recomputed wholesale and results are
//! exact and deterministic (ties broken by book id).

use std::collections::HashMap;

/// A book id.
pub type BookId = i64;

fn centred(stars: i64) -> i64 {
    stars - 3
}

/// Ratings by user, and per book the norms and co-rating dot products.
#[derive(Debug, Default)]
pub struct SimilarityIndex {
    by_user: HashMap<String, HashMap<BookId, i64>>,
    norm2: HashMap<BookId, i64>,
    dot: HashMap<BookId, HashMap<BookId, i64>>,
}

impl SimilarityIndex {
    /// Sets (`Some`) or removes (`None`) `user`'s rating of `book`; returns the previous stars.
    pub fn apply(&mut self, user: &str, book: BookId, stars: Option<i64>) -> Option<i64> {
        let ratings = self.by_user.entry(user.to_owned()).or_default();
        let old = match stars {
            Some(s) => ratings.insert(book, s),
            None => ratings.remove(&book),
        };
        let (w_old, w_new) = (old.map_or(0, centred), stars.map_or(0, centred));
        let delta = w_new - w_old;
        if delta != 0 {
            for (&other, &s) in ratings.iter() {
                if other == book {
                    continue;
                }
                let d = delta * centred(s);
                if d != 0 {
                    *self.dot.entry(book).or_default().entry(other).or_default() += d;
                    *self.dot.entry(other).or_default().entry(book).or_default() += d;
                }
            }
            *self.norm2.entry(book).or_default() += w_new * w_new - w_old * w_old;
        }
        if ratings.is_empty() {
            self.by_user.remove(user);
        }
        old
    }

    /// Cosine similarity of two books' centred rating vectors (0 when either has none).
    pub fn similarity(&self, a: BookId, b: BookId) -> f64 {
        let dot = self
            .dot
            .get(&a)
            .and_then(|m| m.get(&b))
            .copied()
            .unwrap_or(0);
        self.cosine(a, b, dot)
    }

    fn cosine(&self, a: BookId, b: BookId, dot: i64) -> f64 {
        let (na, nb) = (
            self.norm2.get(&a).copied().unwrap_or(0),
            self.norm2.get(&b).copied().unwrap_or(0),
        );
        if dot == 0 || na == 0 || nb == 0 {
            0.0
        } else {
            dot as f64 / ((na as f64).sqrt() * (nb as f64).sqrt())
        }
    }

    /// Books positively similar to `book`, most similar first, ties by id.
    pub fn similar(&self, book: BookId) -> Vec<(BookId, f64)> {
        let mut out: Vec<(BookId, f64)> = self
            .dot
            .get(&book)
            .into_iter()
            .flatten()
            .filter(|&(_, &d)| d > 0)
            .map(|(&other, &d)| (other, self.cosine(book, other, d)))
            .filter(|&(_, s)| s > 0.0)
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// `user`'s ratings (book → stars).
    pub fn ratings_of(&self, user: &str) -> Option<&HashMap<BookId, i64>> {
        self.by_user.get(user)
    }

    /// Personal picks for `user`: books similar to those they rated 4 or 5 stars, weighted by
    /// how much they liked each, never one they rated. Each pick names the liked book that
    /// contributed most. Best first, ties by id.
    pub fn for_user(&self, user: &str) -> Vec<Pick> {
        let Some(rated) = self.by_user.get(user) else {
            return Vec::new();
        };
        let mut picks: HashMap<BookId, Pick> = HashMap::new();
        for (&liked, &stars) in rated.iter().filter(|&(_, &s)| s >= 4) {
            let w = centred(stars) as f64;
            for (candidate, sim) in self.similar(liked) {
                if rated.contains_key(&candidate) {
                    continue;
                }
                let contribution = sim * w;
                let p = picks.entry(candidate).or_insert(Pick {
                    book: candidate,
                    score: 0.0,
                    because: liked,
                    best: f64::MIN,
                });
                p.score += contribution;
                if contribution > p.best || (contribution == p.best && liked < p.because) {
                    p.best = contribution;
                    p.because = liked;
                }
            }
        }
        let mut out: Vec<Pick> = picks.into_values().collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.book.cmp(&b.book)));
        out
    }
}

/// A personal recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub book: BookId,
    pub score: f64,
    /// The liked book that contributed most.
    pub because: BookId,
    best: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(ratings: &[(&str, BookId, i64)]) -> SimilarityIndex {
        let mut ix = SimilarityIndex::default();
        for &(u, b, s) in ratings {
            ix.apply(u, b, Some(s));
        }
        ix
    }

    #[test]
    fn books_liked_by_the_same_readers_are_similar() {
        let ix = index(&[
            ("a", 1, 5),
            ("a", 2, 5),
            ("b", 1, 4),
            ("b", 2, 5),
            ("b", 3, 1),
        ]);
        let sim = ix.similar(1);
        assert_eq!(sim[0].0, 2);
        assert!(sim[0].1 > 0.9);
        assert!(
            sim.iter().all(|&(b, _)| b != 3),
            "a disliked book is not similar"
        );
    }

    #[test]
    fn incremental_updates_equal_a_rebuild_from_scratch() {
        let mut live = index(&[
            ("a", 1, 5),
            ("a", 2, 2),
            ("b", 1, 4),
            ("b", 2, 5),
            ("c", 2, 4),
            ("c", 3, 5),
        ]);
        live.apply("a", 2, Some(5)); // rate again: replaces
        live.apply("c", 3, None); // delete
        live.apply("c", 1, Some(5));
        let rebuilt = index(&[
            ("a", 1, 5),
            ("a", 2, 5),
            ("b", 1, 4),
            ("b", 2, 5),
            ("c", 2, 4),
            ("c", 1, 5),
        ]);
        for (x, y) in [(1, 2), (1, 3), (2, 3)] {
            assert_eq!(live.similarity(x, y), rebuilt.similarity(x, y), "{x}~{y}");
        }
        assert_eq!(live.similarity(2, 3), 0.0);
    }

    #[test]
    fn rating_again_returns_the_previous_stars() {
        let mut ix = SimilarityIndex::default();
        assert_eq!(ix.apply("a", 1, Some(3)), None);
        assert_eq!(ix.apply("a", 1, Some(5)), Some(3));
        assert_eq!(ix.apply("a", 1, None), Some(5));
        assert!(ix.ratings_of("a").is_none());
    }

    #[test]
    fn ties_are_broken_by_book_id() {
        let ix = index(&[("a", 1, 5), ("a", 3, 5), ("a", 2, 5)]);
        let ids: Vec<_> = ix.similar(1).into_iter().map(|(b, _)| b).collect();
        assert_eq!(ids, vec![2, 3]);
    }

    #[test]
    fn personal_picks_skip_rated_books_and_name_the_liked_book_behind_them() {
        let ix = index(&[
            ("a", 10, 5),
            ("a", 20, 5),
            ("a", 30, 5),
            ("b", 10, 5),
            ("b", 40, 4),
            ("me", 10, 5),
            ("me", 20, 1),
        ]);
        let picks = ix.for_user("me");
        let ids: Vec<_> = picks.iter().map(|p| p.book).collect();
        assert!(!ids.contains(&10) && !ids.contains(&20), "{ids:?}");
        assert_eq!(ids, vec![30, 40]);
        assert!(picks.iter().all(|p| p.because == 10));
    }

    #[test]
    fn a_user_without_liked_books_gets_no_personal_picks() {
        let ix = index(&[("a", 1, 5), ("a", 2, 5), ("me", 1, 2)]);
        assert!(ix.for_user("me").is_empty());
        assert!(ix.for_user("nobody").is_empty());
    }
}
