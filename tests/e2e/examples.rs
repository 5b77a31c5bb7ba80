//! Each example runs to completion in-process with closure activities; its history replays
//! clean; keeping the instance and rebuilding it by replay at every step give byte-identical
//! histories.

use serde_json::{Value, json as j};
use weft_engine::harness::{Harness, ResumeMode, RunReport};
use weft_engine::replay::{ReplayVerdict, replay};
use weft_engine::weft_history::{ErrorInfo, EventKind};
use weft_engine::{Engine, RunOutcome};

use crate::support::*;

/// Runs `setup`'s workflow in both resume modes, checks the histories are byte-identical and
/// replay clean, and returns the outcome's JSON.
fn run_both_ways(
    component: &str,
    workflow_type: &str,
    input: Value,
    setup: impl Fn(&mut Harness),
) -> (Value, RunReport) {
    let engine = engine();
    let module = load(&engine, component);
    let mut reports = Vec::new();
    for mode in [ResumeMode::KeepInstance, ResumeMode::ReplayEachActivation] {
        let mut h = harness(&engine);
        h.register(workflow_type, module.clone()).mode(mode);
        setup(&mut h);
        reports.push(h.run(workflow_type, "wf-1", json(input.clone())).unwrap());
    }
    let (cached, rebuilt) = (&reports[0], &reports[1]);
    assert_eq!(
        cached.history().to_json_pretty(),
        rebuilt.history().to_json_pretty(),
        "resuming from cache and rebuilding by replay must give the same history"
    );
    assert_replays_clean(&engine, &module, cached);
    let output = match &cached.outcome {
        RunOutcome::Completed(p) => serde_json::from_slice(&p.0).unwrap(),
        other => panic!("{workflow_type} did not complete: {other:?}"),
    };
    (output, reports.remove(0))
}

fn assert_replays_clean(engine: &Engine, module: &weft_engine::WorkflowModule, report: &RunReport) {
    let history = report.history().clone();
    let events = history.events.len();
    let r = replay(engine, module, history).unwrap();
    assert!(matches!(r.verdict, ReplayVerdict::Clean), "{:?}", r.verdict);
    assert_eq!(r.events, events);
}

fn greeting(input: Value) -> Result<String, ErrorInfo> {
    Ok(format!(
        "{}, {}!",
        input["greeting"].as_str().unwrap_or(""),
        input["name"].as_str().unwrap_or("")
    ))
}

#[test]
fn hello_activity_greets_the_world() {
    let (out, report) = run_both_ways(
        weft_tests::HELLO_ACTIVITY,
        "GreetingWorkflow",
        j!("World"),
        |h| {
            h.activity("compose_greeting", greeting);
        },
    );
    assert_eq!(out, j!("Hello, World!"));
    let names: Vec<&str> = report
        .history()
        .events
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(
        names,
        [
            "RunStarted",
            "ActivityScheduled",
            "ActivityCompleted",
            "RunCompleted"
        ]
    );
    let EventKind::ActivityScheduled {
        name,
        input,
        options,
        ..
    } = &report.history().events[1].kind
    else {
        panic!()
    };
    assert_eq!(name, "compose_greeting");
    assert_eq!(input.0, br#"{"greeting":"Hello","name":"World"}"#);
    assert_eq!(
        options.task_queue.as_deref(),
        Some("hello-activity-task-queue")
    );
    assert_eq!(options.start_to_close_timeout_ms, Some(10_000));
}

#[test]
fn ml_pipeline_normalizes_on_cpu_and_classifies_on_the_inference_queue() {
    let input = j!({
        "tickets": ["  My Card was CHARGED twice ", "app crashes on login"],
        "labels": [{"name": "billing", "description": "payments"}, {"name": "bugs", "description": "defects"}]
    });
    let (out, report) = run_both_ways(weft_tests::ML_PIPELINE, "MlPipeline", input, |h| {
        h.activity(
            "normalize",
            |texts: Vec<String>| -> Result<Vec<String>, ErrorInfo> {
                Ok(texts.iter().map(|t| t.trim().to_lowercase()).collect())
            },
        )
        .activity("classify", |input: Value| -> Result<Value, ErrorInfo> {
            let text = input["text"].as_str().unwrap_or("");
            let label = if text.contains("charged") {
                "billing"
            } else {
                "bugs"
            };
            Ok(j!({"label": label, "score": 0.9}))
        });
    });
    assert_eq!(
        out,
        j!({
            "routes": [
                {"ticket": 0, "text": "my card was charged twice", "label": "billing",
                 "score": 0.9, "decided_by": "model"},
                {"ticket": 1, "text": "app crashes on login", "label": "bugs",
                 "score": 0.9, "decided_by": "model"}
            ],
            "queues": {"billing": [0], "bugs": [1]}
        })
    );
    let queues: Vec<Option<String>> = report
        .history()
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActivityScheduled { options, .. } => Some(options.task_queue.clone()),
            _ => None,
        })
        .collect();
    let cpu = Some("cpu".to_string());
    let inference = Some("inference".to_string());
    assert_eq!(queues, [cpu, inference.clone(), inference]);
    let retry = report.history().events.iter().find_map(|e| match &e.kind {
        EventKind::ActivityScheduled { name, options, .. } if name == "classify" => {
            options.retry.clone()
        }
        _ => None,
    });
    assert_eq!(retry.map(|r| r.maximum_attempts), Some(5));
}

