//! Helpers shared by the end-to-end tests.

use weft_engine::harness::Harness;
use weft_engine::{Engine, EngineConfig, WorkflowModule};

/// Workflow time at which harness runs start: 2026-01-01T00:00:00Z.
pub const START_MS: u64 = 1_767_225_600_000;

/// An engine with the default limits, keeping compiled components under the target dir
/// (a Python component takes seconds to compile; the tests load each one many times).
pub fn engine() -> Engine {
    Engine::new(EngineConfig {
        compiled_cache_dir: Some(compiled_cache_dir()),
        ..EngineConfig::default()
    })
    .expect("engine")
}

pub fn compiled_cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled")
}

pub fn load(engine: &Engine, path: &str) -> WorkflowModule {
    engine
        .load(&weft_tests::component(path))
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

pub fn harness(engine: &Engine) -> Harness {
    Harness::new(engine.clone(), START_MS, 7)
}

pub fn json(value: serde_json::Value) -> weft_engine::weft_history::Payload {
    weft_engine::weft_history::Payload(serde_json::to_vec(&value).expect("json"))
}

/// The JSON output of a run that must have completed.
pub fn output(outcome: &weft_engine::RunOutcome) -> serde_json::Value {
    match outcome {
        weft_engine::RunOutcome::Completed(payload) => {
            serde_json::from_slice(&payload.0).expect("json")
        }
        other => panic!("the run did not complete: {other:?}"),
    }
}
