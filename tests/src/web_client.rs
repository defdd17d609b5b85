//! The gRPC-Web client generated from `protos/` (protoc-gen-es through buf, bundled by esbuild)
//! that the Node and browser tests call: `npm run build` in `tests/browser`, once per test binary.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

/// The folder of the npm packages, the generated client and its callers.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Generates the client (once per process); `Err` says why it cannot be (the npm packages are
/// not installed). A generation that fails is a test failure, not a skip.
pub fn generated() -> Result<PathBuf, String> {
    static BUILT: Mutex<Option<Result<(), String>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = dir();
    built
        .get_or_insert_with(|| {
            if !dir.join("node_modules/@connectrpc/connect-web").is_dir() {
                return Err(
                    "the npm packages are not installed (npm ci --prefix tests/browser)".into(),
                );
            }
            let out = std::process::Command::new("npm")
                .args(["run", "--silent", "build"])
                .current_dir(&dir)
                .output()
                .map_err(|e| format!("npm did not run: {e}"))?;
            assert!(
                out.status.success(),
                "npm run build (generating the gRPC-Web client) failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(())
        })
        .clone()
        .map(|()| dir)
}
