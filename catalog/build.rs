//! Cleans `data/books.csv` once, at build time, with the very code the library uses, into what the
//! binaries embed instead of the CSV: the records packed, their search index, and the digest (ids,
//! titles, authors, star histograms) for binaries that need no more of the catalog.

// The library's own files, compiled here too; this script uses only part of them.
#![allow(dead_code)]

#[path = "src/digest.rs"]
mod digest;
#[path = "src/error.rs"]
mod error;
#[path = "src/record.rs"]
mod record;
#[path = "src/search.rs"]
mod search;
#[path = "src/wire.rs"]
mod wire;

fn main() {
    for input in [
        "data/books.csv",
        "src/record.rs",
        "src/digest.rs",
        "src/error.rs",
        "src/search.rs",
        "src/wire.rs",
    ] {
        println!("cargo::rerun-if-changed={input}");
    }
    let csv = std::fs::read("data/books.csv").expect("reading data/books.csv");
    let books = record::parse(&csv).unwrap_or_else(|e| panic!("data/books.csv: {e}"));
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let write = |name: &str, bytes: Vec<u8>| {
        std::fs::write(out.join(name), bytes).unwrap_or_else(|e| panic!("writing {name}: {e}"))
    };
    write("books.bin", record::pack(&books));
    write("search.bin", search::SearchIndex::build(&books).encode());
    write("digest.bin", digest::Digest::from_books(&books).encode());
}
