//! The book catalog shipped with the project: the goodbooks-10k `books.csv` (CC BY-SA 4.0, see
//! `data/LICENSE.md`), cleaned into plain records ([`Book`]) with a word [`SearchIndex`] for the
//! marketplace, and a compact [`Digest`] (ids, titles, authors, star histograms) for services
//! that need no more of it.
//!
//! The built-in CSV is cleaned and indexed once, by `build.rs`; binaries embed the results and
//! decode them at start (a few milliseconds) instead of parsing and indexing (tens of them).
#![forbid(unsafe_code)]

mod digest;
mod error;
mod record;
pub mod search;
mod wire;

use std::path::Path;

pub use digest::Digest;
pub use error::CatalogError;
pub use record::{Book, pack, parse, sort_by_popularity, unpack};
pub use search::SearchIndex;

/// The goodbooks-10k `books.csv` the built-in catalog is made of (CC BY-SA 4.0, see
/// `data/LICENSE.md`). Binaries embed what `build.rs` made of it, not the CSV itself.
pub const BUILTIN_CSV: &[u8] = include_bytes!("../data/books.csv");

/// [`BUILTIN_CSV`]'s books, cleaned, sorted and checked by `build.rs`, then [`pack`]ed.
const BUILTIN_BOOKS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/books.bin"));

/// The search index of [`BUILTIN_BOOKS`], in their order, encoded by `build.rs`.
const BUILTIN_SEARCH: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/search.bin"));

/// The digest of [`BUILTIN_CSV`], cleaned and encoded by `build.rs`: a binary that needs only the
/// digest embeds these ~0.95 MB instead of the 3.3 MB CSV, and decodes them instead of parsing.
const BUILTIN_DIGEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/digest.bin"));

/// Every built-in book, cleaned, most popular first (most ratings, ties by id), each id once.
pub fn builtin_books() -> Result<Vec<Book>, CatalogError> {
    unpack(BUILTIN_BOOKS)
}

impl SearchIndex {
    /// The index of [`builtin_books`], in their order.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::decode(BUILTIN_SEARCH)
    }
}

/// The books of the file at `path` when given, the built-in ones otherwise; most popular first.
pub fn load_books(path: Option<&Path>) -> Result<Vec<Book>, CatalogError> {
    match path {
        Some(p) => parse(&std::fs::read(p)?),
        None => builtin_books(),
    }
}

