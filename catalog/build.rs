//! Cleans `data/books.csv` into the digest (ids, titles, authors, star histograms) that binaries needing no
//! more of the catalog embed instead of the CSV, with the very code the library uses.

// The library's own files, compiled here too; this script uses only part of them.
#![allow(dead_code)]

#[path = "src/digest.rs"]
mod digest;
#[path = "src/record.rs"]
mod record;

fn main() {
    for input in ["data/books.csv", "src/record.rs", "src/digest.rs"] {
        println!("cargo::rerun-if-changed={input}");
    }
    let csv = std::fs::read("data/books.csv").expect("reading data/books.csv");
    let books = record::parse(&csv).unwrap_or_else(|e| panic!("data/books.csv: {e}"));
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(
        out.join("digest.bin"),
        digest::Digest::from_books(&books).encode(),
    )
    .expect("writing the digest");
}
