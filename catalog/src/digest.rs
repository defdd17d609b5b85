//! The digest: what a reader of ratings needs of the catalog (ids, titles, authors, ratings
//! counts and 1-5 star histograms, most popular first) in a few flat arrays, about 80 bytes a
//! book instead of a kilobyte of full records. Shared with `build.rs`, which encodes the built-in one.

use crate::{
    error::CatalogError,
    record::Book,
    wire::{Reader, Texts},
};

/// Ids, titles, authors and star histograms of every book, most popular first. A book is named by its
/// position in that order (`0..len()`); [`Digest::position`] finds it by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    ids: Vec<i64>,
    /// The source's `work_ratings_count` (saturated to `u32`).
    ratings_counts: Vec<u32>,
    /// Counts of 1..=5 star ratings (saturated to `u32`).
    histograms: Vec<[u32; 5]>,
    titles: Texts,
    /// Each book's authors, joined by commas (the source's own separator, so no name holds one).
    authors: Texts,
    /// Positions ordered by id, for lookups by id.
    by_id: Vec<u32>,
}

const MAGIC: &[u8; 8] = b"bkdgst02";

fn saturate(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

impl Digest {
    /// The digest of `books`, which must be most popular first (as [`crate::parse`] returns
    /// them); their authors' names hold no comma (parse splits the source's lists at commas).
    pub fn from_books(books: &[Book]) -> Self {
        let bytes = |f: fn(&Book) -> usize| books.iter().map(f).sum();
        let mut titles = Texts::with_capacity(bytes(|b| b.title.len()), books.len());
        let mut authors = Texts::with_capacity(
            bytes(|b| b.authors.iter().map(|a| a.len() + 1).sum()),
            books.len(),
        );
        for b in books {
            titles.push(&b.title);
            authors.push(&b.authors.join(","));
        }
        Self::assemble(
            books.iter().map(|b| b.id).collect(),
            books.iter().map(|b| saturate(b.ratings_count)).collect(),
            books
                .iter()
                .map(|b| b.rating_histogram.map(saturate))
                .collect(),
            titles,
            authors,
        )
    }

    fn assemble(
        ids: Vec<i64>,
        ratings_counts: Vec<u32>,
        histograms: Vec<[u32; 5]>,
        titles: Texts,
        authors: Texts,
    ) -> Self {
        let mut by_id: Vec<u32> = (0..ids.len() as u32).collect();
        by_id.sort_unstable_by_key(|&p| ids[p as usize]);
        let mut digest = Self {
            ids,
            ratings_counts,
            histograms,
            titles,
            authors,
            by_id,
        };
        // Held for the life of a service: no spare capacity.
        digest.ids.shrink_to_fit();
        digest.ratings_counts.shrink_to_fit();
        digest.histograms.shrink_to_fit();
        digest.titles.shrink_to_fit();
        digest.authors.shrink_to_fit();
        digest
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The position of book `id`, if the catalog has it.
    pub fn position(&self, id: i64) -> Option<usize> {
        self.by_id
            .binary_search_by_key(&id, |&p| self.ids[p as usize])
            .ok()
            .map(|i| self.by_id[i] as usize)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.position(id).is_some()
    }

    /// Every id, most popular first.
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    pub fn id(&self, position: usize) -> i64 {
        self.ids[position]
    }

    pub fn title(&self, position: usize) -> &str {
        self.titles.get(position)
    }

    /// The book's authors, in the catalog's order.
    pub fn authors(&self, position: usize) -> impl Iterator<Item = &str> {
        self.authors
            .get(position)
            .split(',')
            .filter(|a| !a.is_empty())
    }

    /// The title of book `id`, if the catalog has it.
    pub fn title_of(&self, id: i64) -> Option<&str> {
        self.position(id).map(|p| self.title(p))
    }

    /// How many ratings the book has in the source (its popularity).
    pub fn ratings_count(&self, position: usize) -> u32 {
        self.ratings_counts[position]
    }

    /// Counts of 1..=5 star ratings.
    pub fn histogram(&self, position: usize) -> [u32; 5] {
        self.histograms[position]
    }

    /// Every histogram, most popular book first.
    pub fn histograms(&self) -> &[[u32; 5]] {
        &self.histograms
    }

    /// Bytes held (the struct and its arrays), for logs and tests.
    pub fn heap_bytes(&self) -> usize {
        self.ids.capacity() * 8
            + self.ratings_counts.capacity() * 4
            + self.histograms.capacity() * 20
            + self.titles.heap_bytes()
            + self.authors.heap_bytes()
            + self.by_id.capacity() * 4
    }

    /// Little-endian: magic, count, ids, ratings counts, histograms, title ends, author ends,
    /// titles, authors.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.heap_bytes() + 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for id in &self.ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        let words = self
            .ratings_counts
            .iter()
            .chain(self.histograms.iter().flatten())
            .chain(&self.titles.ends)
            .chain(&self.authors.ends);
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(self.titles.text.as_bytes());
        out.extend_from_slice(self.authors.text.as_bytes());
        out
    }

    /// Reads what [`Digest::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, CatalogError> {
        let mut r = Reader::new(bytes, MAGIC)?;
        let n = r.u32()? as usize;
        let ids = (0..n).map(|_| r.i64()).collect::<Result<Vec<_>, _>>()?;
        let ratings_counts = r.words(n)?;
        let histograms = r
            .words(n * 5)?
            .chunks_exact(5)
            .map(|c| [c[0], c[1], c[2], c[3], c[4]])
            .collect();
        let title_ends = r.words(n)?;
        let author_ends = r.words(n)?;
        let titles_len = title_ends.last().map_or(0, |&e| e as usize);
        let titles = r.bytes(titles_len)?;
        let authors = r.0;
        let titles = Texts::checked(titles, title_ends, "titles do not match their ends")?;
        let authors = Texts::checked(authors, author_ends, "authors do not match their ends")?;
        Ok(Self::assemble(
            ids,
            ratings_counts,
            histograms,
            titles,
            authors,
        ))
    }
}
