//! Engine benchmarks: compile, instantiate (on-demand and pooling), host-call overhead, replay
//! speed on a 10,000-event history, and memory per suspended cached instance; the same for a
//! Python workflow (componentize-py), plus its first activation after a restart (compiled
//! component read from the on-disk cache).
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

/// A run of `workflow_type` (in `component`) to the end, its `step` activities echoing their
/// input: the histories the replay benchmarks replay.
fn activities_history(
    e: &Engine,
    component: &str,
    workflow_type: &str,
    input: serde_json::Value,
) -> History {
    let module = e.load(&weft_tests::component(component)).expect("loads");
    let mut h = Harness::new(e.clone(), 0, 1);
    h.register(workflow_type, module)
        .activity("step", |i: u64| -> Result<u64, ErrorInfo> { Ok(i) });
    let report = h.run(workflow_type, "bench", payload(input)).expect("runs");
    report.history().clone()
}

fn ten_thousand_event_history(e: &Engine) -> History {
    activities_history(
        e,
        weft_tests::EDGE_CASES,
        "EdgeCases",
        json!({"mode": "activities", "n": 5_000}),
    )
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

#[divan::bench(args = [false, true], sample_count = 20)]
fn instantiate_python_hello(bencher: divan::Bencher, pooling: bool) {
    let e = engine(pooling);
    let module = e
        .load(&weft_tests::component(weft_tests::PY_HELLO_ACTIVITY))
        .expect("loads");
    bencher.bench(|| e.instantiate_only(&module).expect("instantiates"));
}

fn new_run(workflow_type: &str, i: usize, input: serde_json::Value) -> NewRun {
    NewRun {
        workflow_id: format!("{workflow_type}-{i}"),
        run_id: format!("run-{i}"),
        workflow_type: workflow_type.into(),
        task_queue: "q".into(),
        run_number: 1,
        input: payload(input),
        seed: i as u64,
    }
}

fn quiet() -> RunOptions {
    RunOptions {
        clock: Arc::new(ManualClock::new(0)),
        log_sink: None,
        logs_during_replay: false,
        probe: None,
    }
}

/// A restarted server's first activation of a Python run: a fresh engine reads the compiled
/// component from the cache directory (no compile), instantiates it and runs the workflow to
/// its first wait (the activity).
#[divan::bench(sample_count = 10)]
fn first_python_activation_after_restart(bencher: divan::Bencher) {
    let cache = tempfile::tempdir().expect("tempdir");
    let config = || EngineConfig {
        compiled_cache_dir: Some(cache.path().to_owned()),
        ..EngineConfig::default()
    };
    let bytes = weft_tests::component(weft_tests::PY_HELLO_ACTIVITY);
    Engine::new(config())
        .expect("engine")
        .load(&bytes)
        .expect("compiles");
    bencher.bench(|| {
        let e = Engine::new(config()).expect("engine");
        let module = e.load(&bytes).expect("loads from the cache");
        let mut run = WorkflowRun::start(
            &e,
            &module,
            new_run("GreetingWorkflow", 0, json!("World")),
            quiet(),
        );
        assert_eq!(run.activate().expect("activates"), Activation::Suspended);
    });
}

/// Replays a Python run of 1,000 sequential activities (2,003 events) on a fresh instance.
#[divan::bench(sample_count = 10)]
fn replay_python_1000_activities(bencher: divan::Bencher) {
    let e = engine(false);
    let module = e
        .load(&weft_tests::component(weft_tests::PY_SDK_PROBE))
        .expect("loads");
    let history = activities_history(
        &e,
        weft_tests::PY_SDK_PROBE,
        "SdkProbe",
        json!({"case": "activities", "n": 1_000}),
    );
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

/// Resident memory added by each run of `workflow_type` suspended in wait-any with `input`,
/// instance kept (`runs` of them, after a few to warm up allocator and code pages).
fn memory_per_suspended(
    e: &Engine,
    component: &str,
    workflow_type: &str,
    input: serde_json::Value,
    runs: usize,
) -> f64 {
    let module = e.load(&weft_tests::component(component)).expect("loads");
    let start = |i: usize| {
        let mut run = WorkflowRun::start(
            e,
            &module,
            new_run(workflow_type, i, input.clone()),
            quiet(),
        );
        assert_eq!(run.activate().expect("activates"), Activation::Suspended);
        run
    };
    let warm: Vec<_> = (0..runs.div_ceil(20)).map(start).collect();
    let before = rss_bytes();
    let kept: Vec<_> = (0..runs).map(start).collect();
    let after = rss_bytes();
    drop((warm, kept));
    (after.saturating_sub(before)) as f64 / runs as f64
}

fn main() {
    let python = memory_per_suspended(
        &engine(false),
        weft_tests::PY_SDK_PROBE,
        "SdkProbe",
        json!({"case": "signal"}),
        100,
    );
    println!(
        "memory per suspended cached instance (Python sdk-probe waiting for a signal): {:.2} MiB",
        python / (1024.0 * 1024.0)
    );
    for pooling in [false, true] {
        let bytes = memory_per_suspended(
            &engine(pooling),
            weft_tests::APPROVAL,
            "Approval",
            json!({"request": "deploy", "timeout_ms": 3_600_000}),
            1_000,
        );
        println!(
            "memory per suspended cached instance (approval, pooling={pooling}): {:.1} KiB",
            bytes / 1024.0
        );
    }
    divan::main();
}