#[test]
fn timers_and_random_are_recorded_and_time_skips() {
    let (out, report) = run_both_ways(
        weft_tests::TIMERS_AND_RANDOM,
        "TimersAndRandom",
        j!({"sleep_ms": 50}),
        |_| {},
    );
    assert_eq!(out["started_ms"], j!(START_MS));
    assert_eq!(out["woke_ms"], j!(START_MS + 50));
    assert_eq!(out["slept_at_least_ms"], j!(true));
    assert_eq!(out["timer_vs_timer"], j!("short"));
    let uuid = out["uuid"].as_str().unwrap();
    assert_eq!(uuid.len(), 36);
    assert_eq!(&uuid[14..15], "4", "version 4 uuid: {uuid}");
    // A run with the same seed draws the same values; the seed is in the history.
    let (again, _) = run_both_ways(
        weft_tests::TIMERS_AND_RANDOM,
        "TimersAndRandom",
        j!({"sleep_ms": 50}),
        |_| {},
    );
    assert_eq!(again, out);
    assert!(
        report
            .history()
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::CancelRequested { .. }))
    );
}

#[test]
fn fan_out_runs_a_thousand_activities_concurrently() {
    let (out, report) = run_both_ways(weft_tests::FAN_OUT, "FanOut", j!({"n": 1000}), |h| {
        h.activity("square", |i: u64| -> Result<u64, ErrorInfo> { Ok(i * i) });
    });
    let expected: u64 = (0..1000u64).map(|i| i * i).sum();
    assert_eq!(out, j!({"n": 1000, "sum": expected}));
    // All 1,000 were scheduled before the first result was taken.
    let first_completion = report
        .history()
        .events
        .iter()
        .position(|e| matches!(e.kind, EventKind::ActivityCompleted { .. }))
        .unwrap();
    assert_eq!(first_completion, 1001);
}

#[test]
fn fan_out_refuses_more_than_a_thousand() {
    let engine = engine();
    let mut h = harness(&engine);
    h.register("FanOut", load(&engine, weft_tests::FAN_OUT));
    let report = h.run("FanOut", "wf", json(j!({"n": 1001}))).unwrap();
    let RunOutcome::Failed(e) = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(e.kind, "BadInput");
    assert!(e.message.contains("at most 1000"), "{}", e.message);
}

#[test]
fn approval_takes_the_signal_when_it_comes_first() {
    let (out, report) = run_both_ways(
        weft_tests::APPROVAL,
        "Approval",
        j!({"request": "deploy", "timeout_ms": 3_600_000}),
        |h| {
            h.signal("approve", json(j!({"approver": "ada"})), 60_000);
        },
    );
    assert_eq!(
        out,
        j!({"request": "deploy", "approved": true, "approver": "ada"})
    );
    assert_eq!(
        report.history().terminal().unwrap().timestamp_ms,
        START_MS + 60_000
    );
}

