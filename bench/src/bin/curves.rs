//! `make bench-curves`: see `bench::curves`. Writes target/bench/curves.md and
//! docs/performance-curves.svg.
#![forbid(unsafe_code)]

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let bins = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
        .expect("the folder of the release binaries");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scratch = std::env::temp_dir().join(format!("bookstore-curves-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("a scratch folder");
    let (report, chart) =
        bench::curves::run(&bins, &scratch, std::time::Duration::from_secs(seconds));
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("curves.md"), &report).expect("the report");
    std::fs::write(root.join("docs/performance-curves.svg"), chart).expect("the chart");
    let _ = std::fs::remove_dir_all(&scratch);
    println!("{report}");
}
