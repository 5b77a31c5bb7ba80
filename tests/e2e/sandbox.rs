//! The sandbox: what a component may import and export, and the CPU and memory limits.

use std::time::{Duration, Instant};

use serde_json::json as j;
use weft_engine::weft_history::EventKind;
use weft_engine::{Engine, EngineConfig, ModuleError, RunOutcome};

use crate::support::*;
use weft_tests::{RUN_EXPORT, component_importing};

fn load_err(bytes: &[u8]) -> ModuleError {
    engine()
        .load(bytes)
        .expect_err("the component must be rejected")
}

#[test]
fn a_component_importing_wasi_http_is_rejected_naming_the_import() {
    let err = load_err(&component_importing("wasi:http/outgoing-handler@0.2.0"));
    assert!(matches!(err, ModuleError::ForbiddenImport { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "import `wasi:http/outgoing-handler@0.2.0` is not allowed: workflows may import only \
         `weft:workflow/*` and the WASI 0.2 clocks, random, cli, io, filesystem and sockets \
         interfaces (answered from history, so that replay is deterministic); do HTTP calls in an \
         activity, run by a native worker"
    );
}

#[test]
fn a_wasi_interface_weft_does_not_answer_is_rejected_naming_it() {
    for import in [
        "wasi:clocks/timezone@0.2.0",
        "wasi:random/random@0.3.0",
        "wasi:keyvalue/store@0.2.0",
    ] {
        let err = load_err(&component_importing(import));
        assert!(matches!(err, ModuleError::ForbiddenImport { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("import `{import}` is not allowed")),
            "{err}"
        );
    }
}

#[test]
fn an_answered_wasi_import_of_the_wrong_type_is_rejected_at_upload_naming_it() {
    // wall-clock's `now` returns a `datetime` record, not a u64.
    let err = load_err(&component_importing("wasi:clocks/wall-clock@0.2.0"));
    assert!(matches!(err, ModuleError::Link { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("wasi:clocks/wall-clock@0.2.0"), "{text}");
    assert!(text.contains("now"), "{text}");
}

#[test]
fn the_well_formed_test_component_itself_is_accepted_without_imports() {
    // Guards the two tests above: the same component minus the import loads.
    let wat = format!("(component {RUN_EXPORT})");
    engine()
        .load(&wat::parse_str(wat).unwrap())
        .expect("accepted");
}

#[test]
fn a_core_module_is_rejected_as_not_a_component() {
    let core = wat::parse_str("(module (func (export \"run\")))").unwrap();
    let err = load_err(&core);
    assert!(matches!(err, ModuleError::CoreModule), "{err}");
    assert!(err.to_string().contains("wrap it with `weft build`"));
}

#[test]
fn garbage_bytes_are_rejected() {
    let err = load_err(b"definitely not wasm");
    assert!(matches!(err, ModuleError::NotWasm { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("not a WebAssembly file (19 bytes starting 646566696e697465)"),
        "{err}"
    );
    let err = load_err(&[0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0, 0xff, 0xff]);
    assert!(matches!(err, ModuleError::Invalid(_)), "{err}");
}

#[test]
fn a_component_with_the_wrong_run_signature_is_rejected() {
    let wat = r#"(component
        (core module $m
            (memory (export "memory") 1)
            (func (export "run") (param i32) (result i32) unreachable))
        (core instance $i (instantiate $m))
        (func (export "run") (param "n" u32) (result u32) (canon lift (core func $i "run")))
    )"#;
    let err = load_err(&wat::parse_str(wat).unwrap());
    assert_eq!(
        err.to_string(),
        "the component's `run` export is `func(n: u32) -> u32`, expected \
         `func(input: list<u8>) -> result<list<u8>, record{kind: string, message: string, attempts: u32}>`; \
         build it against weft-sdk's `wit/workflow.wit`"
    );
    let no_run = wat::parse_str("(component)").unwrap();
    assert!(matches!(load_err(&no_run), ModuleError::MissingRun));
}

fn run_edge_case(config: EngineConfig, input: serde_json::Value) -> (RunOutcome, Duration) {
    let engine = Engine::new(config).unwrap();
    let mut h = weft_engine::harness::Harness::new(engine.clone(), START_MS, 1);
    h.register("EdgeCases", load(&engine, weft_tests::EDGE_CASES));
    let started = Instant::now();
    let report = h.run("EdgeCases", "edge", json(input)).unwrap();
    let terminal = report.history().terminal().unwrap().kind.clone();
    assert!(matches!(
        terminal,
        EventKind::RunFailed { .. } | EventKind::RunCompleted { .. }
    ));
    (report.outcome, started.elapsed())
}

#[test]
fn an_infinite_loop_fails_the_run_with_the_cpu_budget_error() {
    let (outcome, took) = run_edge_case(EngineConfig::default(), j!({"mode": "spin"}));
    let RunOutcome::Failed(e) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(e.kind, "CpuBudgetExceeded");
    assert!(
        e.message
            .starts_with("workflow exceeded its CPU budget of 1000000000 fuel units"),
        "{}",
        e.message
    );
    // Not a timing assertion on speed, a guard against hanging: fuel stops it.
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

#[test]
fn a_huge_allocation_fails_the_run_with_the_memory_error() {
    let config = EngineConfig {
        max_memory_bytes: 16 << 20,
        ..EngineConfig::default()
    };
    let (outcome, _) = run_edge_case(config, j!({"mode": "allocate", "mib": 64}));
    let RunOutcome::Failed(e) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(e.kind, "MemoryLimitExceeded");
    assert!(
        e.message.contains("the limit is 16777216 bytes"),
        "{}",
        e.message
    );
    // Under the cap the same workflow succeeds.
    let config = EngineConfig {
        max_memory_bytes: 16 << 20,
        ..EngineConfig::default()
    };
    let (outcome, _) = run_edge_case(config, j!({"mode": "allocate", "mib": 4}));
    assert_eq!(outcome, RunOutcome::Completed(json(j!(4u64 << 20))));
}

#[test]
fn a_guest_panic_fails_the_run_with_the_panic_message() {
    let (outcome, _) = run_edge_case(
        EngineConfig::default(),
        j!({"mode": "panic", "message": "the ledger is off by 3"}),
    );
    let RunOutcome::Failed(e) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(e.kind, "Panic");
    assert!(
        e.message.starts_with("workflow panicked at "),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("the ledger is off by 3"),
        "{}",
        e.message
    );
}

#[test]
fn a_workflow_error_fails_the_run_with_its_kind() {
    let (outcome, _) = run_edge_case(
        EngineConfig::default(),
        j!({"mode": "fail", "kind": "OutOfStock"}),
    );
    let RunOutcome::Failed(e) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("OutOfStock", "failed on request")
    );
}

#[test]
fn bad_workflow_input_fails_the_run_clearly() {
    let (outcome, _) = run_edge_case(EngineConfig::default(), j!({"mode": "no-such-mode"}));
    let RunOutcome::Failed(e) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(e.kind, "BadInput");
    assert!(
        e.message.starts_with("the workflow input does not decode"),
        "{}",
        e.message
    );
}

#[test]
fn replay_gives_a_fresh_cpu_budget_at_every_recorded_wait() {
    // Each live activation is one loop iteration, well under the budget; the whole run is far
    // over it. Rebuilding by replay at every step must not charge the replayed part as one
    // activation.
    let config = EngineConfig {
        fuel_per_activation: 2_000_000,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config).unwrap();
    let mut h = weft_engine::harness::Harness::new(engine.clone(), START_MS, 1);
    h.register("EdgeCases", load(&engine, weft_tests::EDGE_CASES))
        .mode(weft_engine::harness::ResumeMode::ReplayEachActivation)
        .activity(
            "step",
            |i: u64| -> Result<u64, weft_engine::weft_history::ErrorInfo> { Ok(i) },
        );
    let report = h
        .run(
            "EdgeCases",
            "budget",
            json(j!({"mode": "activities", "n": 2000})),
        )
        .unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Completed(json(j!(1999 * 2000 / 2)))
    );
    // The same run in one activation does exceed the budget: the test above is not vacuous.
    let (outcome, _) = run_edge_case(
        EngineConfig {
            fuel_per_activation: 2_000_000,
            ..EngineConfig::default()
        },
        j!({"mode": "random", "n": 5_000_000}),
    );
    assert!(
        matches!(outcome, RunOutcome::Failed(ref e) if e.kind == "CpuBudgetExceeded"),
        "{outcome:?}"
    );
}
