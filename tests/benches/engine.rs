//! Engine benchmarks: compile, instantiate (on-demand and pooling), host-call overhead, replay
//! speed on a 10,000-event history, and memory per suspended cached instance.
//!
//! `cargo bench -p weft-tests --bench engine`. Figures are in BENCHMARKS.md.

use std::sync::Arc;

use serde_json::json;
use weft_engine::harness::Harness;
use weft_engine::replay::replay;
use weft_engine::weft_history::{ErrorInfo, History, Payload};
use weft_engine::{Activation, Engine, EngineConfig, ManualClock, NewRun, RunOptions, WorkflowRun};

fn engine(pooling: bool) -> Engine {
    Engine::new(EngineConfig {
        pooling_instances: pooling.then_some(2_000),
        ..EngineConfig::default()
    })
    .expect("engine")
}

fn payload(v: serde_json::Value) -> Payload {
    Payload(serde_json::to_vec(&v).expect("json"))
}

#[divan::bench(sample_count = 10)]
fn compile_hello_activity(bencher: divan::Bencher) {
    let e = engine(false);
    let bytes = weft_tests::component(weft_tests::HELLO_ACTIVITY);
    bencher.bench(|| e.load(&bytes).expect("loads"));
}

#[divan::bench(args = [false, true])]
fn instantiate_hello_activity(bencher: divan::Bencher, pooling: bool) {
    let e = engine(pooling);
    let module = e
        .load(&weft_tests::component(weft_tests::HELLO_ACTIVITY))
        .expect("loads");
    bencher.bench(|| e.instantiate_only(&module).expect("instantiates"));
}

/// One run of `edge-cases` drawing `n` random numbers (each a host call) to the end.
#[divan::bench(args = [0, 10_000])]
fn host_calls_random(bencher: divan::Bencher, n: u32) {
    let e = engine(false);
    let module = e
        .load(&weft_tests::component(weft_tests::EDGE_CASES))
        .expect("loads");
    bencher.bench(|| {
        let mut h = Harness::new(e.clone(), 0, 1);
        h.register("EdgeCases", module.clone());
        h.run(
            "EdgeCases",
            "bench",
            payload(json!({"mode": "random", "n": n})),
        )
        .expect("runs")
    });
}

fn ten_thousand_event_history(e: &Engine) -> History {
    let module = e
        .load(&weft_tests::component(weft_tests::EDGE_CASES))
        .expect("loads");
    let mut h = Harness::new(e.clone(), 0, 1);
    h.register("EdgeCases", module)
        .activity("step", |i: u64| -> Result<u64, ErrorInfo> { Ok(i) });
    let report = h
        .run(
            "EdgeCases",
            "bench",
            payload(json!({"mode": "activities", "n": 5_000})),
        )
        .expect("runs");
    report.history().clone()
}

/// Replays a 10,002-event history (5,000 activities) on a fresh instance.
#[divan::bench(sample_count = 10)]
fn replay_10k_events(bencher: divan::Bencher) {
    let e = engine(false);
    let module = e
        .load(&weft_tests::component(weft_tests::EDGE_CASES))
        .expect("loads");
    let history = ten_thousand_event_history(&e);
    assert!(history.events.len() >= 10_000);
    bencher
        .counter(divan::counter::ItemsCount::new(history.events.len()))
        .with_inputs(|| history.clone())
        .bench_values(|h| replay(&e, &module, h).expect("replays"));
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Resident memory added by each approval run suspended in wait-any, instance kept.
fn memory_per_suspended_instance(pooling: bool) -> f64 {
    const RUNS: usize = 1_000;
    let e = engine(pooling);
    let module = e
        .load(&weft_tests::component(weft_tests::APPROVAL))
        .expect("loads");
    let options = RunOptions {
        clock: Arc::new(ManualClock::new(0)),
        log_sink: None,
        logs_during_replay: false,
        probe: None,
    };
    let start = |i: usize| {
        let mut run = WorkflowRun::start(
            &e,
            &module,
            NewRun {
                workflow_id: format!("approval-{i}"),
                run_id: format!("run-{i}"),
                workflow_type: "Approval".into(),
                task_queue: "q".into(),
                run_number: 1,
                input: payload(json!({"request": "deploy", "timeout_ms": 3_600_000})),
                seed: i as u64,
            },
            options.clone(),
        );
        assert_eq!(run.activate().expect("activates"), Activation::Suspended);
        run
    };
    // Warm up allocator and code pages.
    let warm: Vec<_> = (0..50).map(start).collect();
    let before = rss_bytes();
    let runs: Vec<_> = (0..RUNS).map(start).collect();
    let after = rss_bytes();
    drop((warm, runs));
    (after.saturating_sub(before)) as f64 / RUNS as f64
}

fn main() {
    for pooling in [false, true] {
        let bytes = memory_per_suspended_instance(pooling);
        println!(
            "memory per suspended cached instance (approval, pooling={pooling}): {:.1} KiB",
            bytes / 1024.0
        );
    }
    divan::main();
}
