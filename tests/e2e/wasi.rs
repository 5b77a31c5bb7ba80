//! The deterministic WASI layer, through a real componentize-py guest (`wasi-probe`): Python's
//! own clock, random, uuid, environment and print answered from history and seed, identically
//! when the run is rebuilt by replay; blocking sleeps, exit, sockets and files refused.

use std::sync::{Arc, Mutex};

use serde_json::json as j;
use weft_engine::harness::ResumeMode;
use weft_engine::replay::{ReplayVerdict, replay};
use weft_engine::weft_history::{ErrorInfo, EventKind, History};
use weft_engine::{Engine, LogRecord, RunOutcome, WorkflowModule};

use crate::support::*;

const PROBE: &str = "WasiProbe";

fn probe_module(engine: &Engine) -> WorkflowModule {
    load(engine, weft_tests::PY_WASI_PROBE)
}

/// Runs the probe with `input`; returns its outcome, history and live log lines.
fn run_probe(mode: ResumeMode, probe: &str) -> (RunOutcome, History, Vec<String>) {
    let engine = engine();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let mut h = harness(&engine);
    h.register(PROBE, probe_module(&engine))
        .mode(mode)
        .log_sink(Arc::new(move |r: &LogRecord| {
            sink.lock()
                .unwrap()
                .push(format!("{} {}", r.level.as_str(), r.message))
        }));
    let report = h
        .run(PROBE, "probe-1", json(j!({ "probe": probe })))
        .expect("the harness runs the probe");
    let logs = lines.lock().unwrap().clone();
    let history = report.history().clone();
    (report.outcome, history, logs)
}

fn failed(outcome: RunOutcome) -> ErrorInfo {
    match outcome {
        RunOutcome::Failed(error) => error,
        other => panic!("the probe did not fail: {other:?}"),
    }
}

#[test]
fn python_time_random_and_uuid_come_from_history_and_seed_and_replay_identically() {
    let (outcome, history, _) = run_probe(ResumeMode::KeepInstance, "all");
    let out = output(&outcome);
    let start_s = START_MS as f64 / 1000.0;
    // `time.time()` is workflow time: the run's start, then 5 s later after the timer.
    assert_eq!(out["wall_before"], j!(start_s), "{out}");
    assert_eq!(out["wall_after"], j!(start_s + 5.0), "{out}");
    assert_eq!(out["mono_elapsed"], j!(5.0), "{out}");
    assert_eq!(out["datetime"], j!("2026-01-01T00:00:05+00:00"), "{out}");
    assert_eq!(out["environ"], j!({}), "{out}");
    assert_eq!(out["argv"], j!([]), "{out}");
    // Each wall-clock read is a recorded `TimeRead` (three: two `time.time()`, one `now()`).
    let reads: Vec<u64> = history
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::TimeRead { now_ms } => Some(now_ms),
            _ => None,
        })
        .collect();
    assert_eq!(reads, [START_MS, START_MS + 5000, START_MS + 5000]);

    // Rebuilt from history at every activation: the same answers, drawn the same way.
    let (rebuilt, rebuilt_history, _) = run_probe(ResumeMode::ReplayEachActivation, "all");
    assert_eq!(output(&rebuilt), out);
    assert_eq!(rebuilt_history.events, history.events);

    // Offline replay of the recorded history matches every decision.
    let engine = engine();
    let report = replay(&engine, &probe_module(&engine), history).expect("replays");
    assert!(
        matches!(report.verdict, ReplayVerdict::Clean),
        "{:?}",
        report.verdict
    );
}

#[test]
fn python_random_draws_differ_between_runs_with_different_seeds() {
    // Guards the test above: the answers come from the seed, not from constants.
    let engine = engine();
    let mut outputs = Vec::new();
    for seed in [7, 8] {
        let mut h = weft_engine::harness::Harness::new(engine.clone(), START_MS, seed);
        h.register(PROBE, probe_module(&engine));
        let report = h
            .run(PROBE, "probe-1", json(j!({ "probe": "all" })))
            .expect("runs");
        outputs.push(output(&report.outcome));
    }
    assert_ne!(outputs[0]["uuid"], outputs[1]["uuid"]);
    assert_ne!(outputs[0]["random"], outputs[1]["random"]);
}