#[test]
fn approval_times_out_when_no_signal_comes() {
    let (out, report) = run_both_ways(
        weft_tests::APPROVAL,
        "Approval",
        j!({"request": "deploy", "timeout_ms": 1_000}),
        |h| {
            h.signal("approve", json(j!({"approver": "late"})), 5_000);
        },
    );
    assert_eq!(
        out,
        j!({"request": "deploy", "approved": false, "approver": null})
    );
    assert_eq!(
        report.history().terminal().unwrap().timestamp_ms,
        START_MS + 1_000
    );
}

#[test]
fn saga_compensates_in_reverse_order_when_a_step_fails() {
    let (out, report) = run_both_ways(weft_tests::SAGA, "Saga", j!({"traveller": "ada"}), |h| {
        for step in [
            "reserve_flight",
            "reserve_hotel",
            "cancel_flight",
            "cancel_hotel",
            "refund_card",
        ] {
            h.activity(step, move |_: Value| -> Result<String, ErrorInfo> {
                Ok(format!("{step} ok"))
            });
        }
        h.activity("charge_card", |_: Value| -> Result<String, ErrorInfo> {
            Err(ErrorInfo::new("CardDeclined", "insufficient funds"))
        });
    });
    assert_eq!(out["booked"], j!(false));
    assert_eq!(out["done"], j!(["reserve_flight", "reserve_hotel"]));
    assert_eq!(
        out["compensated"],
        j!([
            "cancel_hotel (for reserve_hotel)",
            "cancel_flight (for reserve_flight)"
        ])
    );
    assert!(out["error"].as_str().unwrap().contains("CardDeclined"));
    let order: Vec<String> = report
        .history()
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ActivityScheduled { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [
            "reserve_flight",
            "reserve_hotel",
            "charge_card",
            "cancel_hotel",
            "cancel_flight"
        ]
    );
}

#[test]
fn saga_books_when_every_step_succeeds() {
    let (out, _) = run_both_ways(weft_tests::SAGA, "Saga", j!({"traveller": "ada"}), |h| {
        for step in ["reserve_flight", "reserve_hotel", "charge_card"] {
            h.activity(step, move |_: Value| -> Result<String, ErrorInfo> {
                Ok(format!("{step} ok"))
            });
        }
    });
    assert_eq!(out["booked"], j!(true));
    assert_eq!(out["compensated"], j!([]));
}

#[test]
fn continue_as_new_starts_numbered_runs_until_done() {
    let engine = engine();
    let mut h = harness(&engine);
    h.register("EdgeCases", load(&engine, weft_tests::EDGE_CASES));
    let report = h
        .run(
            "EdgeCases",
            "counter",
            json(j!({"mode": "count", "run": 1, "until": 3, "seen": []})),
        )
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Completed(json(j!([1, 2, 3]))));
    assert_eq!(report.runs.len(), 3);
    let numbers: Vec<u32> = report.runs.iter().map(|r| r.header.run_number).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert!(
        report
            .runs
            .iter()
            .all(|r| r.header.workflow_id == "counter")
    );
    assert!(matches!(
        report.runs[0].terminal().unwrap().kind,
        EventKind::RunContinuedAsNew { .. }
    ));
}

#[test]
fn child_workflows_run_and_return_to_the_parent() {
    let (out, report) = run_both_ways(
        weft_tests::EDGE_CASES,
        "EdgeCases",
        j!({"mode": "children", "n": 4}),
        |_| {},
    );
    assert_eq!(out, j!(6));
    let ids: Vec<String> = report
        .history()
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ChildWorkflowStarted { workflow_id, .. } => Some(workflow_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["wf-1/0", "wf-1/1", "wf-1/2", "wf-1/3"]);
    assert_eq!(report.children.len(), 4);
}
