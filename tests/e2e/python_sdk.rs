//! Python workflows on `weft.workflow` (built by componentize-py from `guest-examples/python`):
//! asyncio fan-out, durable sleeps, cancellation as `CancelledError`, signals, children,
//! continue-as-new, `patched` and failures, each run kept in memory and rebuilt by replay at
//! every activation, with the same history.

use serde_json::{Value, json as j};
use weft_engine::harness::{Harness, ResumeMode};
use weft_engine::replay::{ReplayVerdict, replay};
use weft_engine::weft_history::{ErrorInfo, EventKind, History};
use weft_engine::{Engine, RunOutcome};

use crate::support::*;

const PROBE: &str = "SdkProbe";

fn probe_harness(engine: &Engine, mode: ResumeMode) -> Harness {
    let mut h = harness(engine);
    h.register(PROBE, load(engine, weft_tests::PY_SDK_PROBE))
        .register(
            "GreetingWorkflow",
            load(engine, weft_tests::PY_HELLO_ACTIVITY),
        )
        .mode(mode)
        .activity(
            "compose_greeting",
            |input: Value| -> Result<String, ErrorInfo> {
                Ok(format!(
                    "{}, {}!",
                    input["greeting"].as_str().unwrap_or("?"),
                    input["name"].as_str().unwrap_or("?")
                ))
            },
        )
        .activity("slow", |_: Value| -> Result<String, ErrorInfo> {
            Ok("slow done".into())
        })
        .activity("fails", |_: Value| -> Result<String, ErrorInfo> {
            Err(ErrorInfo::new("Boom", "the activity failed"))
        });
    h
}

/// Runs `case` both ways (instance kept; rebuilt from history at each activation), checks
/// the two histories are the same and that the history replays clean offline.
fn run_case(case: &str, setup: impl Fn(&mut Harness)) -> (RunOutcome, History) {
    let engine = engine();
    let mut results = Vec::new();
    for mode in [ResumeMode::KeepInstance, ResumeMode::ReplayEachActivation] {
        let mut h = probe_harness(&engine, mode);
        setup(&mut h);
        let report = h
            .run(PROBE, "probe-1", json(j!({ "case": case })))
            .unwrap_or_else(|e| panic!("{case} ({mode:?}): {e}"));
        results.push((report.outcome.clone(), report.history().clone()));
    }
    let (kept, rebuilt) = (&results[0], &results[1]);
    assert_eq!(
        kept.0, rebuilt.0,
        "{case}: the outcome depends on the resume mode"
    );
    assert_eq!(
        kept.1.events, rebuilt.1.events,
        "{case}: the history depends on the resume mode"
    );
    let module = load(&engine, weft_tests::PY_SDK_PROBE);
    let report = replay(&engine, &module, kept.1.clone()).expect("replays");
    assert!(
        matches!(report.verdict, ReplayVerdict::Clean),
        "{case}: {:?}",
        report.verdict
    );
    results.swap_remove(0)
}

fn kinds(history: &History) -> Vec<&'static str> {
    history.events.iter().map(|e| e.kind.name()).collect()
}

#[test]
fn temporals_hello_activity_ported_to_python_greets() {
    let engine = engine();
    for mode in [ResumeMode::KeepInstance, ResumeMode::ReplayEachActivation] {
        let mut h = probe_harness(&engine, mode);
        let report = h
            .run("GreetingWorkflow", "greet-1", json(j!("World")))
            .expect("runs");
        assert_eq!(output(&report.outcome), j!("Hello, World!"));
        let scheduled = report.history().events.iter().find_map(|e| match &e.kind {
            EventKind::ActivityScheduled {
                name,
                input,
                options,
                ..
            } => Some((
                name.clone(),
                input.clone(),
                options.start_to_close_timeout_ms,
            )),
            _ => None,
        });
        let (name, input, timeout) = scheduled.expect("an activity was scheduled");
        assert_eq!(name, "compose_greeting");
        assert_eq!(
            serde_json::from_slice::<Value>(&input.0).unwrap(),
            j!({"greeting": "Hello", "name": "World"})
        );
        assert_eq!(timeout, Some(10_000));
    }
}

