//! The Python package (`python/`) against the real `weft` binary: its pytest suite starts
//! servers of this build on fresh SQLite files and runs Python workers and clients on them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `WEFT_PYTHON`, else the virtual environment `.ci/run` makes in `python/.venv`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("WEFT_PYTHON") {
        return PathBuf::from(p);
    }
    repo().join("python/.venv/bin/python")
}

#[test]
fn the_python_package_passes_its_tests_against_this_build() {
    let python = python();
    let setup = "python3 -m venv python/.venv && python/.venv/bin/pip install -e './python[test,ml]' \
                 (.ci/run does this; WEFT_PYTHON names another interpreter)";
    let ready = Command::new(&python)
        .args(["-c", "import weft, pytest, grpc_tools, sklearn, pydantic"])
        .output();
    match ready {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{} cannot import the package and its test extras: {}\nset it up: {setup}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("no Python at {}: {e}\nset it up: {setup}", python.display()),
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
