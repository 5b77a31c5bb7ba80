//! Builds Python workflow projects into components with componentize-py, against weft's WIT.
//!
//! componentize-py is pinned ([`COMPONENTIZE_PY_VERSION`]): a new release can import other
//! WASI functions than the engine's WASI layer answers. It is found at
//! [`COMPONENTIZE_PY_ENV`], else in weft's cache (`$WEFT_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/weft`, else `~/.cache/weft`), where it is installed from PyPI the first
//! time (`python3 -m venv` + `pip install`, about 30 s).
//!
//! componentize-py's builds are not byte-identical (CPython's hash secret and heap are taken
//! at pre-init), so the component is cached by the SHA-256 of its sources, the WIT and the
//! componentize-py version: an unchanged project keeps its module id.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::BuildError;

/// The componentize-py release weft builds with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// Set to a `componentize-py` executable to use instead of weft's cached install.
pub const COMPONENTIZE_PY_ENV: &str = "WEFT_COMPONENTIZE_PY";
/// The WIT world a Python workflow implements.
const WORLD: &str = "workflow";

/// weft's WIT, built into this crate: a Python build needs no checkout of the repository.
const WIT: &[(&str, &str)] = &[("workflow.wit", include_str!("../../../wit/workflow.wit"))];

/// The part of the `weft` Python package that runs inside a component (pure Python, no
/// gRPC), built into this crate so that a component gets the SDK that matches this host.
const SDK: &[(&str, &str)] = &[
    (
        "weft/__init__.py",
        include_str!("../../../python/src/weft/__init__.py"),
    ),
    (
        "weft/activity.py",
        include_str!("../../../python/src/weft/activity.py"),
    ),
    (
        "weft/converter.py",
        include_str!("../../../python/src/weft/converter.py"),
    ),
    (
        "weft/workflow.py",
        include_str!("../../../python/src/weft/workflow.py"),
    ),
];

/// Writes `files` under `dir/NAME-HASH/` (once per content) and returns that directory.
fn materialize(dir: &Path, name: &str, files: &[(&str, &str)]) -> Result<PathBuf, BuildError> {
    let mut hasher = Sha256::new();
    for (path, text) in files {
        hasher.update(path.as_bytes());
        hasher.update(text.len().to_le_bytes());
        hasher.update(text.as_bytes());
    }
    let hash = hex::encode(hasher.finalize());
    let root = dir.join(format!("{name}-{}", &hash[..16]));
    if root.is_dir() {
        return Ok(root);
    }
    let partial = dir.join(format!(
        "{name}-{}.partial-{}",
        &hash[..16],
        std::process::id()
    ));
    for (path, text) in files {
        let file = partial.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(io_error("create", parent))?;
        }
        std::fs::write(&file, text).map_err(io_error("write", &file))?;
    }
    if std::fs::rename(&partial, &root).is_err() && !root.is_dir() {
        return Err(BuildError::Io {
            what: "rename",
            path: partial,
            error: std::io::Error::other("could not move the files into place"),
        });
    }
    let _ = std::fs::remove_dir_all(&partial);
    Ok(root)
}
/// The module a Python workflow project's `WitWorld` class lives in (`app.py`).
pub const APP_MODULE: &str = "app";

/// weft's cache directory.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEFT_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("weft");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("weft")
}

fn io_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> BuildError + 'a {
    move |error| BuildError::Io {
        what,
        path: path.to_owned(),
        error,
    }
}

