//! The guest components the tests and benchmarks run, named by constants, and the golden
//! histories recorded from them.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

use std::path::PathBuf;

/// Reads a component built by `build.rs`.
pub fn component(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading component {path}: {e}"))
}

/// `tests/histories/`: golden histories replayed in CI.
pub fn histories_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("histories")
}
