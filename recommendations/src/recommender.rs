//! The recommender: the catalog's rating distributions plus the ratings held here, kept in memory
//! and updated as each rating is stored. Answers popular, similar and personal lists.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use marketplace::catalog::Catalog;

use crate::{
    popularity::{Prior, Tally},
    similarity::{BookId, SimilarityIndex},
    store::RatingRow,
};

/// Where a recommendation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Popular,
    Similar,
    Personal,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Popular => "popular",
            Source::Similar => "similar",
            Source::Personal => "personal",
        }
    }
}

/// One recommended book.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub book_id: BookId,
    pub score: f64,
    pub source: Source,
    pub reason: String,
    pub because_book_id: Option<BookId>,
}

struct State {
    index: SimilarityIndex,
    /// Catalog tally plus local ratings, per book.
    tallies: HashMap<BookId, Tally>,
    /// Book ids by Bayesian average (best first, ties by id); rebuilt lazily after changes.
    popular: Option<Arc<Vec<(BookId, f64)>>>,
}

/// Recommendations over the catalog and the local ratings.
pub struct Recommender {
    catalog: Catalog,
    prior: Prior,
    state: RwLock<State>,
}

impl Recommender {
    /// Builds the index from the catalog and every stored rating.
    pub fn new(catalog: Catalog, ratings: &[RatingRow]) -> Self {
        let tallies: HashMap<BookId, Tally> = catalog
            .by_popularity()
            .iter()
            .map(|b| (b.id, Tally::from_histogram(&b.rating_histogram)))
            .collect();
        let prior = Prior::from_tallies(tallies.values());
        let mut state = State {
            index: SimilarityIndex::default(),
            tallies,
            popular: None,
        };
        for r in ratings {
            apply(&mut state, &r.user_id, r.book_id, Some(r.stars));
        }
        Self {
            catalog,
            prior,
            state: RwLock::new(state),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Records that `user` now rates `book` with `stars` (`None`: no longer rates it).
    pub fn record(&self, user: &str, book: BookId, stars: Option<i64>) {
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        apply(&mut s, user, book, stars);
    }

    fn title(&self, id: BookId) -> &str {
        self.catalog.get(id).map_or("a book", |b| b.title.as_str())
    }

    /// Every book by Bayesian average, best first; `offset`/`limit` select a page.
    pub fn popular(&self, offset: usize, limit: usize) -> (Vec<Recommendation>, usize) {
        let ranked = self.ranked_popular();
        let total = ranked.len();
        let page = ranked
            .iter()
            .skip(offset)
            .take(limit)
            .map(|&(id, score)| self.popular_rec(id, score))
            .collect();
        (page, total)
    }

    fn popular_rec(&self, id: BookId, score: f64) -> Recommendation {
        let count = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .tallies
            .get(&id)
            .map_or(0, |t| t.count);
        Recommendation {
            book_id: id,
            score,
            source: Source::Popular,
            reason: format!("Popular with readers: {score:.2} stars over {count} ratings"),
            because_book_id: None,
        }
    }

    fn ranked_popular(&self) -> Arc<Vec<(BookId, f64)>> {
        if let Some(p) = &self.state.read().unwrap_or_else(|e| e.into_inner()).popular {
            return p.clone();
        }
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        let State {
            tallies, popular, ..
        } = &mut *s;
        let ranked = popular.get_or_insert_with(|| {
            let mut v: Vec<(BookId, f64)> = tallies
                .iter()
                .map(|(&id, &t)| (id, self.prior.score(t)))
                .collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            Arc::new(v)
        });
        ranked.clone()
    }

    /// "Readers who liked this also liked": most similar first, at most `limit`.
    pub fn similar(&self, book: BookId, limit: usize) -> Vec<Recommendation> {
        let s = self.state.read().unwrap_or_else(|e| e.into_inner());
        let title = self.title(book);
        s.index
            .similar(book)
            .into_iter()
            .take(limit)
            .map(|(id, score)| Recommendation {
                book_id: id,
                score,
                source: Source::Similar,
                reason: format!("Readers who liked {title} also liked this"),
                because_book_id: Some(book),
            })
            .collect()
    }

    /// Personal picks for `user`, then popular books they have not rated to fill `limit`.
    pub fn for_user(&self, user: &str, limit: usize) -> Vec<Recommendation> {
        let (mut out, rated): (Vec<Recommendation>, Vec<BookId>) = {
            let s = self.state.read().unwrap_or_else(|e| e.into_inner());
            let picks = s.index.for_user(user);
            let rated = s
                .index
                .ratings_of(user)
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default();
            let out = picks
                .into_iter()
                .take(limit)
                .map(|p| Recommendation {
                    book_id: p.book,
                    score: p.score,
                    source: Source::Personal,
                    reason: format!("Because you liked {}", self.title(p.because)),
                    because_book_id: Some(p.because),
                })
                .collect();
            (out, rated)
        };
        if out.len() < limit {
            let taken: Vec<BookId> = out.iter().map(|r| r.book_id).collect();
            let fill: Vec<(BookId, f64)> = self
                .ranked_popular()
                .iter()
                .copied()
                .filter(|(id, _)| !rated.contains(id) && !taken.contains(id))
                .take(limit - out.len())
                .collect();
            out.extend(
                fill.into_iter()
                    .map(|(id, score)| self.popular_rec(id, score)),
            );
        }
        out
    }
}

fn apply(s: &mut State, user: &str, book: BookId, stars: Option<i64>) {
    let old = s.index.apply(user, book, stars);
    let tally = s.tallies.entry(book).or_default();
    if let Some(o) = old {
        tally.remove(o);
    }
    if let Some(n) = stars {
        tally.add(n);
    }
    s.popular = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(u: &str, b: BookId, s: i64) -> RatingRow {
        RatingRow {
            user_id: u.into(),
            book_id: b,
            stars: s,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn popular_books_follow_the_catalogs_real_ratings() {
        let r = Recommender::new(Catalog::builtin().unwrap(), &[]);
        let (top, total) = r.popular(0, 10);
        assert_eq!(total, 10_000);
        assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
        // Well-loved, much-rated books lead: every top-ten book averages above 4.3.
        for rec in &top {
            let b = r.catalog().get(rec.book_id).unwrap();
            assert!(b.average_rating > 4.3, "{} {}", b.title, b.average_rating);
        }
    }

    #[test]
    fn personal_picks_come_first_then_unrated_popular_books_fill_the_list() {
        let r = Recommender::new(
            Catalog::builtin().unwrap(),
            &[rating("a", 1, 5), rating("a", 2, 5), rating("me", 1, 5)],
        );
        let recs = r.for_user("me", 5);
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[0].book_id, 2);
        assert_eq!(recs[0].source, Source::Personal);
        assert_eq!(recs[0].because_book_id, Some(1));
        assert!(
            recs[0]
                .reason
                .starts_with("Because you liked The Hunger Games")
        );
        assert!(
            recs[1..]
                .iter()
                .all(|x| x.source == Source::Popular && x.book_id != 1)
        );
    }

    #[test]
    fn a_new_rating_changes_what_is_similar_at_once() {
        let r = Recommender::new(Catalog::builtin().unwrap(), &[]);
        assert!(r.similar(1, 5).is_empty());
        r.record("a", 1, Some(5));
        r.record("a", 7, Some(4));
        assert_eq!(r.similar(1, 5)[0].book_id, 7);
        r.record("a", 7, None);
        assert!(r.similar(1, 5).is_empty());
    }
}
