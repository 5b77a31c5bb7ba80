//! `weft build`: a workflow crate, or a Python workflow project, into a component.

use std::path::{Path, PathBuf};

use weft_guest_build::{Profile, python};

pub fn build(
    path: &Path,
    out: Option<PathBuf>,
    debug: bool,
    target_dir: Option<PathBuf>,
) -> anyhow::Result<u8> {
    // A crate with a pyproject.toml of its own (ruff settings, maturin) is still a crate.
    if !path.join("Cargo.toml").is_file() && python::detect(path)?.is_some() {
        if debug {
            anyhow::bail!(
                "--debug is for Rust workflows; a Python workflow's tracebacks name file:line already"
            );
        }
        return build_python(path, out);
    }
    let toolchain = weft_guest_build::find_toolchain()?;
    eprintln!("building with {}", toolchain.describe());
    let (profile, default_out) = if debug {
        (
            Profile::Debug,
            path.join("target").join("components").join("debug"),
        )
    } else {
        (Profile::Release, path.join("target").join("components"))
    };
    let out = out.unwrap_or(default_out);
    let built = weft_guest_build::build_with(
        &toolchain,
        path,
        &target_dir.unwrap_or_else(|| path.join("target").join("weft-guests")),
        &out,
        profile,
    )?;
    for guest in built {
        println!("{}", guest.component.display());
    }
    Ok(0)
}

/// A Python project (a `pyproject.toml` with `[tool.weft] workflow`, or an `app.py`):
/// componentize-py, cached by source, then copied to `OUT/NAME.wasm`.
fn build_python(path: &Path, out: Option<PathBuf>) -> anyhow::Result<u8> {
    let componentize_py = python::find_componentize_py()?;
    eprintln!(
        "building with componentize-py {} ({})",
        python::COMPONENTIZE_PY_VERSION,
        componentize_py.display()
    );
    let site_packages = python::project_site_packages(path);
    let python_path: Vec<&Path> = site_packages.iter().map(PathBuf::as_path).collect();
    let cache = python::cache_dir().join("python-builds");
    let built = python::build_python(&componentize_py, path, &python_path, &cache)?;
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let name = absolute
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("workflow");
    let out = out.unwrap_or_else(|| path.join("build"));
    std::fs::create_dir_all(&out)?;
    let component = out.join(format!("{name}.wasm"));
    std::fs::copy(&built, &component)?;
    println!("{}", component.display());
    Ok(0)
}