#[test]
fn gather_fans_out_and_sleeps_are_durable_timers() {
    let (outcome, history) = run_case("gather", |_| {});
    let out = output(&outcome);
    assert_eq!(out["greetings"], j!(["Hello, World!", "Bye, World!"]));
    assert_eq!(out["slept_s"], j!(5.0));
    assert_eq!(out["info"], j!(PROBE));
    let events = kinds(&history);
    // Both activities are scheduled before either is waited for.
    let scheduled: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, k)| **k == "ActivityScheduled")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(scheduled.len(), 2, "{events:?}");
    assert_eq!(scheduled[1], scheduled[0] + 1, "{events:?}");
    let timers = events.iter().filter(|k| **k == "TimerStarted").count();
    // asyncio.sleep(2) and workflow.sleep(3), plus 10 s more when the seeded coin says so.
    assert_eq!(
        timers,
        if out["coin"] == j!(true) { 3 } else { 2 },
        "{events:?}"
    );
}

#[test]
fn a_cancelled_activity_raises_cancelled_error_in_the_workflow() {
    let (outcome, history) = run_case("cancel-activity", |_| {});
    assert_eq!(output(&outcome), j!("activity cancelled"));
    assert!(
        kinds(&history).contains(&"CancelRequested"),
        "{:?}",
        kinds(&history)
    );
}

#[test]
fn a_cancelled_sleeping_task_raises_cancelled_error_and_cancels_its_timer() {
    let (outcome, history) = run_case("cancel-sleep", |_| {});
    assert_eq!(output(&outcome), j!("sleep cancelled"));
    let events = kinds(&history);
    assert!(
        events.contains(&"TimerStarted") && events.contains(&"CancelRequested"),
        "{events:?}"
    );
}

#[test]
fn signals_are_waited_for_in_order() {
    let (outcome, _) = run_case("signal", |h| {
        h.signal("approve", json(j!("first")), 1000).signal(
            "approve",
            json(j!({"by": "ana"})),
            2000,
        );
    });
    assert_eq!(output(&outcome), j!(["first", {"by": "ana"}]));
}

#[test]
fn a_child_workflow_returns_its_result_to_the_parent() {
    let (outcome, _) = run_case("child", |_| {});
    assert_eq!(output(&outcome), j!("leaf of leaf-1"));
}

#[test]
fn continue_as_new_starts_the_next_run() {
    let engine = engine();
    let mut h = probe_harness(&engine, ResumeMode::KeepInstance);
    let report = h
        .run(PROBE, "probe-1", json(j!({"case": "continue"})))
        .expect("runs");
    assert_eq!(output(&report.outcome), j!(3));
    assert_eq!(report.runs.len(), 3);
}

#[test]
fn patched_is_true_for_a_new_run() {
    let (outcome, history) = run_case("patched", |_| {});
    assert_eq!(output(&outcome), j!(true));
    assert!(kinds(&history).contains(&"MarkerRecorded"));
}

#[test]
fn an_activity_failure_raises_activity_error_with_its_kind() {
    let (outcome, _) = run_case("activity-error", |_| {});
    let out = output(&outcome);
    assert_eq!(out["kind"], j!("Boom"), "{out}");
    assert_eq!(out["message"], j!("the activity failed"), "{out}");
}

