//! The Python package (`python/`) against the real `weft` binary: its pytest suite starts
//! servers of this build on fresh SQLite files and runs Python workers and clients on them.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{PYTHON_SETUP, python};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_python_package_passes_its_tests_against_this_build() {
    let python = python();
    let ready = Command::new(&python)
        .args([
            "-c",
            "import weft, pytest, grpc_tools, sklearn, pydantic, opentelemetry.sdk",
        ])
        .output();
    match ready {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{} cannot import the package and its test extras: {}\nset it up: {PYTHON_SETUP}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "no Python at {}: {e}\nset it up: {PYTHON_SETUP}",
            python.display()
        ),
    }
    let components = Path::new(weft_tests::HELLO_ACTIVITY)
        .parent()
        .expect("components live in a folder");
    let out = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "python/tests",
        ])
        .current_dir(repo())
        .env("WEFT_BIN", env!("CARGO_BIN_EXE_weft"))
        .env("WEFT_COMPONENTS", components)
        .output()
        .expect("pytest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "pytest failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every test ran: none skipped, none deselected.
    assert!(
        !stdout.contains("skipped") && stdout.contains(" passed"),
        "{stdout}"
    );
}
