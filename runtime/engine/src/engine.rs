//! The [`Engine`]: a configured wasmtime engine with the host linked in, and the loading
//! (validation, compilation, pre-instantiation) of workflow components.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker};

use crate::config::{EngineConfig, wasmtime_config};
use crate::host::{self, HostState};
use crate::{validate, wasi};

/// Why an engine could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the wasmtime engine: {0}")]
pub struct EngineError(String);

/// Why a component was rejected. Nothing is kept of a rejected component.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error(
        "not a WebAssembly file ({len} bytes starting {head}); upload the `.wasm` component that `weft build` writes"
    )]
    NotWasm { len: usize, head: String },
    #[error(
        "this is a core WebAssembly module, not a component; wrap it with `weft build` (wit-component)"
    )]
    CoreModule,
    #[error("the component is invalid: {0}")]
    Invalid(String),
    #[error(
        "import `{import}` is not allowed: workflows may import only `weft:workflow/*` and the WASI 0.2 clocks, random, cli, io, filesystem and sockets interfaces (answered from history, so that replay is deterministic); {hint}"
    )]
    ForbiddenImport { import: String, hint: &'static str },
    #[error(
        "the component exports no `run` function; export the workflow with `weft_sdk::workflow!`"
    )]
    MissingRun,
    #[error(
        "the component's `run` export is `{found}`, expected `{}`; build it against weft-sdk's `wit/workflow.wit`",
        validate::EXPECTED_RUN
    )]
    WrongRunSignature { found: String },
    #[error(
        "the component's imports do not match this host (`{interface}` and WASI 0.2): {reason}",
        interface = host::HOST_INTERFACE
    )]
    Link { reason: String },
}

/// Compiles, checks and runs workflow components. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasmtime: wasmtime::Engine,
    linker: Linker<HostState>,
    config: EngineConfig,
    /// Components compiled already, by SHA-256: the nodes of one process (a simulation's,
    /// or the API and the executor of one server) compile each module once.
    loaded: std::sync::Mutex<std::collections::HashMap<String, WorkflowModule>>,
}

/// Compiled modules kept by [`Engine::load`]; past it the memo starts over.
const MAX_LOADED: usize = 256;

/// A validated, compiled workflow component, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct WorkflowModule {
    sha256: String,
    pre: InstancePre<HostState>,
}

impl WorkflowModule {
    /// Hex SHA-256 of the component bytes: the module's identity.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub(crate) fn pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }
}

impl std::fmt::Debug for WorkflowModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowModule")
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// Creates `dir` (mode 0700) if missing and says whether it is this user's alone: native code
/// is loaded from it.
fn private_dir(dir: &std::path::Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let meta = std::fs::metadata(dir)?;
        let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
        Ok(me.is_none_or(|uid| uid == meta.uid()) && meta.mode() & 0o022 == 0)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)?;
        Ok(true)
    }
}

/// Hex SHA-256 of `bytes`, as modules are named.
pub fn module_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Engine {
    /// An engine with `config`'s limits.
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        let wasmtime = wasmtime::Engine::new(&wasmtime_config(&config))
            .map_err(|e| EngineError(format!("{e:#}")))?;
        let mut linker = Linker::new(&wasmtime);
        host::add_to_linker(&mut linker).map_err(|e| EngineError(format!("{e:#}")))?;
        Ok(Engine {
            inner: Arc::new(EngineInner {
                wasmtime,
                linker,
                config,
                loaded: std::sync::Mutex::default(),
            }),
        })
    }

    /// The engine's limits.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    /// Checks and compiles a workflow component: it must be a component, import only
    /// `weft:workflow/*`, and export `run` with the workflow signature.
    pub fn load(&self, bytes: &[u8]) -> Result<WorkflowModule, ModuleError> {
        let sha256 = module_sha256(bytes);
        if let Some(module) = self.loaded().get(&sha256) {
            return Ok(module.clone());
        }
        validate::check_encoding(bytes)?;
        let component = self.compile(&sha256, bytes)?;
        validate::check_component(&self.inner.wasmtime, &component)?;
        let link_error = |e: wasmtime::Error| ModuleError::Link {
            reason: format!("{e:#}"),
        };
        let pre = if validate::imports_wasi(&self.inner.wasmtime, &component) {
            // The WASI layer is linked at the versions this component imports.
            let mut linker = self.inner.linker.clone();
            wasi::link(&mut linker, &self.inner.wasmtime, &component).map_err(link_error)?;
            linker.instantiate_pre(&component)
        } else {
            self.inner.linker.instantiate_pre(&component)
        }
        .map_err(link_error)?;
        let module = WorkflowModule { sha256, pre };
        let mut loaded = self.loaded();
        if loaded.len() >= MAX_LOADED {
            loaded.clear();
        }
        loaded.insert(module.sha256.clone(), module.clone());
        Ok(module)
    }

    /// Compiles `bytes`, or reads the compiled form that an earlier process left in the
    /// cache directory.
    fn compile(&self, sha256: &str, bytes: &[u8]) -> Result<Component, ModuleError> {
        let engine = &self.inner.wasmtime;
        let compile =
            || Component::new(engine, bytes).map_err(|e| ModuleError::Invalid(format!("{e:#}")));
        let Some(dir) = &self.inner.config.compiled_cache_dir else {
            return compile();
        };
        match private_dir(dir) {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(dir = %dir.display(),
                    "not using the compiled-component cache: the directory is not this user's alone (owned by another user, or writable by group or others); compiling");
                return compile();
            }
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error,
                    "cannot create the compiled-component cache; compiling");
                return compile();
            }
        }
        let settings = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut hasher);
            hasher.finish()
        };
        let path = dir.join(format!("{sha256}-{settings:016x}.cwasm"));
        if path.is_file() {
            // SAFETY: the file is native code that this user's weft wrote: the directory is
            // this user's alone (checked above: owned by us, not writable by group or
            // others), files are written whole and renamed into place (never changed after,
            // so the mapping stays valid), and deserializing checks the engine's settings.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "recompiling a cached component that does not load");
                }
            }
        }
        let component = compile()?;
        let written = component.serialize().and_then(|compiled| {
            // Renamed into place, so that another process never reads half a file.
            static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let partial = path.with_extension(format!("partial-{}-{n}", std::process::id()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&partial)?;
            std::io::Write::write_all(&mut file, &compiled)?;
            file.sync_all()?;
            std::fs::rename(&partial, &path)?;
            Ok(())
        });
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "cannot keep the compiled component; it will be compiled again next time");
        }
        Ok(component)
    }

    fn loaded(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, WorkflowModule>> {
        // A panic while holding it cannot leave the map half-written.
        self.inner
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Instantiates `module` in a fresh store and drops it: what starting or rebuilding a
    /// run costs before the guest runs. For benchmarks.
    #[doc(hidden)]
    pub fn instantiate_only(&self, module: &WorkflowModule) -> Result<(), String> {
        crate::run::instantiate_only(self, module)
    }
}
