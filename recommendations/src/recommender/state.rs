//! The recommender's state: the similarity index and the per-book tallies of local ratings, and
//! how one rating changes them; [`Engine`] holds the one this process serves from.

use std::sync::{Arc, RwLock};

use catalog::Digest;

use crate::{
    popularity::{Prior, Tally},
    similarity::{BookId, IndexStats, Limits, SimilarityIndex},
};

pub(super) struct State {
    pub(super) index: SimilarityIndex,
    /// The ratings held here, per catalog book (by its position in the digest).
    pub(super) local: Vec<Tally>,
    /// Book ids by Bayesian average (best first, ties by id); rebuilt lazily after changes.
    pub(super) popular: Option<Arc<Vec<(BookId, f64)>>>,
}

/// Recommendations over the catalog and the local ratings.
pub struct Recommender {
    pub(super) catalog: Digest,
    pub(super) prior: Prior,
    state: RwLock<State>,
}

impl Recommender {
    /// A recommender over `catalog` with no ratings yet and the default [`Limits`]; load the
    /// stored ratings with [`Recommender::loader`].
    pub fn new(catalog: Digest) -> Self {
        Self::with_limits(catalog, Limits::default())
    }

    pub fn with_limits(catalog: Digest, limits: Limits) -> Self {
        let prior = Prior::from_catalog(catalog.histograms().iter().map(Tally::from_histogram));
        let local = vec![Tally::default(); catalog.len()];
        Self {
            catalog,
            prior,
            state: RwLock::new(State {
                index: SimilarityIndex::new(limits),
                local,
                popular: None,
            }),
        }
    }

    pub fn catalog(&self) -> &Digest {
        &self.catalog
    }

    /// The catalog's ratings of the book at `position`.
    pub(super) fn catalog_tally(&self, position: usize) -> Tally {
        Tally::from_histogram(&self.catalog.histogram(position))
    }

    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `user` now rates `book` with `stars` (`None`: no longer rates it). Books
    /// outside the catalog are ignored.
    pub fn record(&self, user: &str, book: BookId, stars: Option<i64>) {
        let Some(position) = self.catalog.position(book) else {
            return;
        };
        let mut s = self.write();
        apply(&mut s, user, (book, position), stars);
    }

    /// Forgets every rating (to load again after a failed load).
    pub fn clear(&self) {
        let mut s = self.write();
        s.index.clear();
        s.local.fill(Tally::default());
        s.popular = None;
    }

    /// Sizes and memory of the similarity index.
    pub fn stats(&self) -> IndexStats {
        self.read().index.stats()
    }
}

/// The recommender this process serves from: absent until the first load, replaced whole
/// when a replica reloads. Readers take the current one and keep it for their call.
#[derive(Clone, Default)]
pub struct Engine(Arc<RwLock<Option<Arc<Recommender>>>>);

impl Engine {
    pub fn get(&self) -> Option<Arc<Recommender>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, recommender: Arc<Recommender>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(recommender);
    }
}

/// Applies one rating of the catalog book `(id, position)`.
pub(super) fn apply(
    s: &mut State,
    user: &str,
    (book, position): (BookId, usize),
    stars: Option<i64>,
) {
    let old = s.index.apply(user, book, stars);
    let tally = &mut s.local[position];
    if let Some(o) = old {
        tally.remove(o);
    }
    if let Some(n) = stars.filter(|n| (1..=5).contains(n)) {
        tally.add(n);
    }
    s.popular = None;
}
