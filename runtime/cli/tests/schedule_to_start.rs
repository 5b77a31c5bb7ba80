//! Schedule-to-start: an activity attempt that no worker takes in time fails with
//! `ScheduleToStartTimeout` and is retried per its policy; when none is left, the workflow gets
//! the timeout instead of waiting forever. A worker that is there takes it in time.

use weft_proto::{self as proto, RunStatus};

mod common;
use common::*;

fn start_within(queue: &str, attempts: u32) -> String {
    serde_json::json!({
        "mode": "start_within", "name": "compose_greeting", "queue": queue,
        "schedule_to_start_ms": 300, "attempts": attempts,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_activity_no_worker_takes_times_out_per_attempt_and_the_workflow_learns_it() {
    let (dir, server, mut client) = sqlite_server().await;
    upload(&mut client, "EdgeCases", weft_tests::EDGE_CASES).await;

    // Nobody polls `gone`: two attempts time out, then the workflow gets the failure.
    start(
        &mut client,
        "EdgeCases",
        "unserved",
        &start_within("gone", 2),
    )
    .await;
    let r = wait_result(&mut client, "unserved").await;
    assert_eq!(r.status, RunStatus::Completed as i32, "{r:?}");
    let output: serde_json::Value = serde_json::from_slice(&r.output).unwrap();
    let failed = output["failed"].as_str().unwrap_or_default();
    assert!(
        failed.starts_with(
            "timed out: activity `compose_greeting` attempt 2: schedule-to-start timeout of 300 ms"
        ) && failed.contains("no worker of task queue `gone` took it"),
        "{output}"
    );
    let described = client
        .describe_workflow(proto::DescribeWorkflowRequest {
            workflow_id: "unserved".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let retried: Vec<(u32, String)> = described
        .retried_attempts
        .iter()
        .map(|a| (a.attempt, a.error_kind.clone()))
        .collect();
    assert_eq!(
        retried,
        [(1, "ScheduleToStartTimeout".to_owned())],
        "{described:?}"
    );
    // The option is in the history, which replays clean.
    let h = history(&mut client, "unserved").await;
    let scheduled = h
        .events
        .iter()
        .find_map(|e| match &e.kind {
            weft_history::EventKind::ActivityScheduled { options, .. } => Some(options.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(scheduled.schedule_to_start_timeout_ms, Some(300));
    replays_clean(dir.path(), &h, weft_tests::EDGE_CASES);

    // With a worker on the queue, the same activity starts in time and completes.
    let worker = spawn_hello_worker(&server.url, 0, false).await;
    start(
        &mut client,
        "EdgeCases",
        "served",
        &start_within("hello-activity-task-queue", 1),
    )
    .await;
    let r = wait_result(&mut client, "served").await;
    assert_eq!(
        String::from_utf8_lossy(&r.output),
        "\"Hello, soon! (attempt 1)\"",
        "{r:?}"
    );
    worker.abort();
}
