//! `weft build`: a workflow crate into a component.

use std::path::{Path, PathBuf};

use weft_guest_build::Profile;

pub fn build(
    path: &Path,
    out: Option<PathBuf>,
    debug: bool,
    target_dir: Option<PathBuf>,
) -> anyhow::Result<u8> {
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
