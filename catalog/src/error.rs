//! Why the catalog could not be loaded: the one error of the crate, at the bottom so that the
//! record, wire, digest and search files all point down to it. Shared with `build.rs`.

/// Why the catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("reading the catalog file: {0}")]
    Io(#[from] std::io::Error),
    #[error("catalog row {row}: {source}")]
    Csv { row: usize, source: csv::Error },
    #[error("catalog row {row}: {message}")]
    Invalid { row: usize, message: String },
    #[error("the catalog has no books")]
    Empty,
    /// Only a broken build can cause it: the embedded forms (packed books, search index,
    /// digest) are written by `build.rs`.
    #[error("the catalog's embedded data is malformed: {0}")]
    Embedded(&'static str),
}
