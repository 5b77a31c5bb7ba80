//! `weft build`: a workflow crate into a component.

use std::path::{Path, PathBuf};

pub fn build(path: &Path, out: Option<PathBuf>) -> anyhow::Result<u8> {
    let toolchain = weft_guest_build::find_toolchain()?;
    eprintln!("building with {}", toolchain.describe());
    let out = out.unwrap_or_else(|| path.join("target").join("components"));
    let built = weft_guest_build::build(
        &toolchain,
        path,
        &path.join("target").join("weft-guests"),
        &out,
    )?;
    for guest in built {
        println!("{}", guest.component.display());
    }
    Ok(0)
}
