//! The guest components the tests and benchmarks run, named by constants, and the golden
//! histories recorded from them.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

#[cfg(feature = "otlp")]
pub mod otlp;

use std::path::PathBuf;

/// Reads a component built by `build.rs`.
pub fn component(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading component {path}: {e}"))
}

/// `tests/histories/`: golden histories replayed in CI.
pub fn histories_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("histories")
}

/// A component that imports `import` (an interface with a `now` function) and exports a
/// well-typed `run`, as a compiler targeting WASI would produce.
pub fn component_importing(import: &str) -> Vec<u8> {
    let wat = format!(
        r#"(component
            (import "{import}" (instance $clock (export "now" (func (result u64)))))
            {RUN_EXPORT}
        )"#
    );
    wat::parse_str(wat).expect("valid WAT")
}

/// A `run` export with the right signature (its body is never called).
pub const RUN_EXPORT: &str = r#"
    (core module $m
        (memory (export "memory") 1)
        (func (export "run") (param i32 i32) (result i32) unreachable)
        (func (export "realloc") (param i32 i32 i32 i32) (result i32) unreachable))
    (core instance $i (instantiate $m))
    (type $error (record (field "kind" string) (field "message" string) (field "attempts" u32)))
    (export $error-info "error-info" (type $error))
    (func (export "run") (param "input" (list u8)) (result (result (list u8) (error $error-info)))
        (canon lift (core func $i "run") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
"#;
