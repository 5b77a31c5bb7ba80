//! Traces as an operator's collector receives them: a real `weft server` process exporting
//! over OTLP/gRPC to a collector inside this test (`weft_tests::otlp`), a `weft-worker` in this process exporting to the same collector,
//! and a caller's `traceparent` on `StartWorkflow`. One trace must run caller -> RPC -> run ->
//! attempt -> worker -> the activity's own span, on SQLite and on PostgreSQL.
//!
//! The in-process worker's tracer is this process's, installed once, by one test; the other
//! tests run only processes (`weft server`, `weft workers`).

use std::time::Duration;

use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use weft_tests::otlp::{Collector, Received, one};
use weft_worker::{ActivityContext, ActivityError, Worker};

mod common;
use common::*;

/// The spans of `trace_id` once `wanted` have arrived, flushing this process's own.
async fn trace(collector: &Collector, trace_id: &str, wanted: &[&str]) -> Vec<Received> {
    collector
        .trace(trace_id, wanted, weft_worker::telemetry::traces::flush)
        .await
}

async fn round(database: &str, endpoint: &str, collector: &Collector, n: u8) {
    let server = ServerProcess::start_with_env(
        database,
        free_port(),
        &["--otlp-endpoint", endpoint],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let mut client = server.client().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    let mut worker = Worker::connect(&server.url).await.unwrap();
    worker.activity(
        "compose_greeting",
        |_: ActivityContext, g: ComposeGreeting| async move {
            // The activity's own span (a model call, say) joins the workflow's trace.
            let mut model = opentelemetry::global::tracer("test-model").start("model call");
            tokio::time::sleep(Duration::from_millis(5)).await;
            model.end();
            Ok::<_, ActivityError>(format!("{}, {}!", g.greeting, g.name))
        },
    );
    let worker = tokio::spawn(async move {
        worker
            .run("hello-activity-task-queue", 4, std::future::pending())
            .await
            .unwrap();
    });

    let trace_id = format!("4bf92f3577b34da6a3ce929d0e0e47{n:02x}");
    let caller = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(weft_proto::StartWorkflowRequest {
        workflow_type: "GreetingWorkflow".into(),
        workflow_id: format!("traced-{n}"),
        input: b"\"trace\"".to_vec(),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{caller}-01").parse().unwrap(),
    );
    client.start_workflow(request).await.unwrap();
    let result = wait_result(&mut client, &format!("traced-{n}")).await;
    assert_eq!(result.status, weft_proto::RunStatus::Completed as i32);

    let spans = trace(
        collector,
        &trace_id,
        &[
            "weft.v1.WorkflowService/StartWorkflow",
            "workflow GreetingWorkflow",
            "activity compose_greeting",
            "run activity compose_greeting",
            "model call",
        ],
    )
    .await;
    let rpc = one(&spans, "weft.v1.WorkflowService/StartWorkflow");
    let run = one(&spans, "workflow GreetingWorkflow");
    let attempt = one(&spans, "activity compose_greeting");
    let work = one(&spans, "run activity compose_greeting");
    let model = one(&spans, "model call");
    assert_eq!(rpc.parent(), caller, "the RPC continues the caller's trace");
    assert_eq!(rpc.span.kind, SpanKind::Server as i32);
    assert_eq!(rpc.service, "weft-server");
    assert_eq!(run.parent(), rpc.id(), "the run is a child of its start");
    assert_eq!(run.service, "weft-server");
    assert_eq!(
        attempt.parent(),
        run.id(),
        "the attempt is a child of the run"
    );
    assert_eq!(
        work.parent(),
        attempt.id(),
        "the worker continues the attempt"
    );
    assert_eq!(work.service, "test-worker");
    assert_eq!(work.span.kind, SpanKind::Consumer as i32);
    assert_eq!(
        model.parent(),
        work.id(),
        "the activity's span is the worker's child"
    );
    let activations: Vec<&Received> = spans
        .iter()
        .filter(|s| s.span.name == "activation")
        .collect();
    assert_eq!(activations.len(), 2, "started, then the activity's result");
    assert!(activations.iter().all(|a| a.parent() == run.id()));
    // The run spans its whole life: from before the attempt to after it.
    assert!(run.span.start_time_unix_nano <= attempt.span.start_time_unix_nano);
    assert!(run.span.end_time_unix_nano >= attempt.span.end_time_unix_nano);
    assert!(attempt.span.start_time_unix_nano <= work.span.start_time_unix_nano);
    assert_eq!(
        run.attribute("weft.workflow_id").as_deref(),
        Some(format!("traced-{n}").as_str())
    );
    assert_eq!(run.attribute("weft.status").as_deref(), Some("completed"));
    worker.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_runs_from_the_caller_through_the_run_to_the_worker_on_sqlite_and_postgresql() {
    let (collector, endpoint) = Collector::start().await;
    weft_worker::telemetry::traces::install(&endpoint, "test-worker").unwrap();

    let dir = tempfile::tempdir().unwrap();
    round(
        &format!("sqlite:{}", dir.path().join("weft.db").display()),
        &endpoint,
        &collector,
        1,
    )
    .await;
    let pg = PgDatabase::create();
    round(&pg.url, &endpoint, &collector, 2).await;
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_traced_and_a_traceparent_is_ignored() {
    // No collector and no OTEL_ variables: the run gets no trace context, tasks carry none.
    let (_dir, server, mut client) = sqlite_server().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    let mut request = tonic::Request::new(weft_proto::StartWorkflowRequest {
        workflow_type: "GreetingWorkflow".into(),
        workflow_id: "untraced".into(),
        input: b"\"x\"".to_vec(),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    client.start_workflow(request).await.unwrap();
    let mut workers =
        weft_proto::worker_service_client::WorkerServiceClient::connect(server.url.clone())
            .await
            .unwrap();
    let tasks = workers
        .poll_activity_task(weft_proto::PollActivityTaskRequest {
            task_queue: "hello-activity-task-queue".into(),
            worker_id: "w".into(),
            max_tasks: 1,
            poll_timeout_ms: 5_000,
        })
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        tasks[0].traceparent, "",
        "no trace context leaves an untraced server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_weft_workers_process_continues_each_attempts_trace() {
    // A collector of this test's own: the other test's tracer exports this process's spans
    // elsewhere, and here only the two processes export.
    let (collector, endpoint) = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_env(
        &format!("sqlite:{}", dir.path().join("weft.db").display()),
        free_port(),
        &["--otlp-endpoint", &endpoint],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let mut client = server.client().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    // As an operator starts it: the endpoint in WEFT_OTLP_ENDPOINT.
    let mut workers = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["--server", &server.url, "workers"])
        .env("WEFT_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    start(&mut client, "GreetingWorkflow", "traced-workers", "\"ops\"").await;
    let result = wait_result(&mut client, "traced-workers").await;
    assert_eq!(result.status, weft_proto::RunStatus::Completed as i32);

    let run_span = collector.trace_of("workflow GreetingWorkflow").await;
    let spans = trace(
        &collector,
        &run_span,
        &["activity compose_greeting", "run activity compose_greeting"],
    )
    .await;
    let attempt = one(&spans, "activity compose_greeting");
    let work = one(&spans, "run activity compose_greeting");
    assert_eq!(attempt.service, "weft-server");
    assert_eq!(work.service, "weft-workers");
    assert_eq!(
        work.parent(),
        attempt.id(),
        "the worker continues the attempt"
    );
    let _ = workers.kill();
    let _ = workers.wait();
}
