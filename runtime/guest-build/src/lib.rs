//! Builds workflow crates into Wasm components.
//!
//! 1. Find a wasm32 toolchain ([`find_toolchain`]): the active Rust toolchain when it has the
//!    `wasm32-unknown-unknown` target; else `rustup target add` it (60 s at most); else the
//!    Debian packages `rustc-web cargo-web rust-web-src lld-19` with `-Zbuild-std`; else stop
//!    with an error that says how to install either.
//! 2. `cargo build --release --target wasm32-unknown-unknown` the crate or workspace (cargo's
//!    own fingerprints make an unchanged guest a no-op).
//! 3. Wrap each core module into a component with `wit-component`, skipping the wrap when the
//!    core module's SHA-256 is the one wrapped last time.
//!
//! Used by the tests' `build.rs` and by `weft build`. Python projects: [`python`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub mod python;

/// The Rust target guests compile to.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Set to `installed` or `debian-fallback` to force a toolchain.
pub const TOOLCHAIN_ENV: &str = "WEFT_GUEST_TOOLCHAIN";
const RUSTUP_ADD_TIMEOUT: Duration = Duration::from_secs(60);
const FALLBACK_CARGO: &str = "/usr/bin/cargo";
const FALLBACK_RUSTC: &str = "/usr/bin/rustc";
const FALLBACK_LINKER: &str = "wasm-ld-19";

const HOW_TO_INSTALL: &str = "install a wasm32 toolchain: `rustup target add wasm32-unknown-unknown`, \
or on Debian without network access to rustup: `apt-get install rustc-web cargo-web rust-web-src lld-19`";

/// Why a guest could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no wasm32 toolchain found ({tried}); {HOW_TO_INSTALL}")]
    NoToolchain { tried: String },
    #[error("`{command}` failed ({status}):\n{output}")]
    CargoFailed {
        command: String,
        status: String,
        output: String,
    },
    #[error(
        "`{path}` has no cdylib crate to build; a workflow crate needs `crate-type = [\"cdylib\"]`"
    )]
    NothingToBuild { path: PathBuf },
    #[error("cannot read cargo metadata of `{path}`: {reason}")]
    Metadata { path: PathBuf, reason: String },
    #[error(
        "cannot wrap `{core}` into a component: {reason}; does the crate use weft-sdk's `workflow!`?"
    )]
    Componentize { core: PathBuf, reason: String },
    #[error("cannot build the Python workflow in `{project}`: {reason}")]
    Python { project: PathBuf, reason: String },
    #[error("{what} `{path}`: {error}")]
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
}

/// How guests get compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Toolchain {
    /// A toolchain whose standard library includes wasm32 (rustup's, usually).
    Installed { cargo: PathBuf },
    /// Debian's `rustc-web`/`cargo-web` building std from `rust-web-src`, linked by `wasm-ld-19`.
    DebianFallback,
}

impl Toolchain {
    /// A short name for messages.
    pub fn describe(&self) -> String {
        match self {
            Toolchain::Installed { cargo } => {
                format!("installed wasm32 target ({})", cargo.display())
            }
            Toolchain::DebianFallback => {
                format!("Debian fallback ({FALLBACK_CARGO}, -Zbuild-std, {FALLBACK_LINKER})")
            }
        }
    }
}

/// How guests are compiled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// Cargo's release profile: what runs in production.
    #[default]
    Release,
    /// Cargo's dev profile with full DWARF kept in the component: guest stacks name
    /// `file:line` (`weft build --debug`, for `weft replay --until` and `--break-on`).
    Debug,
}

/// A built component.
#[derive(Clone, Debug)]
pub struct BuiltGuest {
    /// Cargo package name, e.g. `hello-activity`.
    pub package: String,
    /// Path of the component file.
    pub component: PathBuf,
}

/// Environment a nested cargo must not inherit from the cargo that runs a build script.
fn scrub(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let keep = key == "CARGO_HOME"
            || key.starts_with("CARGO_NET_")
            || key.starts_with("CARGO_HTTP_")
            || key.starts_with("CARGO_REGISTRIES_");
        let drop = (key.starts_with("CARGO_") && !keep)
            || matches!(
                key,
                "RUSTC"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
            );
        if drop {
            cmd.env_remove(key);
        }
    }
}

