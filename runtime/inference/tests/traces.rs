//! The inference worker's spans in a real OTLP receiver (`weft_tests::otlp`): a server in
//! this process exporting as `weft-server`, the real `weft-inference` process exporting as
//! `weft-inference` with `--otlp-endpoint`. The worker's `run activity classify` must sit
//! under the server's attempt span, and the model's forward pass under it, in one trace.

use serde_json::json;
use weft_proto::{self as proto, RunStatus};
use weft_tests::otlp::{Collector, one};

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_forward_pass_sits_under_the_attempt_that_asked_for_it() {
    let (collector, endpoint) = Collector::start().await;
    let (_dir, url, mut client) = server_with(weft_server::ServerConfig {
        otlp_endpoint: Some(endpoint.clone()),
        ..Default::default()
    })
    .await;
    let worker = InferenceWorker::start_with(&url, &["--otlp-endpoint", &endpoint]);

    let input = json!({
        "tickets": ["I was charged twice, please refund me"],
        "labels": [
            {"name": "billing", "description": "payments, invoices, refunds and charges"},
            {"name": "shipping", "description": "delivery, parcels and tracking"}
        ],
        "min_confidence": 0.0
    });
    client
        .start_workflow(proto::StartWorkflowRequest {
            workflow_type: "MlPipeline".into(),
            workflow_id: "traced-triage".into(),
            input: input.to_string().into_bytes(),
            ..Default::default()
        })
        .await
        .unwrap();
    let result = client
        .get_workflow_result(proto::GetWorkflowResultRequest {
            workflow_id: "traced-triage".into(),
            run_id: String::new(),
            wait: true,
            wait_timeout_ms: 120_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        result.status,
        RunStatus::Completed as i32,
        "{:?}",
        result.error
    );

    let trace_id = collector.trace_of("workflow MlPipeline").await;
    let spans = collector
        .trace(
            &trace_id,
            &[
                "activity classify",
                "run activity classify",
                "model forward pass",
                "activity normalize",
                "run activity normalize",
            ],
            weft_worker::telemetry::traces::flush,
        )
        .await;
    let run = one(&spans, "workflow MlPipeline");
    let attempt = one(&spans, "activity classify");
    let work = one(&spans, "run activity classify");
    let forward = one(&spans, "model forward pass");
    assert_eq!(attempt.service, "weft-server");
    assert_eq!(attempt.parent(), run.id(), "the attempt is the run's");
    assert_eq!(work.service, "weft-inference");
    assert_eq!(
        work.parent(),
        attempt.id(),
        "the worker continues the attempt"
    );
    assert_eq!(forward.service, "weft-inference");
    assert_eq!(
        forward.parent(),
        work.id(),
        "the forward pass is the activity's"
    );
    assert!(work.span.start_time_unix_nano <= forward.span.start_time_unix_nano);
    assert!(forward.span.end_time_unix_nano <= work.span.end_time_unix_nano);
    let normalize = one(&spans, "run activity normalize");
    assert_eq!(
        normalize.parent(),
        one(&spans, "activity normalize").id(),
        "the CPU queue's activity is traced the same way"
    );
    worker.kill();
}
