//! Replaying a history on a changed module: caught, naming the event.

use serde_json::json as j;
use weft_engine::replay::{ReplayVerdict, replay};
use weft_engine::weft_history::ErrorInfo;
use weft_engine::{RunError, WorkflowRun};

use crate::support::*;

fn hello_v1_history() -> weft_engine::weft_history::History {
    let engine = engine();
    let mut h = harness(&engine);
    h.register(
        "GreetingWorkflow",
        load(&engine, weft_tests::HELLO_ACTIVITY),
    )
    .activity(
        "compose_greeting",
        |_: serde_json::Value| -> Result<String, ErrorInfo> { Ok("Hello, World!".into()) },
    );
    h.run("GreetingWorkflow", "greet", json(j!("World")))
        .unwrap()
        .history()
        .clone()
}

#[test]
fn a_new_version_that_adds_a_timer_fails_replay_naming_the_event() {
    let engine = engine();
    let v2 = load(&engine, weft_tests::HELLO_ACTIVITY_V2);
    let report = replay(&engine, &v2, hello_v1_history()).unwrap();
    assert!(!report.same_module);
    let ReplayVerdict::NonDeterminism(nd) = report.verdict else {
        panic!("{:?}", report.verdict)
    };
    assert_eq!(nd.seq, 2);
    assert_eq!(
        nd.recorded,
        r#"ActivityScheduled #0 compose_greeting({"greeting":"Hello","name":"World"})"#
    );
    assert_eq!(nd.new, "TimerStarted #0 1000ms");
}

#[test]
fn the_same_version_replays_clean() {
    let engine = engine();
    let v1 = load(&engine, weft_tests::HELLO_ACTIVITY);
    let report = replay(&engine, &v1, hello_v1_history()).unwrap();
    assert!(report.same_module);
    assert!(matches!(report.verdict, ReplayVerdict::Clean));
}

#[test]
fn resuming_a_run_on_another_module_is_refused() {
    let engine = engine();
    let v2 = load(&engine, weft_tests::HELLO_ACTIVITY_V2);
    let err = WorkflowRun::resume(&engine, &v2, hello_v1_history(), Default::default())
        .err()
        .expect("refused");
    assert!(matches!(err, RunError::ModuleMismatch { .. }), "{err}");
}

#[test]
fn patched_keeps_old_histories_on_the_old_path_and_new_runs_on_the_new() {
    let engine = engine();
    let (v1, v2, v3) = (
        load(&engine, weft_tests::HELLO_ACTIVITY),
        load(&engine, weft_tests::HELLO_ACTIVITY_V2),
        load(&engine, weft_tests::HELLO_ACTIVITY_V3),
    );
    // A history recorded by version 1 has no marker: version 3 takes the old path.
    let report = replay(&engine, &v3, hello_v1_history()).unwrap();
    assert!(
        matches!(report.verdict, ReplayVerdict::Clean),
        "{:?}",
        report.verdict
    );

    // A run on version 3 records the marker, then the new code's timer.
    let mut h = harness(&engine);
    h.register("GreetingWorkflow", v3.clone()).activity(
        "compose_greeting",
        |_: serde_json::Value| -> Result<String, ErrorInfo> { Ok("Hello, World!".into()) },
    );
    let run = h
        .run("GreetingWorkflow", "greet-v3", json(j!("World")))
        .unwrap();
    let history = run.history().clone();
    let kinds: Vec<String> = history.events.iter().map(|e| e.kind.to_string()).collect();
    assert_eq!(
        kinds[1], r#"MarkerRecorded "wait-before-greeting""#,
        "{kinds:?}"
    );
    assert_eq!(kinds[2], "TimerStarted #0 1000ms", "{kinds:?}");
    assert!(
        kinds[4].starts_with("ActivityScheduled #1 compose_greeting"),
        "{kinds:?}"
    );

    // The marker survives the history file, and the run replays on its own module.
    let reloaded =
        weft_engine::weft_history::History::from_json(history.to_json_pretty().as_bytes()).unwrap();
    assert_eq!(reloaded, history);
    let report = replay(&engine, &v3, reloaded.clone()).unwrap();
    assert!(
        matches!(report.verdict, ReplayVerdict::Clean),
        "{:?}",
        report.verdict
    );

    // Code without the change cannot replay a run that took the new path: it names the marker.
    for old in [&v1, &v2] {
        let report = replay(&engine, old, reloaded.clone()).unwrap();
        let ReplayVerdict::NonDeterminism(nd) = report.verdict else {
            panic!("{:?}", report.verdict)
        };
        assert_eq!(nd.seq, 2);
        assert_eq!(nd.recorded, r#"MarkerRecorded "wait-before-greeting""#);
    }
}