fn run_quiet(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn installed_cargo() -> PathBuf {
    // In a build script, `CARGO` is the cargo of the outer build: same toolchain.
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

fn has_wasm_std() -> bool {
    let mut cmd = Command::new("rustc");
    scrub(&mut cmd);
    run_quiet(cmd.args(["--print", "sysroot"]))
        .map(|sysroot| {
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(WASM_TARGET)
                .join("lib")
                .is_dir()
        })
        .unwrap_or(false)
}

fn rustup_add_target() -> Result<(), String> {
    let mut cmd = Command::new("rustup");
    scrub(&mut cmd);
    let mut child = cmd
        .args(["target", "add", WASM_TARGET])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("rustup not usable: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("`rustup target add` failed ({status})")),
            Ok(None) if started.elapsed() > RUSTUP_ADD_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`rustup target add` took over {}s",
                    RUSTUP_ADD_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(format!("waiting for rustup: {e}")),
        }
    }
}

fn debian_fallback_present() -> Result<(), String> {
    for bin in [FALLBACK_CARGO, FALLBACK_RUSTC] {
        if !Path::new(bin).exists() {
            return Err(format!("{bin} missing"));
        }
    }
    let sysroot = run_quiet(Command::new(FALLBACK_RUSTC).args(["--print", "sysroot"]))
        .ok_or_else(|| format!("{FALLBACK_RUSTC} does not run"))?;
    let src = Path::new(&sysroot).join("lib/rustlib/src/rust/library/std");
    if !src.is_dir() {
        return Err(format!("{} missing (rust-web-src)", src.display()));
    }
    if run_quiet(Command::new(FALLBACK_LINKER).arg("--version")).is_none() {
        return Err(format!("{FALLBACK_LINKER} missing (lld-19)"));
    }
    Ok(())
}

/// Finds the toolchain to build guests with, installing the rustup target if that is all
/// that is missing.
pub fn find_toolchain() -> Result<Toolchain, BuildError> {
    let forced = std::env::var(TOOLCHAIN_ENV).unwrap_or_default();
    let fallback = || {
        debian_fallback_present()
            .map(|()| Toolchain::DebianFallback)
            .map_err(|e| format!("Debian fallback: {e}"))
    };
    match forced.as_str() {
        "debian-fallback" => {
            return fallback().map_err(|tried| BuildError::NoToolchain { tried });
        }
        "installed" => {
            return if has_wasm_std() {
                Ok(Toolchain::Installed {
                    cargo: installed_cargo(),
                })
            } else {
                Err(BuildError::NoToolchain {
                    tried: format!(
                        "{TOOLCHAIN_ENV}=installed but the active toolchain has no {WASM_TARGET} std"
                    ),
                })
            };
        }
        _ => {}
    }
    if has_wasm_std() {
        return Ok(Toolchain::Installed {
            cargo: installed_cargo(),
        });
    }
    let rustup = match rustup_add_target() {
        Ok(()) if has_wasm_std() => {
            return Ok(Toolchain::Installed {
                cargo: installed_cargo(),
            });
        }
        Ok(()) => "rustup added the target but rustc still lacks it".to_owned(),
        Err(e) => e,
    };
    fallback().map_err(|fallback| BuildError::NoToolchain {
        tried: format!("{rustup}; {fallback}"),
    })
}

/// The cdylib targets of the crate or workspace at `manifest_dir`: (package, lib file stem).
fn cdylib_targets(cargo: &Path, manifest_dir: &Path) -> Result<Vec<(String, String)>, BuildError> {
    let metadata_err = |reason: String| BuildError::Metadata {
        path: manifest_dir.to_owned(),
        reason,
    };
    let mut cmd = Command::new(cargo);
    scrub(&mut cmd);
    let out = cmd
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(manifest_dir)
        .output()
        .map_err(|e| metadata_err(e.to_string()))?;
    if !out.status.success() {
        return Err(metadata_err(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| metadata_err(e.to_string()))?;
    // A package inside a workspace: only that one (cargo metadata lists the whole workspace).
    let own_manifest = std::fs::canonicalize(manifest_dir.join("Cargo.toml")).ok();
    let packages: Vec<&serde_json::Value> =
        meta["packages"].as_array().into_iter().flatten().collect();
    let only = packages.iter().find(|p| {
        p["manifest_path"]
            .as_str()
            .and_then(|m| std::fs::canonicalize(m).ok())
            .is_some_and(|m| Some(m) == own_manifest)
    });
    let mut found = Vec::new();
    for package in only.map_or(packages.clone(), |p| vec![*p]) {
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_cdylib = target["crate_types"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "cdylib"));
            if let (true, Some(pkg), Some(name)) =
                (is_cdylib, package["name"].as_str(), target["name"].as_str())
            {
                found.push((pkg.to_owned(), name.replace('-', "_")));
            }
        }
    }
    if found.is_empty() {
        return Err(BuildError::NothingToBuild {
            path: manifest_dir.to_owned(),
        });
    }
    Ok(found)
}

/// Builds every workflow crate at `manifest_dir` (a crate or a workspace) and writes one
/// component per crate to `out_dir/<package>.wasm`. `target_dir` holds cargo's build files.
pub fn build(
    toolchain: &Toolchain,
    manifest_dir: &Path,
    target_dir: &Path,
    out_dir: &Path,
) -> Result<Vec<BuiltGuest>, BuildError> {
    build_with(
        toolchain,
        manifest_dir,
        target_dir,
        out_dir,
        Profile::Release,
    )
}

/// [`build`] with the given profile.
pub fn build_with(
    toolchain: &Toolchain,
    manifest_dir: &Path,
    target_dir: &Path,
    out_dir: &Path,
    profile: Profile,
) -> Result<Vec<BuiltGuest>, BuildError> {
    // Cargo runs in `manifest_dir`: relative paths would resolve from there.
    let absolute = |p: &Path| -> Result<PathBuf, BuildError> {
        std::path::absolute(p).map_err(|e| BuildError::Io {
            what: "cannot resolve",
            path: p.to_owned(),
            error: e,
        })
    };
    let (target_dir, out_dir) = (absolute(target_dir)?, absolute(out_dir)?);
    let out_dir = out_dir.as_path();
    let cargo = match toolchain {
        Toolchain::Installed { cargo } => cargo.clone(),
        Toolchain::DebianFallback => PathBuf::from(FALLBACK_CARGO),
    };
    let targets = cdylib_targets(&cargo, manifest_dir)?;
    let mut cmd = Command::new(&cargo);
    scrub(&mut cmd);
    let target_dir = match toolchain {
        Toolchain::Installed { .. } => target_dir.join("installed"),
        Toolchain::DebianFallback => {
            cmd.env("RUSTC", FALLBACK_RUSTC)
                .env("RUSTC_BOOTSTRAP", "1")
                .args(["-Zbuild-std=std,panic_abort", "--config"])
                .arg(format!("target.{WASM_TARGET}.linker=\"{FALLBACK_LINKER}\""));
            target_dir.join("debian-fallback")
        }
    };
    cmd.arg("build");
    let profile_dir = match profile {
        Profile::Release => {
            cmd.arg("--release");
            "release"
        }
        Profile::Debug => {
            // Whatever the crate's own dev profile says: DWARF in, nothing stripped.
            cmd.args([
                "--config",
                "profile.dev.debug=true",
                "--config",
                "profile.dev.strip=false",
            ]);
            "debug"
        }
    };
    cmd.args(["--target", WASM_TARGET, "--target-dir"])
        .arg(&target_dir)
        .current_dir(manifest_dir);
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| BuildError::Io {
        what: "cannot run",
        path: cargo.clone(),
        error: e,
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        return Err(BuildError::CargoFailed {
            command,
            status: out.status.to_string(),
            output: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    std::fs::create_dir_all(out_dir).map_err(|e| BuildError::Io {
        what: "cannot create",
        path: out_dir.to_owned(),
        error: e,
    })?;
    let built = target_dir.join(WASM_TARGET).join(profile_dir);
    targets
        .into_iter()
        .map(|(package, stem)| {
            let core = built.join(format!("{stem}.wasm"));
            let component = out_dir.join(format!("{package}.wasm"));
            componentize_cached(&core, &component)?;
            Ok(BuiltGuest { package, component })
        })
        .collect()
}

/// Wraps `core` into `component`, unless `component` was made from these exact bytes.
fn componentize_cached(core: &Path, component: &Path) -> Result<(), BuildError> {
    let bytes = std::fs::read(core).map_err(|e| BuildError::Io {
        what: "cannot read",
        path: core.to_owned(),
        error: e,
    })?;
    let stamp_path = component.with_extension("core-sha256");
    let stamp = hex::encode(Sha256::digest(&bytes));
    if component.exists() && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        return Ok(());
    }
    let wrapped = componentize(&bytes).map_err(|reason| BuildError::Componentize {
        core: core.to_owned(),
        reason,
    })?;
    let write = |path: &Path, data: &[u8]| {
        std::fs::write(path, data).map_err(|e| BuildError::Io {
            what: "cannot write",
            path: path.to_owned(),
            error: e,
        })
    };
    write(component, &wrapped)?;
    write(&stamp_path, stamp.as_bytes())
}

/// Wraps a core module carrying wit-bindgen's component-type section into a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crate_without_a_cdylib_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("weft-guest-build-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            "[package]\nname = \"plain\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
        )
        .unwrap();
        std::fs::write(dir.join("src/lib.rs"), "").unwrap();
        let err = cdylib_targets(&installed_cargo(), &dir).unwrap_err();
        assert!(matches!(err, BuildError::NothingToBuild { .. }), "{err}");
        assert!(
            err.to_string().contains("crate-type = [\"cdylib\"]"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bytes_that_are_not_a_core_module_cannot_be_wrapped() {
        let err = componentize(b"not wasm").unwrap_err();
        assert!(err.contains("magic"), "{err}");
    }

    #[test]
    fn the_no_toolchain_error_says_how_to_install_either() {
        let err = BuildError::NoToolchain { tried: "x".into() };
        let text = err.to_string();
        assert!(
            text.contains("rustup target add wasm32-unknown-unknown"),
            "{text}"
        );
        assert!(
            text.contains("apt-get install rustc-web cargo-web rust-web-src lld-19"),
            "{text}"
        );
    }
}
