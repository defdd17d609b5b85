//! What the recommendations benchmarks share: finding the release binaries they start.

use std::path::{Path, PathBuf};

/// A benchmark's error: anything, with its message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// `target/` and `target/<profile>/`, from this executable's path (`target/release/deps/…`).
pub fn target_dirs() -> Result<(PathBuf, PathBuf), Error> {
    let exe = std::env::current_exe()?;
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?
        .to_path_buf();
    let target = profile
        .parent()
        .ok_or("cannot locate the target directory")?
        .to_path_buf();
    Ok((target, profile))
}
