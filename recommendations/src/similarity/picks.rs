//! "For you": personal picks assembled from the books similar to what a user liked most
//! recently, each naming the liked book behind it.

use std::collections::HashMap;

use super::index::{BookId, SimilarityIndex};

/// A personal recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub book: BookId,
    pub score: f64,
    /// The liked book that contributed most.
    pub because: BookId,
    best: f64,
}

impl SimilarityIndex {
    /// Personal picks for `user`: books similar to the most recent `L` they rated 4 or 5 stars,
    /// weighted by how much they liked each, never one they rated. Each pick names the liked book
    /// that contributed most (ties by lower id). Best first, ties by id.
    pub fn for_user(&self, user: &str) -> Vec<Pick> {
        let Some(rated) = self.users.get(user) else {
            return Vec::new();
        };
        let mut ids: Vec<u32> = rated.iter().map(|r| r.book).collect();
        ids.sort_unstable();
        let mut picks: HashMap<BookId, Pick> = HashMap::new();
        let seeds = rated
            .iter()
            .rev()
            .filter(|r| r.stars >= 4)
            .take(self.limits.seeds);
        for r in seeds {
            let (liked, w) = (BookId::from(r.book), f64::from(r.centred()));
            for (candidate, sim) in self.similar(liked) {
                if ids.binary_search(&(candidate as u32)).is_ok() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::{index::index, limits::Limits};

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

    #[test]
    fn only_the_most_recent_liked_books_seed_personal_picks() {
        let mut ix = SimilarityIndex::new(Limits {
            seeds: 1,
            ..Limits::default()
        });
        for (u, b, s) in [("a", 1, 5), ("a", 2, 5), ("b", 3, 5), ("b", 4, 5)] {
            ix.apply(u, b, Some(s));
        }
        ix.apply("me", 1, Some(5));
        ix.apply("me", 3, Some(5)); // the most recent liked book
        let ids: Vec<_> = ix.for_user("me").iter().map(|p| p.book).collect();
        assert_eq!(ids, vec![4]);
    }
}
