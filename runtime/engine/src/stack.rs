//! The guest's call stack at a host call: for non-determinism errors, guest panics and the
//! replay debugger (`weft replay --until`, `--break-on`). Function names come from the
//! component's name section; `file:line` from its DWARF, which `weft build --debug` keeps.

use std::sync::Arc;

use wasmtime::AsContext;
use weft_history::Event;

/// One frame of a guest's stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestFrame {
    /// The function, demangled (`hello_activity::greeting_workflow`), or `?`.
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

impl std::fmt::Display for GuestFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.function)?;
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " ({file}:{line})"),
            (Some(file), None) => write!(f, " ({file})"),
            _ => Ok(()),
        }
    }
}

/// Frames of the runtime and of the SDK, which say nothing about the workflow's own code.
const LIBRARY_PREFIXES: [&str; 12] = [
    "weft_sdk::",
    "<weft_sdk::",
    "core::",
    "<core::",
    "std::",
    "<std::",
    "alloc::",
    "<alloc::",
    "wit_bindgen",
    "<wit_bindgen",
    "serde",
    "<serde",
];

/// The guest's stack now, innermost first: the workflow's own frames (those of the runtime,
/// the SDK and the export glue left out). Empty for a release build that inlined them all.
pub(crate) fn capture(store: impl AsContext) -> Vec<GuestFrame> {
    let trace = wasmtime::WasmBacktrace::force_capture(store);
    frames_of(&trace)
}

/// The frames of a backtrace, as [`capture`] gives them.
pub(crate) fn frames_of(trace: &wasmtime::WasmBacktrace) -> Vec<GuestFrame> {
    let mut all = Vec::new();
    for frame in trace.frames() {
        let symbols = frame.symbols();
        if symbols.is_empty() {
            all.push(GuestFrame {
                function: frame.func_name().unwrap_or("?").to_owned(),
                file: None,
                line: None,
            });
        }
        // With DWARF, one wasm frame may stand for several inlined source functions.
        for symbol in symbols {
            let function = symbol
                .name()
                .map(|n| format!("{:#}", rustc_demangle::demangle(n)))
                .or_else(|| frame.func_name().map(str::to_owned))
                .unwrap_or_else(|| "?".to_owned());
            all.push(GuestFrame {
                function: strip_hash(&function),
                file: symbol.file().map(str::to_owned),
                line: symbol.line(),
            });
        }
    }
    all.into_iter()
        .filter(|f| !LIBRARY_PREFIXES.iter().any(|p| f.function.starts_with(p)))
        // The export and the `workflow!` glue around the workflow function.
        .filter(|f| !f.function.starts_with("__") && !matches!(f.function.as_str(), "?" | "run"))
        .filter(|f| !f.function.contains("__WeftWorkflow"))
        .collect()
}

/// `foo::bar::h0123456789abcdef` -> `foo::bar`.
fn strip_hash(name: &str) -> String {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            head.to_owned()
        }
        _ => name.to_owned(),
    }
}

/// One stop of the replay debugger: an event a host call issued or consumed, and the guest's
/// stack at that call.
#[derive(Clone, Debug)]
pub struct ProbeHit {
    pub event: Event,
    /// The host function the guest called (`start-activity`, `wait-any`, ...).
    pub host_call: &'static str,
    pub stack: Vec<GuestFrame>,
}

/// Where the replay debugger stops: `wants` picks events (cheap, called for every event), and
/// `hit` gets each picked one with the guest's stack (captured only then).
#[derive(Clone)]
pub struct Probe {
    pub wants: Arc<dyn Fn(&Event) -> bool + Send + Sync>,
    pub hit: Arc<dyn Fn(ProbeHit) + Send + Sync>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Probe")
    }
}