fn run(cmd: &mut Command) -> Result<(), BuildError> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| BuildError::CargoFailed {
        command: command.clone(),
        status: "could not start".into(),
        output: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(BuildError::CargoFailed {
        command,
        status: out.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// The `componentize-py` to build with: [`COMPONENTIZE_PY_ENV`], else the cached install,
/// made now if missing.
pub fn find_componentize_py() -> Result<PathBuf, BuildError> {
    if let Some(path) = std::env::var_os(COMPONENTIZE_PY_ENV) {
        return Ok(PathBuf::from(path));
    }
    let venv = cache_dir().join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"));
    let exe = venv.join("bin").join("componentize-py");
    // Written last, so that an interrupted install is never taken for a finished one.
    let done = venv.join(".weft-installed");
    if done.is_file() && exe.is_file() {
        return Ok(exe);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(io_error("remove", &venv))?;
    }
    std::fs::create_dir_all(cache_dir()).map_err(io_error("create", &venv))?;
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("componentize-py=={COMPONENTIZE_PY_VERSION}")))?;
    std::fs::write(&done, COMPONENTIZE_PY_VERSION).map_err(io_error("write", &done))?;
    Ok(exe)
}

/// The `site-packages` of the project's virtual environment (`VIRTUAL_ENV`, else
/// `PROJECT/.venv`), so that its pure-Python dependencies can be imported by the workflow.
pub fn project_site_packages(project: &Path) -> Vec<PathBuf> {
    let venv = std::env::var_os("VIRTUAL_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| project.join(".venv"));
    let Ok(entries) = std::fs::read_dir(venv.join("lib")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path().join("site-packages")))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}

/// Every file under `dir` (but hidden ones, `__pycache__` and `build/`, where `weft build`
/// writes), sorted, for the cache key: a data file the workflow reads at import counts too.
fn source_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BuildError> {
    let entries = std::fs::read_dir(dir).map_err(io_error("read", dir))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "__pycache__" || name == "build" {
            continue;
        }
        if path.is_dir() {
            source_files(&path, out)?;
        } else if !name.ends_with(".wasm") && !name.ends_with(".pyc") {
            out.push(path);
        }
    }
    Ok(())
}