#[test]
fn python_print_becomes_log_lines_once_and_never_again_on_replay() {
    let expected = ["info hello 1 from python", "warn to stderr"];
    let (_, _, live) = run_probe(ResumeMode::KeepInstance, "all");
    assert_eq!(live, expected);
    let (_, _, rebuilt) = run_probe(ResumeMode::ReplayEachActivation, "all");
    assert_eq!(rebuilt, expected);
}

#[test]
fn a_blocking_time_sleep_fails_the_run_naming_the_durable_timer() {
    let (outcome, _, _) = run_probe(ResumeMode::KeepInstance, "sleep");
    let error = failed(outcome);
    assert_eq!(error.kind, "ForbiddenCall", "{error:?}");
    assert!(
        error.message.contains("`time.sleep()`"),
        "{}",
        error.message
    );
    assert!(error.message.contains("asyncio.sleep"), "{}", error.message);
}

#[test]
fn sys_exit_fails_the_run_saying_to_return_instead() {
    let (outcome, _, _) = run_probe(ResumeMode::KeepInstance, "exit");
    let error = failed(outcome);
    assert_eq!(error.kind, "Exit", "{error:?}");
    assert!(
        error
            .message
            .contains("failure status; `sys.exit()` in Python"),
        "{}",
        error.message
    );
}

#[test]
fn an_uncaught_python_exception_fails_the_run_with_its_type_message_and_traceback() {
    let (outcome, _, _) = run_probe(ResumeMode::KeepInstance, "raise");
    let error = failed(outcome);
    assert_eq!(error.kind, "ValueError", "{error:?}");
    assert!(
        error.message.starts_with(
            "bad input: 42\nTraceback (most recent call last):\n  File \"/0/app.py\", line"
        ),
        "{}",
        error.message
    );
}

#[test]
fn a_socket_fails_the_run_naming_the_call_and_the_activity_to_use() {
    let (outcome, _, _) = run_probe(ResumeMode::KeepInstance, "socket");
    let error = failed(outcome);
    assert_eq!(error.kind, "ForbiddenCall", "{error:?}");
    assert!(
        error
            .message
            .contains("wasi:sockets/tcp-create-socket@0.2.")
            && error.message.contains("create-tcp-socket")
            && error.message.contains("in an activity"),
        "{}",
        error.message
    );
}

#[test]
fn open_finds_no_file_inside_the_guest() {
    let (outcome, _, _) = run_probe(ResumeMode::KeepInstance, "open");
    assert_eq!(output(&outcome), j!({ "error": "FileNotFoundError" }));
}

#[test]
fn a_compiled_component_is_kept_on_disk_and_a_damaged_copy_is_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = || weft_engine::EngineConfig {
        compiled_cache_dir: Some(dir.path().to_owned()),
        ..weft_engine::EngineConfig::default()
    };
    let bytes = weft_tests::component(weft_tests::PY_WASI_PROBE);
    let first = Engine::new(config())
        .unwrap()
        .load(&bytes)
        .expect("compiles");
    let cached: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let name = cached[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with(first.sha256()) && name.ends_with(".cwasm"),
        "{name}"
    );

    // A fresh engine (a restarted server) runs the probe from the cached file.
    let engine = Engine::new(config()).unwrap();
    let mut h = weft_engine::harness::Harness::new(engine.clone(), START_MS, 7);
    h.register(PROBE, engine.load(&bytes).expect("loads from the cache"));
    let report = h
        .run(PROBE, "probe-1", json(j!({ "probe": "open" })))
        .unwrap();
    assert_eq!(
        output(&report.outcome),
        j!({ "error": "FileNotFoundError" })
    );

    // Written as a new file: the engine above maps the old one, as a server's would.
    drop((h, engine));
    std::fs::remove_file(&cached[0]).unwrap();
    std::fs::write(&cached[0], b"not a compiled component").unwrap();
    Engine::new(config())
        .unwrap()
        .load(&bytes)
        .expect("a damaged cache file is compiled again");
    assert!(std::fs::read(&cached[0]).unwrap().len() > 1000);
}
