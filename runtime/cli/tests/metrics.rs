//! Metrics and logs as operators meet them: `GET /metrics` on a real `weft server` process
//! after a known workload (a crash and a restart included), checked value by value and by
//! `promtool check metrics` (Debian's `prometheus` package; `.ci/run` installs it); a worker's
//! own `/metrics`; and `--log-format json`.
//!
//! One test per binary owns this process's metrics recorder (the worker's), so the worker
//! counts are exact.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::*;

const QUEUE: &str = "hello-activity-task-queue";

/// The value of the sample `name{labels}` (every label given must match; others may exist).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in the exposition:\n{text}"))
}

/// `promtool check metrics` on the exposition: it must parse and pass the lint.
fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package `prometheus`)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the exposition:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn scrape(url: &str) -> String {
    let (status, body) = http("GET", &format!("{url}/metrics"), None).await;
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{text}");
    text
}

/// One run started with no worker, the server killed and restarted, two more runs, one
/// failed attempt, one attempt that times out, one refused call: every server metric that
/// this touches has its exact value.
async fn workload(database: &str) {
    let port = free_port();
    let first = ServerProcess::start(database, port).await;
    let mut client = first.client().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    start(&mut client, "GreetingWorkflow", "m-0", "\"zero\"").await;
    // The task waits: the queue gauges see it.
    let text = scrape(&first.url).await;
    promtool_accepts(&text);
    let greeting = [("workflow_type", "GreetingWorkflow")];
    assert_eq!(value(&text, "weft_runs_started_total", &greeting), 1.0);
    assert_eq!(value(&text, "weft_runs_running", &[]), 1.0);
    assert_eq!(
        value(
            &text,
            "weft_task_queue_ready_tasks",
            &[("task_queue", QUEUE)]
        ),
        1.0
    );
    assert!(
        value(
            &text,
            "weft_task_queue_oldest_task_age_seconds",
            &[("task_queue", QUEUE)]
        ) >= 0.0
    );
    first.kill();

    // A new process on the same database: m-0 is rebuilt from its history (a replay).
    let port = free_port();
    let server = ServerProcess::start(database, port).await;
    let mut client = server.client().await;
    let worker = spawn_hello_worker(&server.url, 1, false).await;
    start(&mut client, "GreetingWorkflow", "m-1", "\"one\"").await;
    start(&mut client, "GreetingWorkflow", "m-2", "\"two\"").await;
    for id in ["m-0", "m-1", "m-2"] {
        assert_eq!(
            wait_result(&mut client, id).await.status,
            weft_proto::RunStatus::Completed as i32
        );
    }
    // An attempt that never heartbeats times out.
    upload(&mut client, "EdgeCases", weft_tests::EDGE_CASES).await;
    start(
        &mut client,
        "EdgeCases",
        "stall-1",
        r#"{"mode":"call","name":"stall","input":null,"queue":"silent","heartbeat_timeout_ms":300}"#,
    )
    .await;
    let mut silent =
        weft_proto::worker_service_client::WorkerServiceClient::connect(server.url.clone())
            .await
            .unwrap();
    let polled = silent
        .poll_activity_task(weft_proto::PollActivityTaskRequest {
            task_queue: "silent".into(),
            worker_id: "silent".into(),
            max_tasks: 1,
            poll_timeout_ms: 5_000,
        })
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(polled.len(), 1);
    let stalled = [("task_queue", "silent"), ("activity", "stall")];
    let mut timeouts = None;
    for _ in 0..100 {
        timeouts = sample(
            &scrape(&server.url).await,
            "weft_activity_timeouts_total",
            &stalled,
        );
        if timeouts.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(timeouts, Some(1.0), "the silent attempt timed out once");

    let refused = client
        .start_workflow(weft_proto::StartWorkflowRequest {
            workflow_id: "no-type".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let text = scrape(&server.url).await;
    promtool_accepts(&text);
    let closed = [
        ("workflow_type", "GreetingWorkflow"),
        ("status", "completed"),
    ];
    let activity = [("task_queue", QUEUE), ("activity", "compose_greeting")];
    let start_ok = [
        ("method", "weft.v1.WorkflowService/StartWorkflow"),
        ("code", "OK"),
    ];
    let start_bad = [
        ("method", "weft.v1.WorkflowService/StartWorkflow"),
        ("code", "InvalidArgument"),
    ];
    assert_eq!(value(&text, "weft_runs_started_total", &greeting), 2.0);
    assert_eq!(value(&text, "weft_runs_closed_total", &closed), 3.0);
    assert_eq!(value(&text, "weft_runs_running", &[]), 1.0, "stall-1");
    assert_eq!(value(&text, "weft_replays_total", &greeting), 1.0);
    assert_eq!(value(&text, "weft_replay_duration_seconds_count", &[]), 1.0);
    // m-1 and m-2 activate at start and at their activity's result; m-0 at its result.
    assert_eq!(value(&text, "weft_activations_total", &greeting), 5.0);
    assert_eq!(
        value(&text, "weft_activation_duration_seconds_count", &greeting),
        5.0
    );
    // Three activities, the first attempt of one failed and was retried.
    assert_eq!(value(&text, "weft_activity_attempts_total", &activity), 4.0);
    assert_eq!(value(&text, "weft_activity_failures_total", &activity), 1.0);
    assert_eq!(
        sample(&text, "weft_activity_timeouts_total", &activity),
        None
    );
    assert_eq!(
        value(
            &text,
            "weft_activity_attempt_duration_seconds_count",
            &activity
        ),
        4.0
    );
    assert_eq!(
        value(
            &text,
            "weft_activity_schedule_to_start_seconds_count",
            &[("task_queue", QUEUE)]
        ),
        3.0
    );
    // m-0 waited through the restart: at least that long, in the +Inf bucket's sum.
    assert!(
        value(
            &text,
            "weft_activity_schedule_to_start_seconds_sum",
            &[("task_queue", QUEUE)]
        ) > 0.0
    );
    assert_eq!(
        value(
            &text,
            "weft_task_queue_ready_tasks",
            &[("task_queue", QUEUE)]
        ),
        0.0
    );
    assert_eq!(value(&text, "weft_grpc_requests_total", &start_ok), 3.0);
    assert_eq!(value(&text, "weft_grpc_requests_total", &start_bad), 1.0);
    assert_eq!(
        value(
            &text,
            "weft_grpc_request_duration_seconds_count",
            &[("method", "weft.v1.WorkflowService/StartWorkflow")]
        ),
        4.0
    );
    let commits = value(&text, "weft_commit_duration_seconds_count", &[]);
    assert!(commits >= 3.0, "{commits} commits");
    assert_eq!(value(&text, "weft_commit_batch_size_count", &[]), commits);
    // Histograms are histograms (buckets), with help text.
    assert!(text.contains("# TYPE weft_commit_duration_seconds histogram"));
    assert!(text.contains("weft_commit_duration_seconds_bucket{le=\"+Inf\"}"));
    assert!(text.contains("# HELP weft_runs_running "));
    worker.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_a_known_workload_on_sqlite_and_postgresql_and_the_worker_counts_its_own() {
    let worker_port = free_port();
    weft_worker::telemetry::metrics::serve(([127, 0, 0, 1], worker_port).into()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    workload(&format!("sqlite:{}", dir.path().join("weft.db").display())).await;
    let pg = PgDatabase::create();
    workload(&pg.url).await;

    // The test's worker served both rounds: 3 completed and 1 failed task each.
    let text = scrape(&format!("http://127.0.0.1:{worker_port}")).await;
    promtool_accepts(&text);
    let tasks = |outcome| {
        value(
            &text,
            "weft_worker_tasks_total",
            &[
                ("task_queue", QUEUE),
                ("activity", "compose_greeting"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(tasks("completed"), 6.0);
    assert_eq!(tasks("failed"), 2.0);
    assert_eq!(
        value(
            &text,
            "weft_worker_task_duration_seconds_count",
            &[("activity", "compose_greeting")]
        ),
        8.0
    );
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let server = ServerProcess::start_with(&database, free_port(), &["--no-metrics"]).await;
    let (status, body) = http("GET", &format!("{}/metrics", server.url), None).await;
    assert_eq!(status, 404);
    assert!(
        String::from_utf8_lossy(&body).contains("--no-metrics"),
        "the answer says why"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_fields_and_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["--log-format", "json", "server", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--database")
        .arg(format!("sqlite:{}", dir.path().join("weft.db").display()))
        .env("WEFT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..200 {
        if let Ok(c) =
            weft_proto::workflow_service_client::WorkflowServiceClient::connect(url.clone()).await
        {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = client.expect("the server comes up");
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains('\u{1b}'), "no escape codes: {stderr}");
    let mut uploaded = false;
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        if v["fields"]["message"] == "module uploaded" {
            assert_eq!(v["fields"]["workflow_type"], "GreetingWorkflow", "{line}");
            assert_eq!(v["level"], "INFO");
            uploaded = true;
        }
    }
    assert!(uploaded, "the upload is logged as JSON: {stderr}");
}