#[test]
fn an_uncaught_exception_fails_the_run_with_its_type_and_python_traceback() {
    let (outcome, _) = run_case("raise", |_| {});
    let RunOutcome::Failed(error) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(error.kind, "KeyError", "{error:?}");
    assert!(
        error
            .message
            .starts_with("'missing'\nTraceback (most recent call last):"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("sdk_probe.py\", line"),
        "{}",
        error.message
    );
}

#[test]
fn waiting_on_nothing_durable_fails_the_run_saying_what_to_wait_on() {
    let (outcome, _) = run_case("wait-forever", |_| {});
    let RunOutcome::Failed(error) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(error.kind, "Deadlock", "{error:?}");
    assert!(
        error
            .message
            .contains("wait on activities, timers, signals or children"),
        "{}",
        error.message
    );
}

fn triage_harness(engine: &Engine, mode: ResumeMode) -> Harness {
    let mut h = harness(engine);
    h.register("MlPipeline", load(engine, weft_tests::PY_ML_PIPELINE))
        .mode(mode)
        .activity(
            "normalize",
            |tickets: Vec<String>| -> Result<Vec<String>, ErrorInfo> {
                Ok(tickets.iter().map(|t| t.trim().to_lowercase()).collect())
            },
        )
        .activity("classify", |input: Value| -> Result<Value, ErrorInfo> {
            let text = input["text"].as_str().unwrap_or_default();
            Ok(if text.contains("refund") {
                j!({"label": "billing", "score": 0.9})
            } else {
                j!({"label": "billing", "score": 0.1})
            })
        });
    h
}

#[test]
fn the_ml_triage_pipeline_in_python_routes_by_model_then_by_human_review() {
    let engine = engine();
    let input = j!({
        "tickets": ["  I want a REFUND  ", "the app crashes"],
        "labels": [{"name": "billing", "description": "money"}, {"name": "bug", "description": "defects"}],
        "review_timeout_ms": 60000,
    });
    let mut outcomes = Vec::new();
    for mode in [ResumeMode::KeepInstance, ResumeMode::ReplayEachActivation] {
        let mut h = triage_harness(&engine, mode);
        h.signal("review", json(j!({"ticket": 1, "label": "bug"})), 1000);
        let report = h
            .run("MlPipeline", "triage-1", json(input.clone()))
            .expect("runs");
        outcomes.push(output(&report.outcome));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    let out = &outcomes[0];
    assert_eq!(out["routes"][0]["text"], j!("i want a refund"));
    assert_eq!(out["routes"][0]["decided_by"], j!("model"));
    assert_eq!(out["routes"][1]["label"], j!("bug"));
    assert_eq!(out["routes"][1]["decided_by"], j!("human"));
    assert_eq!(out["queues"], j!({"billing": [0], "bug": [1]}));

    // No review before the window closes: the unsure ticket waits for a human.
    let mut h = triage_harness(&engine, ResumeMode::KeepInstance);
    let report = h.run("MlPipeline", "triage-2", json(input)).expect("runs");
    let out = output(&report.outcome);
    assert_eq!(out["routes"][1]["label"], j!("needs-human"));
    assert_eq!(out["routes"][1]["decided_by"], j!("timeout"));
}

#[test]
fn random_choice_in_a_workflow_takes_the_same_branches_on_replay() {
    let engine = engine();
    let module = load(&engine, weft_tests::PY_COIN_FLIP);
    let mut runs = Vec::new();
    for mode in [ResumeMode::KeepInstance, ResumeMode::ReplayEachActivation] {
        let mut h = harness(&engine);
        h.register("CoinFlip", module.clone()).mode(mode);
        let report = h.run("CoinFlip", "flips", json(j!(8))).expect("runs");
        let out = output(&report.outcome);
        let slept: Vec<bool> = serde_json::from_value(out["slept"].clone()).unwrap();
        let heads = slept.iter().filter(|s| **s).count();
        // Each head is one durable 10 s timer, in workflow time.
        assert_eq!(out["seconds"], j!((heads * 10) as f64), "{out}");
        assert_eq!(
            kinds(report.history())
                .iter()
                .filter(|k| **k == "TimerStarted")
                .count(),
            heads
        );
        runs.push((slept, report.history().clone()));
    }
    assert_eq!(runs[0].0, runs[1].0);
    assert!(
        runs[0].0.contains(&true) && runs[0].0.contains(&false),
        "{:?}",
        runs[0].0
    );
    let report = replay(&engine, &module, runs[0].1.clone()).expect("replays");
    assert!(
        matches!(report.verdict, ReplayVerdict::Clean),
        "{:?}",
        report.verdict
    );
}
