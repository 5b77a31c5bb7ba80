//! Support-ticket triage: normalise the texts (CPU), classify each one (inference, fanned out,
//! with retries), then build the routing table (CPU). Each stage runs on its own task queue.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_sdk::{Ctx, RetryPolicy, WorkflowResult};

#[derive(Deserialize, Serialize, Clone)]
struct Label {
    name: String,
    description: String,
}

#[derive(Deserialize)]
struct Input {
    tickets: Vec<String>,
    labels: Vec<Label>,
}

#[derive(Serialize)]
struct ClassifyInput<'a> {
    text: &'a str,
    labels: &'a [Label],
}

#[derive(Deserialize, Serialize)]
struct Classification {
    label: String,
    score: f32,
}

#[derive(Serialize)]
struct RouteInput<'a> {
    tickets: &'a [String],
    classifications: &'a [Classification],
}

fn ml_pipeline(ctx: &Ctx, input: Input) -> WorkflowResult<weft_sdk::serde_json::Value> {
    let normalized: Vec<String> = ctx
        .activity("normalize", &input.tickets)
        .task_queue("cpu")
        .start_to_close(Duration::from_secs(30))
        .call()?;

    let retry = RetryPolicy {
        initial_interval: Duration::from_millis(200),
        maximum_attempts: 5,
        non_retryable_errors: vec!["InvalidInput".into()],
        ..RetryPolicy::default()
    };
    let pending = normalized
        .iter()
        .map(|text| {
            ctx.activity::<_, Classification>(
                "classify",
                &ClassifyInput {
                    text,
                    labels: &input.labels,
                },
            )
            .task_queue("inference")
            .start_to_close(Duration::from_secs(60))
            .retry(retry.clone())
            .start()
        })
        .collect();
    let classifications = ctx
        .join_all(pending)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    weft_sdk::info!("classified {} tickets", classifications.len());

    let table = ctx
        .activity(
            "build_routing_table",
            &RouteInput {
                tickets: &normalized,
                classifications: &classifications,
            },
        )
        .task_queue("cpu")
        .call()?;
    Ok(table)
}

weft_sdk::workflow!(ml_pipeline);
