//! The [`Engine`]: a configured wasmtime engine with the host linked in, and the loading
//! (validation, compilation, pre-instantiation) of workflow components.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker};

use crate::config::{EngineConfig, wasmtime_config};
use crate::host::{self, HostState};
use crate::validate;

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
        "import `{import}` is not allowed: workflows may import only `weft:workflow/*` so that replay is deterministic; {hint}"
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
    #[error("the component's imports do not match this host (`{interface}`): {reason}", interface = host::HOST_INTERFACE)]
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
        let component = Component::new(&self.inner.wasmtime, bytes)
            .map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
        validate::check_component(&self.inner.wasmtime, &component)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| ModuleError::Link {
                reason: format!("{e:#}"),
            })?;
        let module = WorkflowModule { sha256, pre };
        let mut loaded = self.loaded();
        if loaded.len() >= MAX_LOADED {
            loaded.clear();
        }
        loaded.insert(module.sha256.clone(), module.clone());
        Ok(module)
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
