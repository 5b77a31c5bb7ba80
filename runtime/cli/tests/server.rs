//! The server as users run it: a real `weft server` process (killed with SIGKILL in the crash
//! test), real gRPC over loopback, the worker crate, SQLite files and the local PostgreSQL.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tonic::Code;
use weft_proto::worker_service_client::WorkerServiceClient;
use weft_proto::{self as proto, RunStatus};
use weft_worker::{ActivityContext, ActivityError, Worker};

mod common;
use common::*;

async fn hello_end_to_end(database: &str) {
    let server = ServerProcess::start(database, free_port()).await;
    let mut client = server.client().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    let worker = spawn_hello_worker(&server.url, 0, false).await;
    start(&mut client, "GreetingWorkflow", "greet-1", "\"World\"").await;
    let result = wait_result(&mut client, "greet-1").await;
    assert_eq!(result.status, RunStatus::Completed as i32);
    assert_eq!(
        String::from_utf8(result.output).unwrap(),
        "\"Hello, World! (attempt 1)\""
    );
    // The history the server exports replays clean offline.
    let dir = tempfile::tempdir().unwrap();
    let h = history(&mut client, "greet-1").await;
    assert!(
        replays_clean(dir.path(), &h, weft_tests::HELLO_ACTIVITY).contains("replay OK: 4 events")
    );
    // And the CLI client reads the same result.
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["--server", &server.url, "result", "greet-1"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "\"Hello, World! (attempt 1)\"\n"
    );
    worker.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_activity_end_to_end_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    hello_end_to_end(&format!("sqlite:{}", dir.path().join("weft.db").display())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_activity_end_to_end_on_postgres() {
    let db = PgDatabase::create();
    hello_end_to_end(&db.url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_survive_a_sigkill_of_the_server_without_lost_or_duplicated_events() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let port = free_port();
    let server = ServerProcess::start(&database, port).await;
    let mut client = server.client().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    upload(
        &mut client,
        "TimersAndRandom",
        weft_tests::TIMERS_AND_RANDOM,
    )
    .await;
    upload(&mut client, "FanOut", weft_tests::FAN_OUT).await;
    // Sleeping runs, runs awaiting an activity (no worker yet), and a fan-out.
    for i in 0..5 {
        start(
            &mut client,
            "TimersAndRandom",
            &format!("sleep-{i}"),
            "{\"sleep_ms\": 1500}",
        )
        .await;
        start(
            &mut client,
            "GreetingWorkflow",
            &format!("greet-{i}"),
            "\"World\"",
        )
        .await;
    }
    start(&mut client, "FanOut", "fan", "{\"n\": 50}").await;
    server.kill();

    let server = ServerProcess::start(&database, port).await;
    let mut client = server.client().await;
    let worker = spawn_hello_worker(&server.url, 0, false).await;
    let mut square = Worker::connect(&server.url).await.unwrap();
    square.activity("square", |_: ActivityContext, i: u64| async move {
        Ok::<_, ActivityError>(i * i)
    });
    let square = tokio::spawn(async move {
        square
            .run("default", 8, std::future::pending())
            .await
            .unwrap()
    });
    for i in 0..5 {
        let r = wait_result(&mut client, &format!("sleep-{i}")).await;
        assert_eq!(r.status, RunStatus::Completed as i32, "sleep-{i}");
        let out: serde_json::Value = serde_json::from_slice(&r.output).unwrap();
        assert_eq!(out["slept_at_least_ms"], true);
        let r = wait_result(&mut client, &format!("greet-{i}")).await;
        assert_eq!(r.status, RunStatus::Completed as i32, "greet-{i}");
    }
    let r = wait_result(&mut client, "fan").await;
    let out: serde_json::Value = serde_json::from_slice(&r.output).unwrap();
    assert_eq!(out["sum"], (0..50u64).map(|i| i * i).sum::<u64>());
    for id in ["sleep-0", "greet-0", "fan"] {
        let h = history(&mut client, id).await;
        h.check().expect("numbered 1..n, one terminal event");
        assert_eq!(
            h.events
                .iter()
                .filter(|e| e.kind.name() == "RunStarted")
                .count(),
            1,
            "{id}"
        );
    }
    let fan = history(&mut client, "fan").await;
    let scheduled = fan
        .events
        .iter()
        .filter(|e| e.kind.name() == "ActivityScheduled")
        .count();
    let completed = fan
        .events
        .iter()
        .filter(|e| e.kind.name() == "ActivityCompleted")
        .count();
    assert_eq!((scheduled, completed), (50, 50));
    worker.abort();
    square.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flaky_activity_is_retried_and_a_non_retryable_error_reaches_the_workflow() {
    let (_dir, server, mut client) = sqlite_server().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    let worker = spawn_hello_worker(&server.url, 2, false).await;
    start(&mut client, "GreetingWorkflow", "flaky", "\"World\"").await;
    let r = wait_result(&mut client, "flaky").await;
    assert_eq!(
        String::from_utf8(r.output).unwrap(),
        "\"Hello, World! (attempt 3)\""
    );
    worker.abort();

    let worker = spawn_hello_worker(&server.url, 0, true).await;
    start(&mut client, "GreetingWorkflow", "doomed", "\"World\"").await;
    let r = wait_result(&mut client, "doomed").await;
    assert_eq!(r.status, RunStatus::Failed as i32);
    let error = r.error.unwrap();
    assert_eq!(error.kind, "BadName");
    assert!(
        error.message.contains("no greeting for World"),
        "{}",
        error.message
    );
    worker.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_reaches_a_waiting_workflow() {
    let (_dir, _server, mut client) = sqlite_server().await;
    upload(&mut client, "Approval", weft_tests::APPROVAL).await;
    start(
        &mut client,
        "Approval",
        "approve-1",
        "{\"request\": \"deploy\", \"timeout_ms\": 3600000}",
    )
    .await;
    client
        .signal_workflow(proto::SignalWorkflowRequest {
            workflow_id: "approve-1".into(),
            signal_name: "approve".into(),
            payload: br#"{"approver": "ada"}"#.to_vec(),
        })
        .await
        .unwrap();
    let r = wait_result(&mut client, "approve-1").await;
    let out: serde_json::Value = serde_json::from_slice(&r.output).unwrap();
    assert_eq!(out["approver"], "ada");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_the_right_status_and_the_server_keeps_serving() {
    let (_dir, server, mut client) = sqlite_server().await;
    let mut worker = WorkerServiceClient::connect(server.url.clone())
        .await
        .unwrap();

    let err = client
        .upload_module(proto::UploadModuleRequest {
            vet_recent: 0,
            workflow_type: "T".into(),
            component: b"garbage".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("not a WebAssembly file"),
        "{}",
        err.message()
    );

    let err = client
        .upload_module(proto::UploadModuleRequest {
            vet_recent: 0,
            workflow_type: String::new(),
            component: vec![1],
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "workflow_type is required")
    );

    let missing = proto::StartWorkflowRequest {
        workflow_type: "GreetingWorkflow".into(),
        ..Default::default()
    };
    let err = client.start_workflow(missing).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "workflow_id is required")
    );

    let unknown = proto::StartWorkflowRequest {
        workflow_type: "NoSuchType".into(),
        workflow_id: "x".into(),
        ..Default::default()
    };
    let err = client.start_workflow(unknown).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message()
            .contains("no module is registered for workflow type `NoSuchType`"),
        "{}",
        err.message()
    );

    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    let huge = proto::StartWorkflowRequest {
        workflow_type: "GreetingWorkflow".into(),
        workflow_id: "big".into(),
        input: vec![b'1'; weft_server::MAX_PAYLOAD_BYTES + 1],
        ..Default::default()
    };
    let err = client.start_workflow(huge).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("the limit is 2097152 bytes"),
        "{}",
        err.message()
    );

    start(&mut client, "GreetingWorkflow", "dup", "\"World\"").await;
    let again = proto::StartWorkflowRequest {
        workflow_type: "GreetingWorkflow".into(),
        workflow_id: "dup".into(),
        input: b"\"World\"".to_vec(),
        ..Default::default()
    };
    let err = client.start_workflow(again.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let existing = client
        .start_workflow(proto::StartWorkflowRequest {
            return_existing: true,
            ..again
        })
        .await
        .unwrap()
        .into_inner();
    assert!(existing.existing);

    let err = worker
        .complete_activity_task(proto::CompleteActivityTaskRequest {
            task_token: "nope#1#0123456789abcdef".into(),
            output: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = worker
        .complete_activity_task(proto::CompleteActivityTaskRequest {
            task_token: "garbage".into(),
            output: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = worker
        .poll_activity_task(proto::PollActivityTaskRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = client
        .describe_workflow(proto::DescribeWorkflowRequest {
            workflow_id: "ghost".into(),
            run_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "no workflow with id `ghost`")
    );

    // Still serving.
    let d = client
        .describe_workflow(proto::DescribeWorkflowRequest {
            workflow_id: "dup".into(),
            run_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.run.unwrap().status, RunStatus::Running as i32);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_whose_worker_died_times_out_and_another_worker_completes_it() {
    let (_dir, server, mut client) = sqlite_server().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    // This worker takes the task and never answers: it stands for a worker that died.
    let (took_tx, mut took_rx) = tokio::sync::mpsc::channel::<u32>(1);
    let mut dead = Worker::connect(&server.url).await.unwrap();
    dead.activity(
        "compose_greeting",
        move |ctx: ActivityContext, _: ComposeGreeting| {
            let took = took_tx.clone();
            async move {
                let _ = took.send(ctx.attempt).await;
                std::future::pending::<()>().await;
                Ok::<String, ActivityError>(String::new())
            }
        },
    );
    let dead = tokio::spawn(async move {
        dead.run("hello-activity-task-queue", 1, std::future::pending())
            .await
    });
    start(&mut client, "GreetingWorkflow", "orphan", "\"World\"").await;
    assert_eq!(took_rx.recv().await, Some(1));
    dead.abort();
    // The 10 s start-to-close timeout expires, the task is retried, a live worker takes it.
    let live = spawn_hello_worker(&server.url, 0, false).await;
    let r = wait_result(&mut client, "orphan").await;
    assert_eq!(
        String::from_utf8(r.output).unwrap(),
        "\"Hello, World! (attempt 2)\""
    );
    live.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn child_workflows_and_continue_as_new_run_through_the_server() {
    let (_dir, _server, mut client) = sqlite_server().await;
    upload(&mut client, "EdgeCases", weft_tests::EDGE_CASES).await;
    start(
        &mut client,
        "EdgeCases",
        "parent",
        r#"{"mode": "children", "n": 3}"#,
    )
    .await;
    let r = wait_result(&mut client, "parent").await;
    assert_eq!(String::from_utf8(r.output).unwrap(), "3");
    let child = client
        .describe_workflow(proto::DescribeWorkflowRequest {
            workflow_id: "parent/1".into(),
            run_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(child.run.unwrap().status, RunStatus::Completed as i32);
    assert_eq!(child.parent_workflow_id, "parent");
    let parent = client
        .describe_workflow(proto::DescribeWorkflowRequest {
            workflow_id: "parent".into(),
            run_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(child.parent_run_id, parent.run.unwrap().run_id);
    let mut children: Vec<String> = parent
        .children
        .iter()
        .map(|c| c.workflow_id.clone())
        .collect();
    children.sort();
    assert_eq!(children, ["parent/0", "parent/1", "parent/2"]);

    start(
        &mut client,
        "EdgeCases",
        "counter",
        r#"{"mode": "count", "run": 1, "until": 3, "seen": []}"#,
    )
    .await;
    let r = wait_result(&mut client, "counter").await;
    assert_eq!(String::from_utf8(r.output).unwrap(), "[1,2,3]");
    let runs = client
        .list_workflows(proto::ListWorkflowsRequest {
            workflow_type: "EdgeCases".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    // Runs started in the same millisecond have no defined order: compare as a set.
    let mut counter: Vec<u32> = runs
        .iter()
        .filter(|r| r.workflow_id == "counter")
        .map(|r| r.run_number)
        .collect();
    counter.sort();
    assert_eq!(counter, [1, 2, 3]);
    // Each run of the chain links to its neighbours.
    let run_id = |n: u32| {
        runs.iter()
            .find(|r| r.workflow_id == "counter" && r.run_number == n)
            .unwrap()
            .run_id
            .clone()
    };
    let middle = client
        .describe_workflow(proto::DescribeWorkflowRequest {
            workflow_id: "counter".into(),
            run_id: run_id(2),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (middle.previous_run_id, middle.next_run_id),
        (run_id(1), run_id(3))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_activity_that_always_fails_stops_at_maximum_attempts_and_the_workflow_sees_it() {
    let (_dir, server, mut client) = sqlite_server().await;
    upload(&mut client, "MlPipeline", weft_tests::ML_PIPELINE).await;
    let attempts = Arc::new(AtomicU32::new(0));
    let mut cpu = Worker::connect(&server.url).await.unwrap();
    cpu.activity(
        "normalize",
        |_: ActivityContext, texts: Vec<String>| async move { Ok::<_, ActivityError>(texts) },
    );
    let mut inference = Worker::connect(&server.url).await.unwrap();
    let seen = attempts.clone();
    inference.activity(
        "classify",
        move |ctx: ActivityContext, _: serde_json::Value| {
            seen.fetch_max(ctx.attempt, Ordering::SeqCst);
            async move {
                Err::<serde_json::Value, _>(ActivityError::retryable("ModelUnavailable", "no GPU"))
            }
        },
    );
    let cpu = tokio::spawn(async move { cpu.run("cpu", 4, std::future::pending()).await });
    let inference =
        tokio::spawn(async move { inference.run("inference", 4, std::future::pending()).await });
    let input = r#"{"tickets": ["my card was charged twice"], "labels": [{"name": "billing", "description": "payments"}]}"#;
    start(&mut client, "MlPipeline", "triage", input).await;
    let r = wait_result(&mut client, "triage").await;
    assert_eq!(r.status, RunStatus::Failed as i32);
    let error = r.error.unwrap();
    assert_eq!(error.kind, "ModelUnavailable");
    assert!(
        error.message.contains("after 5 attempt(s)"),
        "{}",
        error.message
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        5,
        "the policy allows 5 attempts, no more"
    );
    cpu.abort();
    inference.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_ends_a_waiting_run_and_its_history_still_replays() {
    let (dir, server, mut client) = sqlite_server().await;
    upload(&mut client, "Approval", weft_tests::APPROVAL).await;
    start(
        &mut client,
        "Approval",
        "stuck",
        r#"{"request": "deploy", "timeout_ms": 3600000}"#,
    )
    .await;
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "--server",
            &server.url,
            "terminate",
            "stuck",
            "--reason",
            "operator gave up",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = wait_result(&mut client, "stuck").await;
    assert_eq!(r.status, RunStatus::Terminated as i32);
    let h = history(&mut client, "stuck").await;
    assert_eq!(
        h.events.last().unwrap().kind.to_string(),
        "RunTerminated (operator gave up)"
    );
    let err = client
        .terminate_workflow(proto::TerminateWorkflowRequest {
            workflow_id: "stuck".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = client
        .terminate_workflow(proto::TerminateWorkflowRequest {
            workflow_id: "ghost".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    replays_clean(dir.path(), &h, weft_tests::APPROVAL);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_lets_the_workflow_clean_up_and_cancels_its_children() {
    let (dir, server, mut client) = sqlite_server().await;
    upload(&mut client, "EdgeCases", weft_tests::EDGE_CASES).await;
    let told_to_stop = Arc::new(AtomicU32::new(0));
    let cleanups = Arc::new(AtomicU32::new(0));
    let mut worker = Worker::connect(&server.url).await.unwrap();
    let told = told_to_stop.clone();
    worker.activity("slow", move |ctx: ActivityContext, _: String| {
        let told = told.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let stop = ctx
                    .heartbeat(&())
                    .await
                    .map_err(|e| ActivityError::retryable("Heartbeat", e.to_string()))?;
                if stop {
                    told.fetch_add(1, Ordering::SeqCst);
                    return Err::<String, _>(ActivityError::retryable("Stopped", "cancelled"));
                }
            }
        }
    });
    let cleaned = cleanups.clone();
    worker.activity("cleanup", move |_: ActivityContext, what: String| {
        let cleaned = cleaned.clone();
        async move {
            cleaned.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ActivityError>(format!("cleaned up {what}"))
        }
    });
    let worker = tokio::spawn(async move {
        worker
            .run("default", 8, std::future::pending())
            .await
            .unwrap();
    });
    start(
        &mut client,
        "EdgeCases",
        "job",
        r#"{"mode": "cancellable", "child": true}"#,
    )
    .await;
    start(
        &mut client,
        "EdgeCases",
        "nap",
        r#"{"mode": "sleep", "ms": 3600000}"#,
    )
    .await;
    // Both `slow` attempts (parent's and child's) must be running before the cancel.
    for _ in 0..200 {
        let child = client
            .get_history(proto::GetHistoryRequest {
                workflow_id: "job/2".into(),
                run_id: String::new(),
                ..Default::default()
            })
            .await;
        if child.is_ok_and(|h| h.into_inner().history_json.contains("TimerStarted")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["--server", &server.url, "cancel", "job", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["newly_requested"], true);

    let r = wait_result(&mut client, "job").await;
    assert_eq!(r.status, RunStatus::Cancelled as i32, "{r:?}");
    let error = r.error.unwrap();
    assert_eq!(error.kind, "Cancelled");
    assert_eq!(
        error.message,
        "cancelled; cleanup: cleaned up work; timer: cancelled; child: cancelled"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "--server",
            &server.url,
            "list",
            "--status",
            "cancelled",
            "--json",
        ])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["workflow_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"job"), "{listed}");
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["--server", &server.url, "list", "--status", "canceled"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not one of"));
    // The child was cancelled with its parent and cleaned up too.
    let child = wait_result(&mut client, "job/2").await;
    assert_eq!(child.status, RunStatus::Cancelled as i32, "{child:?}");
    assert_eq!(cleanups.load(Ordering::SeqCst), 2);
    // Both running `slow` attempts heard of it through their heartbeats.
    for _ in 0..100 {
        if told_to_stop.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(told_to_stop.load(Ordering::SeqCst), 2);

    let h = history(&mut client, "job").await;
    let kinds: Vec<&str> = h.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "RunStarted",
            "ActivityScheduled",
            "TimerStarted",
            "ChildWorkflowStarted",
            "RunCancelRequested",
            "ActivityScheduled",
            "ActivityCompleted",
            "RunFailed"
        ]
    );
    replays_clean(dir.path(), &h, weft_tests::EDGE_CASES);

    // Asking again changes nothing; a closed run cannot be cancelled; an unknown one is not found.
    let err = client
        .cancel_workflow(proto::CancelWorkflowRequest {
            workflow_id: "job".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = client
        .cancel_workflow(proto::CancelWorkflowRequest {
            workflow_id: "ghost".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .cancel_workflow(proto::CancelWorkflowRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // A run in a plain `sleep` ends as cancelled at once; asking twice is fine.
    for newly in [true, false] {
        let r = client
            .cancel_workflow(proto::CancelWorkflowRequest {
                workflow_id: "nap".into(),
                reason: "no more naps".into(),
            })
            .await;
        match r {
            Ok(r) => assert_eq!(r.into_inner().newly_requested, newly),
            // The first request already closed it.
            Err(e) => assert!(!newly && e.code() == Code::FailedPrecondition, "{e}"),
        }
    }
    let r = wait_result(&mut client, "nap").await;
    assert_eq!(r.status, RunStatus::Cancelled as i32, "{r:?}");
    worker.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_shuts_down_hands_its_running_task_back() {
    let (_dir, server, mut client) = sqlite_server().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let mut leaving = Worker::connect(&server.url).await.unwrap();
    leaving.drain_timeout(Duration::from_millis(200));
    let s = started.clone();
    leaving.activity(
        "compose_greeting",
        move |_: ActivityContext, _: ComposeGreeting| {
            let s = s.clone();
            async move {
                s.notify_one();
                std::future::pending::<Result<String, ActivityError>>().await
            }
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let leaving = tokio::spawn(async move {
        leaving
            .run("hello-activity-task-queue", 4, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    start(&mut client, "GreetingWorkflow", "handover", "\"World\"").await;
    tokio::time::timeout(Duration::from_secs(30), started.notified())
        .await
        .expect("the first worker got the task");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), leaving)
        .await
        .expect("shutdown ends after the drain timeout")
        .unwrap();
    // The attempt's lease is 10 s (the activity's start-to-close); the task is back well
    // before, because the worker handed it back.
    let mut raw = WorkerServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    let tasks = raw
        .poll_activity_task(proto::PollActivityTaskRequest {
            task_queue: "hello-activity-task-queue".into(),
            worker_id: "second".into(),
            max_tasks: 1,
            poll_timeout_ms: 3_000,
        })
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 1, "the handed-back task is offered again");
    assert_eq!(tasks[0].attempt, 2);
    raw.complete_activity_task(proto::CompleteActivityTaskRequest {
        task_token: tasks[0].task_token.clone(),
        output: b"\"Hello from the second worker\"".to_vec(),
    })
    .await
    .unwrap();
    let r = wait_result(&mut client, "handover").await;
    assert_eq!(r.status, RunStatus::Completed as i32);
    assert_eq!(r.output, b"\"Hello from the second worker\"");
}

/// One value from the given PostgreSQL database.
fn psql_value(database: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-Atc",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_on_postgres_route_to_each_runs_owner_and_adopt_a_killed_nodes_runs() {
    let db = PgDatabase::create();
    let a = ServerProcess::start(&db.url, free_port()).await;
    let b = ServerProcess::start(&db.url, free_port()).await;
    let mut client_a = a.client().await;
    let mut client_b = b.client().await;
    upload(
        &mut client_a,
        "GreetingWorkflow",
        weft_tests::HELLO_ACTIVITY,
    )
    .await;
    upload(&mut client_a, "EdgeCases", weft_tests::EDGE_CASES).await;

    // Runs started on A; the only worker talks to B, whose completions reach A's runs
    // through A's inbox. Results are read from B.
    let worker = spawn_hello_worker(&b.url, 0, false).await;
    for i in 0..10 {
        start(
            &mut client_a,
            "GreetingWorkflow",
            &format!("routed-{i}"),
            "\"World\"",
        )
        .await;
    }
    for i in 0..10 {
        let r = wait_result(&mut client_b, &format!("routed-{i}")).await;
        assert_eq!(r.status, RunStatus::Completed as i32, "{r:?}");
    }
    assert_eq!(
        psql_value(&db.name, "SELECT count(DISTINCT owner) FROM runs"),
        "1",
        "every run stayed with the node that started it"
    );
    assert_eq!(psql_value(&db.name, "SELECT count(*) FROM inbox"), "0");
    worker.abort();

    // Runs waiting on A for activities (no worker now) and timers; then A is killed.
    for i in 0..5 {
        start(
            &mut client_a,
            "GreetingWorkflow",
            &format!("orphan-{i}"),
            "\"World\"",
        )
        .await;
        start(
            &mut client_a,
            "EdgeCases",
            &format!("sleeper-{i}"),
            r#"{"mode": "sleep", "ms": 1500}"#,
        )
        .await;
    }
    let owner_a = psql_value(
        &db.name,
        "SELECT owner FROM runs WHERE workflow_id = 'orphan-0'",
    );
    a.kill();
    let worker = spawn_hello_worker(&b.url, 0, false).await;
    for i in 0..5 {
        let r = wait_result(&mut client_b, &format!("orphan-{i}")).await;
        assert_eq!(r.status, RunStatus::Completed as i32, "{r:?}");
        let h = history(&mut client_b, &format!("orphan-{i}")).await;
        let kinds: Vec<&str> = h.events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(
            kinds,
            [
                "RunStarted",
                "ActivityScheduled",
                "ActivityCompleted",
                "RunCompleted"
            ]
        );
        let r = wait_result(&mut client_b, &format!("sleeper-{i}")).await;
        assert_eq!(r.status, RunStatus::Completed as i32, "{r:?}");
        let h = history(&mut client_b, &format!("sleeper-{i}")).await;
        let kinds: Vec<&str> = h.events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(
            kinds,
            ["RunStarted", "TimerStarted", "TimerFired", "RunCompleted"]
        );
    }
    let owners = psql_value(
        &db.name,
        "SELECT string_agg(DISTINCT owner, ',') FROM runs WHERE workflow_id LIKE 'orphan-%'",
    );
    assert!(
        !owners.contains(&owner_a),
        "B adopted A's runs ({owners}, A was {owner_a})"
    );
    worker.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_client_generated_from_the_protos_drives_a_workflow() {
    let (_dir, server, _client) = sqlite_server().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/grpc_client.py"
    );
    let out = Command::new(python())
        .args([
            script,
            "--server",
            server.url.trim_start_matches("http://"),
            "--component",
            weft_tests::HELLO_ACTIVITY,
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; {PYTHON_SETUP}", python().display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "{stdout}\n{}\n({PYTHON_SETUP})",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ml_pipeline_survives_a_sigkill_of_the_server_mid_run() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let port = free_port();
    let server = ServerProcess::start(&database, port).await;
    let url = server.url.clone();
    let mut client = server.client().await;
    upload(&mut client, "MlPipeline", weft_tests::ML_PIPELINE).await;
    // The real model and the inference worker's own code, in this process.
    let model = weft_inference::Embedder::load(&weft_inference::default_model_dir())
        .unwrap_or_else(|e| panic!("{e} (run runtime/inference/fetch-model.sh)"));
    let batcher = weft_inference::Batcher::spawn(
        Arc::new(model),
        weft_inference::BatchConfig {
            max_batch: 16,
            max_wait: Duration::from_millis(20),
        },
    );
    let mut inference = Worker::connect(&url).await.unwrap();
    weft_inference::register(&mut inference, &batcher);
    let mut cpu = Worker::connect(&url).await.unwrap();
    weft_inference::register_cpu(&mut cpu);
    let inference =
        tokio::spawn(async move { inference.run("inference", 16, std::future::pending()).await });
    let cpu = tokio::spawn(async move { cpu.run("cpu", 4, std::future::pending()).await });

    let texts = [
        (
            "I was charged twice on my card, please refund me",
            "billing",
        ),
        ("my password reset email never arrives", "account"),
    ];
    let tickets: Vec<String> = (0..30)
        .map(|i| format!("{} (ticket {i})", texts[i % 2].0))
        .collect();
    let input = serde_json::json!({
        "tickets": tickets,
        "labels": [
            {"name": "billing", "description": "payments, invoices, refunds and charges"},
            {"name": "account", "description": "login, password and account access"}
        ],
        "min_confidence": 0.0,
        "classify_timeout_ms": 3000
    });
    start(&mut client, "MlPipeline", "survivor", &input.to_string()).await;
    // Kill the server once the classifications have started coming in.
    let mut done_at_kill = 0;
    for _ in 0..3000 {
        let h = history(&mut client, "survivor").await;
        let done = h
            .events
            .iter()
            .filter(|e| e.kind.name() == "ActivityCompleted")
            .count();
        done_at_kill = done;
        if done >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    assert!(
        (3..31).contains(&done_at_kill),
        "the kill must land mid-run ({done_at_kill} of 31 activities done)"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = ServerProcess::start(&database, port).await;
    let mut client = server.client().await;
    let r = wait_result(&mut client, "survivor").await;
    assert_eq!(r.status, RunStatus::Completed as i32, "{:?}", r.error);
    let table: serde_json::Value = serde_json::from_slice(&r.output).unwrap();
    for (i, route) in table["routes"].as_array().unwrap().iter().enumerate() {
        assert_eq!(route["label"], texts[i % 2].1, "ticket {i}: {route}");
    }
    let h = history(&mut client, "survivor").await;
    h.check().unwrap();
    let count = |kind: &str| h.events.iter().filter(|e| e.kind.name() == kind).count();
    assert_eq!(count("ActivityScheduled"), 31, "normalize + 30 classify");
    assert_eq!(count("ActivityCompleted"), 31, "none lost or duplicated");
    inference.abort();
    cpu.abort();
}

/// The `task_queue` sample of a counter in the server's `/metrics`, 0 when absent.
async fn counter_of(url: &str, name: &str, queue: &str) -> f64 {
    let (_, body) = http("GET", &format!("{url}/metrics"), None).await;
    let text = String::from_utf8(body).unwrap();
    let series = format!("{name}{{task_queue=\"{queue}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_for_a_waiting_poller_is_handed_over_by_its_batch_and_its_claim_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let port = free_port();
    let server = ServerProcess::start(&database, port).await;
    let mut client = server.client().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    // A poll waiting on the empty queue when the run starts.
    let mut worker = WorkerServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    let poll = tokio::spawn(async move {
        worker
            .poll_activity_task(proto::PollActivityTaskRequest {
                task_queue: "hello-activity-task-queue".into(),
                worker_id: "w".into(),
                max_tasks: 1,
                poll_timeout_ms: 10_000,
            })
            .await
            .unwrap()
            .into_inner()
    });
    // Time for the poll to reach the server and wait there (300 ms lost the race once on a
    // loaded 2-core machine; the server shows no waiting polls to wait for instead).
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    start(&mut client, "GreetingWorkflow", "handed", "\"World\"").await;
    let tasks = poll.await.unwrap().tasks;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].attempt, 1);
    assert_eq!(
        counter_of(
            &server.url,
            "weft_activity_tasks_matched_in_memory_total",
            "hello-activity-task-queue"
        )
        .await,
        1.0,
        "handed over by the batch, not claimed from the store"
    );

    // The claim was written with the task: after a SIGKILL the same token completes it,
    // and nobody else was given the task meanwhile.
    server.kill();
    let server = ServerProcess::start(&database, port).await;
    let mut client = server.client().await;
    let mut other = WorkerServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    let polled = other
        .poll_activity_task(proto::PollActivityTaskRequest {
            task_queue: "hello-activity-task-queue".into(),
            worker_id: "other".into(),
            max_tasks: 1,
            poll_timeout_ms: 300,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(polled.tasks.is_empty(), "the task is leased: {polled:?}");
    other
        .complete_activity_task(proto::CompleteActivityTaskRequest {
            task_token: tasks[0].task_token.clone(),
            output: b"\"Hello, World!\"".to_vec(),
        })
        .await
        .unwrap();
    let r = wait_result(&mut client, "handed").await;
    assert_eq!(String::from_utf8_lossy(&r.output), "\"Hello, World!\"");
    let h = history(&mut client, "handed").await;
    let kinds: Vec<&str> = h.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "RunStarted",
            "ActivityScheduled",
            "ActivityCompleted",
            "RunCompleted"
        ]
    );
}

/// A completion's token is checked against the claims this node handed out, without a read:
/// the same answers as the read gives once the attempt failed, the run closed, or the
/// attempt was already reported.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_refused_once_its_attempt_failed_its_run_closed_or_it_was_used() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let server = ServerProcess::start(&database, free_port()).await;
    let mut client = server.client().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    let mut raw = WorkerServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    let mut poll = async |timeout_ms: u32| {
        let tasks = raw
            .poll_activity_task(proto::PollActivityTaskRequest {
                task_queue: "hello-activity-task-queue".into(),
                worker_id: "raw".into(),
                max_tasks: 1,
                poll_timeout_ms: timeout_ms,
            })
            .await
            .unwrap()
            .into_inner()
            .tasks;
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        tasks.into_iter().next().unwrap()
    };
    let mut worker = WorkerServiceClient::connect(server.url.clone())
        .await
        .unwrap();
    let complete = |token: &str, output: &str| proto::CompleteActivityTaskRequest {
        task_token: token.to_owned(),
        output: output.as_bytes().to_vec(),
    };

    // A failed attempt: its token no longer completes the task; the retry's does.
    start(&mut client, "GreetingWorkflow", "failed-first", "\"World\"").await;
    let first = poll(5_000).await;
    worker
        .fail_activity_task(proto::FailActivityTaskRequest {
            task_token: first.task_token.clone(),
            error_kind: "Flaky".into(),
            message: "try again".into(),
            non_retryable: false,
            handed_back: false,
        })
        .await
        .unwrap();
    let err = worker
        .complete_activity_task(complete(&first.task_token, "\"from the failed attempt\""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    let second = poll(10_000).await;
    assert_eq!(second.attempt, 2);
    worker
        .complete_activity_task(complete(&second.task_token, "\"from the retry\""))
        .await
        .unwrap();
    // Reported twice: the second is refused, and the history holds one completion.
    let err = worker
        .complete_activity_task(complete(&second.task_token, "\"again\""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let r = wait_result(&mut client, "failed-first").await;
    assert_eq!(r.output, b"\"from the retry\"");
    let h = history(&mut client, "failed-first").await;
    let completed = h
        .events
        .iter()
        .filter(|e| e.kind.name() == "ActivityCompleted")
        .count();
    assert_eq!(completed, 1, "{:?}", h.events);

    // A run closed while its activity ran: the token names a task that is gone.
    start(&mut client, "GreetingWorkflow", "closed-under", "\"World\"").await;
    let task = poll(5_000).await;
    client
        .terminate_workflow(proto::TerminateWorkflowRequest {
            workflow_id: "closed-under".into(),
            reason: "no longer wanted".into(),
        })
        .await
        .unwrap();
    let err = worker
        .complete_activity_task(complete(&task.task_token, "\"too late\""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let r = wait_result(&mut client, "closed-under").await;
    assert_eq!(r.status, RunStatus::Terminated as i32);
}