impl Digest {
    /// The digest of the built-in books.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::decode(BUILTIN_DIGEST)
    }

    /// The digest of the file at `path` when given (parsed, then only the digest kept), the
    /// built-in one otherwise.
    pub fn load(path: Option<&Path>) -> Result<Self, CatalogError> {
        match path {
            Some(p) => Ok(Self::from_books(&parse(&std::fs::read(p)?)?)),
            None => Self::builtin(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_books_and_index_are_what_the_csv_gives() {
        let books = parse(BUILTIN_CSV).unwrap();
        assert_eq!(builtin_books().unwrap(), books);
        let index = SearchIndex::builtin().unwrap();
        assert_eq!(index, SearchIndex::build(&books));
        assert_eq!(index.len(), 10_000);
        assert_eq!(index.search("hunger games", &books)[0], 0);
    }

    #[test]
    fn packed_books_and_an_encoded_index_read_back_the_same_and_refuse_damage() {
        let mut books = parse(BUILTIN_CSV).unwrap();
        books.truncate(50);
        books[3].original_publication_year = None;
        books[4].authors.clear();
        let packed = pack(&books);
        assert_eq!(unpack(&packed).unwrap(), books);
        assert!(unpack(&packed[..packed.len() - 1]).is_err());
        assert!(unpack(&[packed.as_slice(), b"x"].concat()).is_err());
        let index = SearchIndex::build(&books);
        let bytes = index.encode();
        assert_eq!(SearchIndex::decode(&bytes).unwrap(), index);
        assert!(SearchIndex::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(SearchIndex::decode(b"not an index").is_err());
        // The first posting names a book past the last one.
        let mut bad = bytes.clone();
        let words = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let text = u32::from_le_bytes(bytes[8 + 4 * words..12 + 4 * words].try_into().unwrap());
        let first_posting = 12 + 4 * words + text as usize + 4 + 4 * words;
        bad[first_posting..first_posting + 4].copy_from_slice(&(50u32 << 1).to_le_bytes());
        assert_eq!(
            SearchIndex::decode(&bad).unwrap_err().to_string(),
            "the catalog's embedded data is malformed: index postings out of bounds"
        );
    }

    #[test]
    fn the_builtin_digest_is_the_digest_of_the_builtin_books() {
        let books = builtin_books().unwrap();
        let digest = Digest::builtin().unwrap();
        assert_eq!(digest, Digest::from_books(&books));
        assert_eq!(digest.len(), 10_000);
        for (i, b) in books.iter().enumerate().step_by(997) {
            assert_eq!(digest.id(i), b.id);
            assert_eq!(digest.title(i), b.title);
            assert_eq!(digest.authors(i).collect::<Vec<_>>(), b.authors);
            assert_eq!(digest.position(b.id), Some(i));
            assert_eq!(digest.ratings_count(i) as i64, b.ratings_count);
            assert_eq!(digest.histogram(i).map(i64::from), b.rating_histogram);
        }
        assert_eq!(
            digest.title_of(1),
            Some("The Hunger Games (The Hunger Games, #1)")
        );
        let hp = digest.position(2).unwrap();
        assert_eq!(
            digest.authors(hp).collect::<Vec<_>>(),
            ["J.K. Rowling", "Mary GrandPré"]
        );
        assert_eq!(digest.position(0), None);
        assert_eq!(digest.position(10_001), None);
    }

    #[test]
    fn the_digest_holds_under_a_third_of_the_csv() {
        // Ids, titles, authors and histograms: about 0.95 MB of the CSV's 3.3 MB.
        let digest = Digest::builtin().unwrap();
        assert!(
            digest.heap_bytes() < BUILTIN_CSV.len() / 3,
            "{} bytes",
            digest.heap_bytes()
        );
    }

    #[test]
    fn a_truncated_or_foreign_digest_is_refused() {
        let bytes = Digest::builtin().unwrap().encode();
        assert!(Digest::decode(&bytes[..bytes.len() / 2]).is_err());
        assert!(Digest::decode(b"not a digest").is_err());
        assert!(Digest::decode(&bytes).is_ok());
    }

    #[test]
    fn author_ends_out_of_order_or_inside_a_character_are_refused() {
        let digest = Digest::builtin().unwrap();
        let bytes = digest.encode();
        let n = digest.len();
        // Magic, count, then ids (8 bytes each), ratings counts, histograms (20), title ends.
        let author_ends = 8 + 4 + n * (8 + 4 + 20 + 4);
        let end = |bytes: &[u8], p: usize| {
            let at = author_ends + p * 4;
            u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
        };
        let with_end = |p: usize, value: u32| {
            let mut b = bytes.clone();
            let at = author_ends + p * 4;
            b[at..at + 4].copy_from_slice(&value.to_le_bytes());
            b
        };
        // Harry Potter's authors end with "GrandPré": one byte less cuts the "é" in two.
        let hp = digest.position(2).unwrap();
        assert!(Digest::decode(&with_end(hp, end(&bytes, hp) - 1)).is_err());
        // The first book's authors ending after the second's.
        assert!(Digest::decode(&with_end(0, end(&bytes, 1) + 1)).is_err());
        assert_eq!(
            Digest::decode(&with_end(hp, end(&bytes, hp))).unwrap(),
            digest
        );
    }

    #[test]
    fn a_custom_file_gives_its_own_digest() {
        let dir = std::env::temp_dir().join(format!("catalog-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("books.csv");
        std::fs::write(
            &path,
            "book_id,isbn,isbn13,authors,original_publication_year,original_title,title,language_code,average_rating,work_ratings_count,ratings_1,ratings_2,ratings_3,ratings_4,ratings_5,image_url,small_image_url\n\
             5,,,A,,,Less read,eng,4,3,0,0,1,1,1,,\n\
             9,,,\"B. Bé,  C ,\",,,Más leído,spa,4,9,0,0,0,0,9,,\n\
             7,,,,,,Anonymous,eng,4,1,0,0,0,0,1,,\n",
        )
        .unwrap();
        let digest = Digest::load(Some(&path)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(digest.ids(), &[9, 5, 7]);
        assert_eq!(digest.title_of(9), Some("Más leído"));
        assert_eq!(digest.histogram(1), [0, 0, 1, 1, 1]);
        assert_eq!(digest.authors(0).collect::<Vec<_>>(), ["B. Bé", "C"]);
        assert_eq!(digest.authors(1).collect::<Vec<_>>(), ["A"]);
        assert_eq!(digest.authors(2).count(), 0);
        // What it encodes decodes to the same digest.
        assert_eq!(Digest::decode(&digest.encode()).unwrap(), digest);
    }
}