/// The cache key of a build: componentize-py's version, the WIT, and every source file of
/// every root by its path inside the root.
fn source_key(wit: &Path, roots: &[&Path]) -> Result<String, BuildError> {
    let mut hasher = Sha256::new();
    hasher.update(COMPONENTIZE_PY_VERSION);
    for root in std::iter::once(wit).chain(roots.iter().copied()) {
        let mut files = Vec::new();
        source_files(root, &mut files)?;
        hasher.update(files.len().to_le_bytes());
        for file in files {
            let bytes = std::fs::read(&file).map_err(io_error("read", &file))?;
            let relative = file.strip_prefix(root).unwrap_or(&file);
            let relative = relative.as_os_str().as_encoded_bytes();
            hasher.update(relative.len().to_le_bytes());
            hasher.update(relative);
            hasher.update(bytes.len().to_le_bytes());
            hasher.update(&bytes);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// What a Python project builds from: its `app.py`, or the class its `pyproject.toml` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `app.py` defines the `WitWorld` class itself (componentize-py's bindings, no SDK).
    App,
    /// `[tool.weft] workflow = "module:Class"`: a `weft.workflow` class; weft writes `app.py`.
    Workflow { module: String, class: String },
}

/// Whether `dir` is a Python workflow project, and what it builds from.
pub fn detect(dir: &Path) -> Result<Option<Entry>, BuildError> {
    let pyproject = dir.join("pyproject.toml");
    if pyproject.is_file() {
        let text = std::fs::read_to_string(&pyproject).map_err(io_error("read", &pyproject))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| BuildError::Python {
            project: dir.to_owned(),
            reason: format!("pyproject.toml is not valid TOML: {e}"),
        })?;
        let workflow = table
            .get("tool")
            .and_then(|t| t.get("weft"))
            .and_then(|t| t.get("workflow"))
            .and_then(|w| w.as_str());
        return match workflow.map(|w| w.split_once(':')) {
            Some(Some((module, class))) if !module.is_empty() && !class.is_empty() => {
                Ok(Some(Entry::Workflow {
                    module: module.to_owned(),
                    class: class.to_owned(),
                }))
            }
            Some(_) => Err(BuildError::Python {
                project: dir.to_owned(),
                reason: "`[tool.weft] workflow` must be \"module:Class\", e.g. \
                         \"hello_activity:GreetingWorkflow\""
                    .into(),
            }),
            None if dir.join(format!("{APP_MODULE}.py")).is_file() => Ok(Some(Entry::App)),
            None => Err(BuildError::Python {
                project: dir.to_owned(),
                reason: "pyproject.toml names no workflow: add `[tool.weft]` with \
                         `workflow = \"module:Class\"` (the class marked @workflow.defn)"
                    .into(),
            }),
        };
    }
    Ok(dir
        .join(format!("{APP_MODULE}.py"))
        .is_file()
        .then_some(Entry::App))
}

/// The `app.py` weft writes for a [`Entry::Workflow`] project.
fn app_shim(module: &str, class: &str) -> String {
    format!(
        "# Written by `weft build`: the component's entry point.\n\
         from weft.workflow import component\n\
         from {module} import {class}\n\n\
         WitWorld = component({class})\n"
    )
}

/// Builds the Python project in `project` against weft's WIT, with weft's workflow SDK and
/// then the packages in `python_path` importable, into `out_dir/NAME-KEY.wasm`; a build whose
/// sources are unchanged is reused.
pub fn build_python(
    componentize_py: &Path,
    project: &Path,
    python_path: &[&Path],
    out_dir: &Path,
) -> Result<PathBuf, BuildError> {
    std::fs::create_dir_all(out_dir).map_err(io_error("create", out_dir))?;
    let wit = materialize(out_dir, "wit", WIT)?;
    let sdk = materialize(out_dir, "weft-sdk", SDK)?;
    let wit = wit.as_path();
    let entry = detect(project)?.ok_or_else(|| BuildError::NothingToBuild {
        path: project.to_owned(),
    })?;
    let name = project
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("workflow")
        .to_owned();
    let mut roots: Vec<PathBuf> = vec![project.to_owned(), sdk];
    if let Entry::Workflow { module, class } = &entry {
        let shim_dir = out_dir.join(format!("{name}.entry"));
        std::fs::create_dir_all(&shim_dir).map_err(io_error("create", &shim_dir))?;
        let shim = shim_dir.join(format!("{APP_MODULE}.py"));
        std::fs::write(&shim, app_shim(module, class)).map_err(io_error("write", &shim))?;
        roots.insert(0, shim_dir);
    }
    roots.extend(python_path.iter().map(|p| p.to_path_buf()));
    let root_refs: Vec<&Path> = roots.iter().map(PathBuf::as_path).collect();
    let key = source_key(wit, &root_refs)?;
    let component = out_dir.join(format!("{name}-{}.wasm", &key[..16]));
    if component.is_file() {
        return Ok(component);
    }
    let partial = component.with_extension(format!("wasm.partial-{}", std::process::id()));
    let mut cmd = Command::new(componentize_py);
    cmd.arg("-d").arg(wit).args(["-w", WORLD, "componentize"]);
    for root in &roots {
        cmd.arg("-p").arg(root);
    }
    cmd.arg(APP_MODULE).arg("-o").arg(&partial);
    run(&mut cmd).map_err(|e| explain_python_failure(project, e))?;
    std::fs::rename(&partial, &component).map_err(io_error("rename", &partial))?;
    Ok(component)
}

/// Says what to do about the failures a workflow author causes: a module that is not in the
/// build (a C extension such as numpy, or a package not installed), a syntax error.
fn explain_python_failure(project: &Path, error: BuildError) -> BuildError {
    let BuildError::CargoFailed { output, .. } = &error else {
        return error;
    };
    if let Some(module) = output.lines().rev().find_map(|l| {
        l.trim()
            .strip_prefix("ModuleNotFoundError: No module named ")
    }) {
        let module = module.trim_matches(['\'', '"']);
        let top = module.split('.').next().unwrap_or(module);
        return BuildError::Python {
            project: project.to_owned(),
            reason: format!(
                "the workflow imports `{module}`, which the component cannot contain: a workflow \
                 may import only the standard library and pure-Python modules on its path \
                 (C extensions such as numpy or torch cannot load in WebAssembly); call `{top}` \
                 from an activity instead\n{output}"
            ),
        };
    }
    if let Some(at) = output.rfind("SyntaxError") {
        let start = output[..at].rfind("File \"").unwrap_or(at);
        return BuildError::Python {
            project: project.to_owned(),
            reason: format!("a syntax error:\n  {}", output[start..].trim()),
        };
    }
    error
}
