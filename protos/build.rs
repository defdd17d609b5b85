//! Compiles the `.proto` contracts with `protox` (pure Rust), so a fresh machine needs only cargo.
//! The file descriptor set is also written out for the servers' reflection service.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "bookstore/marketplace/v1/marketplace.proto",
    "bookstore/recommendations/v1/recommendations.proto",
    "bookstore/users/v1/users.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(
        out_dir.join("bookstore_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Smaller per-call buffers than tonic's default (see src/codec.rs).
        .codec_path("crate::codec::Proto")
        .compile_fds(fds)?;
    Ok(())
}
