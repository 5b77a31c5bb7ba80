//! Compiles `proto/weft/v1/weft.proto` with protox (pure Rust: no `protoc` to install) and
//! generates the tonic services and a file descriptor set for server reflection.

fn main() {
    // Read when the script runs, not baked in when it is compiled: cargo reuses one build
    // script for two checkouts of the same crate sharing a target directory.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo");
    let root = std::path::Path::new(&manifest_dir).join("../../proto");
    let proto = root.join("weft/v1/weft.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let fds = protox::compile([&proto], [&root]).expect("proto/weft/v1/weft.proto compiles");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(
        out.join("weft_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )
    .expect("write descriptor set");
    tonic_prost_build::configure()
        .compile_fds(fds)
        .expect("generate the gRPC code");
}
