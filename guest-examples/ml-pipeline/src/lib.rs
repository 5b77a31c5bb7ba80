//! Support-ticket triage on the inference worker (`weft-inference`):
//! 1. normalise the texts (a CPU activity, queue `cpu`);
//! 2. classify every ticket into a queue with `classify` (queue `inference`, fanned out, so
//!    the worker's dynamic batching merges them into few forward passes; retried if the
//!    worker dies; `inference_queue` sends them to another worker, e.g. the Python one on
//!    `inference-py`);
//! 3. escalate the tickets classified with low confidence: wait for `review` signals
//!    (`{"ticket": i, "label": "..."}`) until all are reviewed or the review window closes;
//!    unreviewed ones go to `needs-human`;
//! 4. return the routing table.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_sdk::{Ctx, Either, RetryPolicy, WorkflowResult};

#[derive(Deserialize, Serialize, Clone)]
struct Label {
    name: String,
    description: String,
}

fn default_min_confidence() -> f32 {
    0.3
}

fn default_review_ms() -> u64 {
    3_600_000
}

fn default_classify_timeout_ms() -> u64 {
    30_000
}

fn default_inference_queue() -> String {
    "inference".into()
}

#[derive(Deserialize)]
struct Input {
    tickets: Vec<String>,
    labels: Vec<Label>,
    /// Tickets whose best score is below this wait for a human.
    #[serde(default = "default_min_confidence")]
    min_confidence: f32,
    /// How long the review window stays open.
    #[serde(default = "default_review_ms")]
    review_timeout_ms: u64,
    /// Start-to-close timeout of one `classify` attempt: how soon the attempt of a worker
    /// that died is given to another.
    #[serde(default = "default_classify_timeout_ms")]
    classify_timeout_ms: u64,
    /// The task queue of `classify`: `inference` (weft-inference) by default.
    #[serde(default = "default_inference_queue")]
    inference_queue: String,
}

#[derive(Serialize)]
struct ClassifyInput<'a> {
    text: &'a str,
    labels: &'a [Label],
}

#[derive(Deserialize)]
struct Classification {
    label: String,
    score: f32,
}

#[derive(Deserialize)]
struct Review {
    ticket: usize,
    label: String,
}

#[derive(Serialize)]
struct Route {
    ticket: usize,
    text: String,
    label: String,
    score: f32,
    /// "model", "human" or "timeout".
    decided_by: &'static str,
}

#[derive(Serialize)]
struct RoutingTable {
    routes: Vec<Route>,
    /// Label -> ticket indices.
    queues: BTreeMap<String, Vec<usize>>,
}

fn ml_pipeline(ctx: &Ctx, input: Input) -> WorkflowResult<RoutingTable> {
    let normalized: Vec<String> = ctx
        .activity("normalize", &input.tickets)
        .task_queue("cpu")
        .start_to_close(Duration::from_secs(30))
        .call()?;

    let retry = RetryPolicy {
        initial_interval: Duration::from_millis(200),
        maximum_attempts: 5,
        non_retryable_errors: vec!["InvalidInput".into(), "TooManyItems".into()],
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
            .task_queue(&input.inference_queue)
            .start_to_close(Duration::from_millis(input.classify_timeout_ms))
            .retry(retry.clone())
            .start()
        })
        .collect();
    let classifications = ctx
        .join_all(pending)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;

    let mut routes: Vec<Route> = normalized
        .into_iter()
        .zip(classifications)
        .enumerate()
        .map(|(ticket, (text, c))| Route {
            ticket,
            text,
            decided_by: "model",
            label: c.label,
            score: c.score,
        })
        .collect();
    let mut unsure: Vec<usize> = routes
        .iter()
        .filter(|r| r.score < input.min_confidence)
        .map(|r| r.ticket)
        .collect();
    weft_sdk::info!(
        "classified {} tickets; {} below {} wait for review",
        routes.len(),
        unsure.len(),
        input.min_confidence
    );

    if !unsure.is_empty() {
        let mut window = Some(ctx.timer(Duration::from_millis(input.review_timeout_ms)));
        while !unsure.is_empty() {
            let Some(open) = window.take() else { break };
            match ctx.select2(ctx.signal::<Review>("review"), open) {
                Either::Left((review, still_open)) => {
                    window = Some(still_open);
                    let Ok(review) = review else { continue };
                    if let Some(pos) = unsure.iter().position(|t| *t == review.ticket) {
                        unsure.remove(pos);
                        let route = &mut routes[review.ticket];
                        route.label = review.label;
                        route.decided_by = "human";
                    }
                }
                Either::Right((_, review)) => {
                    review.cancel();
                    for ticket in unsure.drain(..) {
                        routes[ticket].label = "needs-human".into();
                        routes[ticket].decided_by = "timeout";
                    }
                }
            }
        }
        // Every review arrived before the window closed.
        if let Some(open) = window {
            open.cancel();
        }
    }

    let mut queues: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for r in &routes {
        queues.entry(r.label.clone()).or_default().push(r.ticket);
    }
    Ok(RoutingTable { routes, queues })
}

weft_sdk::workflow!(ml_pipeline);
