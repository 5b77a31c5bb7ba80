//! The guest contract of `cancel` (wit/workflow.wit), checked the same way on the in-process
//! harness (what `weft run` drives) and on a real server over SQLite and PostgreSQL: every
//! handle kind cancelled at every stage, and the parent close policy of a child left running.

use std::time::Duration;

use weft_engine::harness::Harness;
use weft_engine::{Engine, EngineConfig, RunOutcome};
use weft_history::{EventKind, History, Payload};
use weft_proto::{self as proto, RunStatus};
use weft_worker::{ActivityContext, ActivityError, Worker};

mod common;
use common::*;

/// What the wait on a cancelled handle gives, on the harness and on a server. They differ only
/// where the harness cannot be mid-operation: it runs activities and children in zero workflow
/// time, so by the time the workflow cancels them there they have completed first.
struct Case {
    op: &'static str,
    stage: &'static str,
    harness: &'static str,
    server: &'static str,
}

const CASES: &[Case] = &[
    case("activity", "before", "cancelled", "cancelled"),
    case("activity", "runs", "ok", "cancelled"),
    case("activity", "completed", "ok", "ok"),
    case("activity", "twice", "cancelled", "cancelled"),
    case("timer", "before", "cancelled", "cancelled"),
    case("timer", "runs", "cancelled", "cancelled"),
    case("timer", "completed", "ok", "ok"),
    case("timer", "twice", "cancelled", "cancelled"),
    case("signal", "before", "cancelled", "cancelled"),
    case("signal", "runs", "cancelled", "cancelled"),
    case("signal", "completed", "ok", "ok"),
    case("signal", "twice", "cancelled", "cancelled"),
    case("child", "before", "cancelled", "cancelled"),
    case("child", "runs", "ok", "cancelled"),
    case("child", "completed", "ok", "ok"),
    case("child", "twice", "cancelled", "cancelled"),
];

const fn case(
    op: &'static str,
    stage: &'static str,
    harness: &'static str,
    server: &'static str,
) -> Case {
    Case {
        op,
        stage,
        harness,
        server,
    }
}

/// The workflow's input for `case`: operations that must still be pending when cancelled
/// last a minute; the rest complete at once.
fn input(case: &Case) -> String {
    let ms = match (case.op, case.stage) {
        (_, "completed") => 10,
        ("activity", "runs") => 5_000,
        ("activity", _) => 0,
        _ => 60_000,
    };
    serde_json::json!({
        "mode": "cancel_at", "op": case.op, "stage": case.stage, "ms": ms, "queue": "cancel-ops"
    })
    .to_string()
}

fn workflow_id(case: &Case) -> String {
    format!("cancel-{}-{}", case.op, case.stage)
}

/// How a child left running ends, by its parent's close policy.
const POLICIES: &[(&str, RunStatus, &str)] = &[
    ("terminate", RunStatus::Terminated, "RunTerminated"),
    ("default", RunStatus::Terminated, "RunTerminated"),
    ("request_cancel", RunStatus::Cancelled, "RunFailed"),
    ("abandon", RunStatus::Completed, "RunCompleted"),
];

fn outcome_of(output: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(output).expect("JSON output");
    v["outcome"].as_str().unwrap_or_default().to_owned()
}

fn harness() -> Harness {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let module = engine
        .load(&std::fs::read(weft_tests::EDGE_CASES).unwrap())
        .unwrap();
    let mut harness = Harness::new(engine, 1_700_000_000_000, 7);
    harness.register("EdgeCases", module);
    harness.raw_activity("op", |_| Ok(Payload(b"\"done\"".to_vec())));
    harness
}

fn kinds(h: &History) -> Vec<&'static str> {
    h.events.iter().map(|e| e.kind.name()).collect()
}

#[test]
fn every_handle_kind_cancels_at_every_stage_on_the_harness() {
    for case in CASES {
        let mut harness = harness();
        if case.op == "signal" && case.stage == "completed" {
            harness.signal("go", Payload(b"1".to_vec()), 0);
        }
        let report = harness
            .run(
                "EdgeCases",
                &workflow_id(case),
                Payload(input(case).into_bytes()),
            )
            .unwrap_or_else(|e| panic!("{} {}: {e}", case.op, case.stage));
        let RunOutcome::Completed(output) = &report.outcome else {
            panic!("{} {}: {:?}", case.op, case.stage, report.outcome);
        };
        assert_eq!(
            outcome_of(&output.0),
            case.harness,
            "{} cancelled {}: {:?}",
            case.op,
            case.stage,
            kinds(report.history())
        );
        if case.op == "child" {
            let child = report.children.first().expect("the child ran");
            let last = child.events.last().map(|e| e.kind.name());
            let expected = if case.harness == "cancelled" {
                // Asked to cancel in its `sleep`, it ends there as cancelled.
                assert!(kinds(child).contains(&"RunCancelRequested"), "{child:?}");
                "RunFailed"
            } else {
                "RunCompleted"
            };
            assert_eq!(last, Some(expected), "{} {}", case.op, case.stage);
        }
    }
}

