//! The book catalog shipped with the project: the goodbooks-10k `books.csv` (CC BY-SA 4.0, see
//! `data/LICENSE.md`), cleaned into plain records ([`Book`]) for the marketplace, and a compact
//! [`Digest`] (ids, titles, authors, star histograms) for services that need no more of it.
#![forbid(unsafe_code)]

mod digest;
mod record;

use std::path::Path;

pub use digest::Digest;
pub use record::{Book, CatalogError, parse, sort_by_popularity};

/// The goodbooks-10k `books.csv`, built into the binaries that use it (CC BY-SA 4.0, see
/// `data/LICENSE.md`).
pub const BUILTIN_CSV: &[u8] = include_bytes!("../data/books.csv");

/// The digest of [`BUILTIN_CSV`], cleaned and encoded by `build.rs`: a binary that needs only the
/// digest embeds these ~0.95 MB instead of the 3.3 MB CSV, and decodes them instead of parsing.
const BUILTIN_DIGEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/digest.bin"));

/// Every built-in book, cleaned, most popular first.
pub fn builtin_books() -> Result<Vec<Book>, CatalogError> {
    parse(BUILTIN_CSV)
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
