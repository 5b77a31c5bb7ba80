//! Helpers shared by the end-to-end tests.

use weft_engine::harness::Harness;
use weft_engine::{Engine, EngineConfig, WorkflowModule};

/// Workflow time at which harness runs start: 2026-01-01T00:00:00Z.
pub const START_MS: u64 = 1_767_225_600_000;

pub fn engine() -> Engine {
    Engine::new(EngineConfig::default()).expect("engine")
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
