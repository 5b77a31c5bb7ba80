//! Limits hit on purpose against a real `weft server` with a config file: a run past its
//! pending-activity or history limit fails with `LimitExceeded` naming the limit, its history
//! replays clean, and the server serves the next request.

use weft_proto::{self as proto, RunStatus};
use weft_worker::{ActivityContext, ActivityError, Worker};

mod common;
use common::*;

const QUEUE: &str = "limits";

async fn run_to_end(
    client: &mut weft_proto::workflow_service_client::WorkflowServiceClient<
        tonic::transport::Channel,
    >,
    workflow_type: &str,
    id: &str,
    input: &str,
) -> proto::GetWorkflowResultResponse {
    client
        .start_workflow(proto::StartWorkflowRequest {
            workflow_type: workflow_type.into(),
            workflow_id: id.into(),
            input: input.as_bytes().to_vec(),
            task_queue: QUEUE.into(),
            return_existing: false,
        })
        .await
        .unwrap();
    wait_result(client, id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_past_a_limit_fail_naming_it_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        "max_pending_activities = 5\nmax_history_events = 40\n",
    )
    .unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let server = ServerProcess::start_with(
        &database,
        free_port(),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let mut client = server.client().await;
    upload(&mut client, "FanOut", weft_tests::FAN_OUT).await;
    upload(&mut client, "EdgeCases", weft_tests::EDGE_CASES).await;
    let mut worker = Worker::connect(&server.url).await.unwrap();
    worker
        .activity("square", |_: ActivityContext, i: u64| async move {
            Ok::<_, ActivityError>(i * i)
        })
        .activity("step", |_: ActivityContext, i: u64| async move {
            Ok::<_, ActivityError>(i)
        });
    let worker = tokio::spawn(async move {
        worker.run(QUEUE, 16, std::future::pending()).await.unwrap();
    });

    // Five activities at once are within the limit; ten are not.
    let ok = run_to_end(&mut client, "FanOut", "fan-5", r#"{"n": 5}"#).await;
    assert_eq!(ok.status, RunStatus::Completed as i32);
    let over = run_to_end(&mut client, "FanOut", "fan-10", r#"{"n": 10}"#).await;
    assert_eq!(over.status, RunStatus::Failed as i32);
    let error = over.error.unwrap();
    assert_eq!(error.kind, "LimitExceeded");
    assert!(
        error.message.contains("5 pending activities")
            && error.message.contains("max_pending_activities"),
        "{}",
        error.message
    );
    let h = history(&mut client, "fan-10").await;
    replays_clean(dir.path(), &h, weft_tests::FAN_OUT);

    // 30 sequential activities write ~60 events: past the history limit of 40.
    let long = run_to_end(
        &mut client,
        "EdgeCases",
        "long-1",
        r#"{"mode": "activities", "n": 30}"#,
    )
    .await;
    assert_eq!(long.status, RunStatus::Failed as i32);
    let error = long.error.unwrap();
    assert_eq!(error.kind, "LimitExceeded");
    assert!(
        error.message.contains("continue-as-new"),
        "{}",
        error.message
    );
    let h = history(&mut client, "long-1").await;
    assert_eq!(h.events.len(), 40, "the failure is the last event allowed");
    replays_clean(dir.path(), &h, weft_tests::EDGE_CASES);

    // And the next run is served as usual.
    let next = run_to_end(&mut client, "FanOut", "fan-3", r#"{"n": 3}"#).await;
    assert_eq!(next.status, RunStatus::Completed as i32);
    worker.abort();
}

#[tokio::test]
async fn a_handler_that_panics_answers_internal_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let server = ServerProcess::start_with_env(
        &database,
        free_port(),
        &[],
        &[(
            "WEFT_FAULT_PANIC_PATH",
            "/weft.v1.WorkflowService/ListModules",
        )],
    )
    .await;
    let mut client = server.client().await;
    for _ in 0..3 {
        let status = client
            .list_modules(proto::ListModulesRequest {})
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
        assert!(status.message().contains("goes on serving"), "{status:?}");
        // The same connection, the next request: served.
        client
            .list_workflows(proto::ListWorkflowsRequest::default())
            .await
            .expect("the server still serves");
    }
}

#[tokio::test]
async fn starts_are_rate_limited_per_token_and_module_versions_and_compile_time_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        "starts_per_second_per_token = 2\nmax_module_versions = 1\n",
    )
    .unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let server = ServerProcess::start_with(
        &database,
        free_port(),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let mut client = server.client().await;
    upload(&mut client, "Greeting", weft_tests::HELLO_ACTIVITY).await;
    // The same module again is not a new version; another one is refused at the cap.
    upload(&mut client, "Greeting", weft_tests::HELLO_ACTIVITY).await;
    let capped = client
        .upload_module(proto::UploadModuleRequest {
            vet_recent: 0,
            workflow_type: "Greeting".into(),
            component: std::fs::read(weft_tests::HELLO_ACTIVITY_V2).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(capped.code(), tonic::Code::ResourceExhausted, "{capped:?}");
    assert!(
        capped.message().contains("max_module_versions"),
        "{capped:?}"
    );

    // A burst of two, then the third start waits, told for how long.
    for i in 0..2 {
        start(&mut client, "Greeting", &format!("rate-{i}"), "\"x\"").await;
    }
    let limited = client
        .start_workflow(proto::StartWorkflowRequest {
            workflow_type: "Greeting".into(),
            workflow_id: "rate-2".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        limited.code(),
        tonic::Code::ResourceExhausted,
        "{limited:?}"
    );
    let retry = tonic_types::StatusExt::get_details_retry_info(&limited)
        .and_then(|r| r.retry_delay)
        .expect("the wait is in the status details");
    assert!(retry > std::time::Duration::ZERO && retry <= std::time::Duration::from_millis(500));
    tokio::time::sleep(retry).await;
    start(&mut client, "Greeting", "rate-2", "\"x\"").await;
    drop(server);

    // A compile past its deadline is refused; the server goes on.
    // A cache of its own: a component compiled by an earlier server loads without compiling.
    std::fs::write(
        &config,
        format!(
            "module_compile_timeout_ms = 1\ncompiled_cache = {:?}\n",
            dir.path().join("compiled")
        ),
    )
    .unwrap();
    let server = ServerProcess::start_with(
        &format!("sqlite:{}", dir.path().join("other.db").display()),
        free_port(),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let mut client = server.client().await;
    let slow = client
        .upload_module(proto::UploadModuleRequest {
            vet_recent: 0,
            workflow_type: "Saga".into(),
            component: std::fs::read(weft_tests::SAGA).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(slow.code(), tonic::Code::InvalidArgument, "{slow:?}");
    assert!(
        slow.message().contains("module_compile_timeout_ms"),
        "{slow:?}"
    );
    client
        .list_modules(proto::ListModulesRequest {})
        .await
        .expect("still serving");
}
