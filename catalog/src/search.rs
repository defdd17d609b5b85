//! Word search over titles and authors: case-insensitive, every query word must match (whole
//! word, or as a prefix for words of three letters or more), ranked by where and how the words
//! match, ties broken by popularity then id so results are deterministic.
//!
//! The index is a few flat arrays (sorted words, their postings, each book's normalised title).
//! `build.rs` builds the built-in catalog's index with this very code and embeds it encoded, so a
//! start decodes it in about a millisecond instead of building it again.

use std::collections::HashMap;

use crate::{
    error::CatalogError,
    record::Book,
    wire::{Reader, Texts, Writer},
};

const TITLE_EXACT: f32 = 3.0;
const AUTHOR_EXACT: f32 = 2.5;
const TITLE_PREFIX: f32 = 1.5;
const AUTHOR_PREFIX: f32 = 1.0;
const WHOLE_TITLE_BONUS: f32 = 5.0;
const TITLE_STARTS_BONUS: f32 = 2.0;
/// Query words beyond this many are ignored.
pub const MAX_QUERY_WORDS: usize = 12;

const MAGIC: &[u8; 8] = b"bkindx01";
/// A posting is a book's position shifted left once; this bit says the word is in its authors.
const IN_AUTHORS: u32 = 1;

/// Lower-cased words of `text`: runs of letters and digits.
pub fn words(text: &str) -> impl Iterator<Item = String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The normalised form of a query: its words joined by single spaces.
pub fn normalize(query: &str) -> String {
    words(query)
        .take(MAX_QUERY_WORDS)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Inverted index from word to the books (by position, most popular first) holding it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchIndex {
    /// Every word, sorted, so the words a prefix starts are a contiguous range.
    words: Texts,
    /// The postings of word `i` end at `posting_ends[i]`; a word's postings are unique and in
    /// book order, a title's before an author's.
    posting_ends: Vec<u32>,
    postings: Vec<u32>,
    /// Each book's normalised title.
    titles: Texts,
}

impl SearchIndex {
    /// The index of `books`, in their order.
    pub fn build(books: &[Book]) -> Self {
        let mut map: HashMap<String, Vec<u32>> = HashMap::with_capacity(books.len() * 2);
        let mut titles =
            Texts::with_capacity(books.iter().map(|b| b.title.len()).sum(), books.len());
        let mut title = String::new();
        for (i, b) in books.iter().enumerate() {
            let doc = (i as u32) << 1;
            title.clear();
            for w in words(&b.title) {
                if !title.is_empty() {
                    title.push(' ');
                }
                title.push_str(&w);
                add(&mut map, w, doc);
            }
            titles.push(&title);
            for w in b.authors.iter().flat_map(|a| words(a)) {
                add(&mut map, w, doc | IN_AUTHORS);
            }
        }
        let mut entries: Vec<(String, Vec<u32>)> = map.into_iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut words =
            Texts::with_capacity(entries.iter().map(|e| e.0.len()).sum(), entries.len());
        let mut posting_ends = Vec::with_capacity(entries.len());
        let mut postings = Vec::with_capacity(entries.iter().map(|e| e.1.len()).sum());
        for (w, docs) in entries {
            words.push(&w);
            postings.extend_from_slice(&docs);
            posting_ends.push(postings.len() as u32);
        }
        titles.shrink_to_fit();
        Self {
            words,
            posting_ends,
            postings,
            titles,
        }
    }

    /// How many books it indexes.
    pub fn len(&self) -> usize {
        self.titles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.titles.len() == 0
    }

    /// Bytes held, for logs and tests.
    pub fn heap_bytes(&self) -> usize {
        self.words.heap_bytes()
            + self.titles.heap_bytes()
            + (self.posting_ends.capacity() + self.postings.capacity()) * 4
    }

    /// Magic, words, posting ends, postings, titles.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(self.heap_bytes() + 32));
        w.bytes(MAGIC);
        self.words.encode(&mut w);
        w.u32(self.postings.len() as u32);
        for &n in self.posting_ends.iter().chain(&self.postings) {
            w.u32(n);
        }
        self.titles.encode(&mut w);
        w.0
    }

    /// Reads what [`SearchIndex::encode`] wrote, checked so that no lookup can go out of bounds.
    pub fn decode(bytes: &[u8]) -> Result<Self, CatalogError> {
        let mut r = Reader::new(bytes, MAGIC)?;
        let words = Texts::decode(&mut r, "index words do not match their ends")?;
        let total = r.u32()? as usize;
        let posting_ends = r.words(words.len())?;
        let postings = r.words(total)?;
        let titles = Texts::decode(&mut r, "index titles do not match their ends")?;
        r.end()?;
        let ordered = posting_ends.windows(2).all(|w| w[0] <= w[1])
            && posting_ends.last().map_or(0, |&e| e as usize) == postings.len();
        if !ordered || postings.iter().any(|&p| (p >> 1) as usize >= titles.len()) {
            return Err(CatalogError::Embedded("index postings out of bounds"));
        }
        Ok(Self {
            words,
            posting_ends,
            postings,
            titles,
        })
    }

    /// Positions of the books matching every word of `query`, best first; `books` are the
    /// indexed ones, for the tie-breaks.
    pub fn search(&self, query: &str, books: &[Book]) -> Vec<u32> {
        let q: Vec<String> = words(query).take(MAX_QUERY_WORDS).collect();
        if q.is_empty() {
            return Vec::new();
        }
        let mut total: Option<HashMap<u32, f32>> = None;
        for w in &q {
            let scores = self.word_scores(w);
            total = Some(match total {
                None => scores,
                Some(acc) => acc
                    .into_iter()
                    .filter_map(|(doc, s)| scores.get(&doc).map(|t| (doc, s + t)))
                    .collect(),
            });
            if total.as_ref().is_some_and(HashMap::is_empty) {
                return Vec::new();
            }
        }
        let phrase = q.join(" ");
        let mut ranked: Vec<(u32, f32)> = total
            .unwrap_or_default()
            .into_iter()
            .map(|(doc, mut s)| {
                let title = self.titles.get(doc as usize);
                if title == phrase {
                    s += WHOLE_TITLE_BONUS;
                } else if title.starts_with(&phrase) {
                    s += TITLE_STARTS_BONUS;
                }
                (doc, s)
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then(
                    books[b.0 as usize]
                        .ratings_count
                        .cmp(&books[a.0 as usize].ratings_count),
                )
                .then(books[a.0 as usize].id.cmp(&books[b.0 as usize].id))
        });
        ranked.into_iter().map(|(doc, _)| doc).collect()
    }

    /// The best score each book gets for one query word.
    fn word_scores(&self, w: &str) -> HashMap<u32, f32> {
        let mut out: HashMap<u32, f32> = HashMap::new();
        let start = partition_point(self.words.len(), |i| self.words.get(i) < w);
        let prefix = w.chars().count() >= 3;
        for i in start..self.words.len() {
            let key = self.words.get(i);
            let exact = key == w;
            if !exact && (!prefix || !key.starts_with(w)) {
                break;
            }
            let from = match i {
                0 => 0,
                i => self.posting_ends[i - 1] as usize,
            };
            for &p in &self.postings[from..self.posting_ends[i] as usize] {
                let s = match (exact, p & IN_AUTHORS == 0) {
                    (true, true) => TITLE_EXACT,
                    (true, false) => AUTHOR_EXACT,
                    (false, true) => TITLE_PREFIX,
                    (false, false) => AUTHOR_PREFIX,
                };
                let e = out.entry(p >> 1).or_insert(0.0);
                if s > *e {
                    *e = s;
                }
            }
        }
        out
    }
}

/// Adds `posting` to `word`'s list unless it is there already (a book's postings arrive together,
/// so only the tail can hold it).
fn add(map: &mut HashMap<String, Vec<u32>>, word: String, posting: u32) {
    let list = map.entry(word).or_default();
    if !list[list.len().saturating_sub(2)..].contains(&posting) {
        list.push(posting);
    }
}

/// The first `i` in `0..n` for which `before(i)` is false (`before` is true, then false).
fn partition_point(n: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