#[test]
fn a_child_left_running_follows_its_parent_close_policy_on_the_harness() {
    for (policy, _, last) in POLICIES {
        let mut harness = harness();
        let input = serde_json::json!({"mode": "leave_child", "policy": policy, "child_ms": 300});
        let report = harness
            .run(
                "EdgeCases",
                "leaver",
                Payload(input.to_string().into_bytes()),
            )
            .unwrap();
        assert!(matches!(report.outcome, RunOutcome::Completed(_)));
        let started = report.history().events.iter().find_map(|e| match &e.kind {
            EventKind::ChildWorkflowStarted {
                parent_close_policy,
                ..
            } => Some(*parent_close_policy),
            _ => None,
        });
        // A start that chose none records the default.
        let recorded = if *policy == "default" {
            "terminate"
        } else {
            policy
        };
        assert_eq!(
            started.flatten().map(|p| p.as_str()),
            Some(recorded),
            "{policy}"
        );
        let child = report.children.first().expect("the child ran");
        assert_eq!(
            child.events.last().map(|e| e.kind.name()),
            Some(*last),
            "{policy}: {:?}",
            kinds(child)
        );
    }
}

/// The same table on a real server.
async fn cancel_table_on_a_server(database: &str) {
    let server = ServerProcess::start(database, free_port()).await;
    let mut client = server.client().await;
    upload(&mut client, "EdgeCases", weft_tests::EDGE_CASES).await;
    let mut worker = Worker::connect(&server.url).await.unwrap();
    worker.activity(
        "op",
        |_: ActivityContext, input: serde_json::Value| async move {
            let ms = input["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, ActivityError>("done".to_owned())
        },
    );
    let worker = tokio::spawn(async move {
        let _ = worker.run("cancel-ops", 32, std::future::pending()).await;
    });
    for case in CASES {
        start(&mut client, "EdgeCases", &workflow_id(case), &input(case)).await;
        if case.op == "signal" && case.stage == "completed" {
            client
                .signal_workflow(proto::SignalWorkflowRequest {
                    workflow_id: workflow_id(case),
                    signal_name: "go".into(),
                    payload: b"1".to_vec(),
                })
                .await
                .unwrap();
        }
    }
    for (policy, _, _) in POLICIES {
        let input = serde_json::json!({"mode": "leave_child", "policy": policy, "child_ms": 300});
        start(
            &mut client,
            "EdgeCases",
            &format!("leaver-{policy}"),
            &input.to_string(),
        )
        .await;
    }
    for case in CASES {
        let id = workflow_id(case);
        let r = wait_result(&mut client, &id).await;
        assert_eq!(r.status, RunStatus::Completed as i32, "{id}: {r:?}");
        let h = history(&mut client, &id).await;
        assert_eq!(
            outcome_of(&r.output),
            case.server,
            "{} cancelled {}: {:?}",
            case.op,
            case.stage,
            kinds(&h)
        );
        if case.op == "child" {
            // The child closes as cancelled, not after its minute of sleep.
            let child = wait_result(&mut client, &format!("{id}/0")).await;
            let expected = if case.server == "cancelled" {
                RunStatus::Cancelled
            } else {
                RunStatus::Completed
            };
            assert_eq!(child.status, expected as i32, "{id}/0: {child:?}");
        }
    }
    for (policy, status, _) in POLICIES {
        let id = format!("leaver-{policy}");
        let r = wait_result(&mut client, &id).await;
        assert_eq!(r.status, RunStatus::Completed as i32, "{id}: {r:?}");
        let child = wait_result(&mut client, &format!("{id}/0")).await;
        assert_eq!(child.status, *status as i32, "{policy}: {child:?}");
    }
    worker.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_handle_kind_cancels_at_every_stage_on_a_server_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    cancel_table_on_a_server(&format!("sqlite:{}", dir.path().join("weft.db").display())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_handle_kind_cancels_at_every_stage_on_a_server_over_postgres() {
    let db = PgDatabase::create();
    cancel_table_on_a_server(&db.url).await;
}
