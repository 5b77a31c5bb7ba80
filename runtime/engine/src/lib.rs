//! The weft engine: runs workflow components deterministically on wasmtime.
//!
//! - [`Engine::load`] checks a component (imports only `weft:workflow/*` and the WASI 0.2
//!   interfaces that `wasi` answers deterministically, exports `run`) and pre-instantiates it;
//! - [`WorkflowRun`] runs one workflow run an activation at a time, keeping the suspended
//!   instance between deliveries or rebuilding it from history;
//! - [`harness`] runs a workflow to completion in-process with activities as Rust closures and
//!   timers skipped (for tests and `weft run`);
//! - [`replay`] checks a recorded history against a module, offline (`weft replay`).
//!
//! Every host call goes through [`weft_history::Machine`], which records it in the run's history
//! or, on replay, reads its result back from there.

mod clock;
mod config;
mod engine;
pub mod harness;
mod host;
mod log;
pub mod replay;
mod run;
mod stack;
mod validate;
mod wasi;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::EngineConfig;
pub use engine::{Engine, EngineError, ModuleError, WorkflowModule, module_sha256};
pub use host::HOST_INTERFACE;
pub use log::{LogLevel, LogRecord, LogSink, tracing_sink};
pub use run::{Activation, NewRun, RunError, RunOptions, RunOutcome, WorkflowRun};
pub use stack::{GuestFrame, Probe, ProbeHit};
pub use validate::ALLOWED_IMPORT_PREFIX;
pub use weft_history;
