//! What the server reports about itself: its Prometheus metrics (names and help, the gauges
//! read from the store at scrape time), the layer that counts and traces every gRPC call, and
//! the spans of runs, activations, replays and activity attempts.
//!
//! Spans form one trace per start: caller -> `StartWorkflow` RPC -> `workflow <type>` (the
//! run, from start to close) -> `activation` / `replay` and `activity <name>` (one per
//! attempt, from claim to result) -> the worker's own spans. The run's and the attempts' span
//! ids are derived from the run id and the task id + attempt, so they can be ended by any node
//! after any restart, and the worker's span already points at its attempt while it runs.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use weft_store::{RunClose, RunFilter, RunRecord, RunStatus, Store, TaskRecord};
use weft_telemetry::traces::{self, Attribute, Finished, Kind, TraceContext};

use crate::queue_activity::Outcome;

const RUNS_STARTED: &str = "weft_runs_started_total";
const RUNS_CLOSED: &str = "weft_runs_closed_total";
const RUNS_RUNNING: &str = "weft_runs_running";
const ACTIVATIONS: &str = "weft_activations_total";
const ACTIVATION_SECONDS: &str = "weft_activation_duration_seconds";
const REPLAYS: &str = "weft_replays_total";
const REPLAY_SECONDS: &str = "weft_replay_duration_seconds";
const COMMIT_SIZE: &str = "weft_commit_batch_size";
const COMMIT_SECONDS: &str = "weft_commit_duration_seconds";
const QUEUE_READY: &str = "weft_task_queue_ready_tasks";
const QUEUE_OLDEST: &str = "weft_task_queue_oldest_task_age_seconds";
const ATTEMPTS: &str = "weft_activity_attempts_total";
const FAILURES: &str = "weft_activity_failures_total";
const TIMEOUTS: &str = "weft_activity_timeouts_total";
const ATTEMPT_SECONDS: &str = "weft_activity_attempt_duration_seconds";
const SCHEDULE_TO_START: &str = "weft_activity_schedule_to_start_seconds";
const MATCHED_IN_MEMORY: &str = "weft_activity_tasks_matched_in_memory_total";
const GRPC_REQUESTS: &str = "weft_grpc_requests_total";
const GRPC_SECONDS: &str = "weft_grpc_request_duration_seconds";

/// Gives every server metric its help text; call once after installing the recorder.
pub fn describe() {
    describe_counter!(RUNS_STARTED, "Runs started, by workflow_type.");
    describe_counter!(
        RUNS_CLOSED,
        "Runs closed, by workflow_type and status (completed, failed, cancelled, terminated, continued_as_new)."
    );
    describe_gauge!(
        RUNS_RUNNING,
        "Runs running now, in the whole database (every node reports the same number)."
    );
    describe_counter!(
        ACTIVATIONS,
        "Workflow activations (guest code run until it waits), by workflow_type."
    );
    describe_histogram!(
        ACTIVATION_SECONDS,
        "Time one activation spends in guest code and host calls, by workflow_type."
    );
    describe_counter!(
        REPLAYS,
        "Runs rebuilt by replaying their history (cache misses: after a restart, an eviction or an adoption), by workflow_type."
    );
    describe_histogram!(REPLAY_SECONDS, "Time to rebuild one run from its history.");
    describe_histogram!(
        COMMIT_SIZE,
        "Run steps written per commit (group commit: one transaction for all of them)."
    );
    describe_histogram!(COMMIT_SECONDS, "Time of one commit transaction.");
    describe_gauge!(
        QUEUE_READY,
        "Activity tasks waiting for a worker, by task_queue (read from the database at scrape)."
    );
    describe_gauge!(
        QUEUE_OLDEST,
        "How long the longest-waiting ready task has waited, by task_queue; 0 when none waits."
    );
    describe_counter!(
        ATTEMPTS,
        "Activity attempts handed to workers, by task_queue and activity."
    );
    describe_counter!(
        FAILURES,
        "Activity attempts that reported a failure, by task_queue and activity."
    );
    describe_counter!(
        TIMEOUTS,
        "Activity attempts that ran out of time (start-to-close or heartbeat), by task_queue and activity."
    );
    describe_histogram!(
        ATTEMPT_SECONDS,
        "From a worker's claim to the attempt's result, failure or timeout, by task_queue and activity."
    );
    describe_histogram!(
        SCHEDULE_TO_START,
        "From an activity's scheduling to its first attempt's claim by a worker, by task_queue."
    );
    describe_counter!(
        MATCHED_IN_MEMORY,
        "Activity tasks handed straight to a waiting poller by the batch that created them \
         (claimed in that batch, no claim transaction), by task_queue."
    );
    describe_counter!(
        GRPC_REQUESTS,
        "gRPC requests served, by method and code (OK, NotFound, ...)."
    );
    describe_histogram!(GRPC_SECONDS, "gRPC request latency, by method.");
}

/// Task queues the gauges have been set for, or that workers polled.
static SEEN_QUEUES: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Sets the gauges that are read from the database, then renders every metric; `None` when
/// metrics are off.
/// `polled`: the queues workers polled on this node, reported at 0 when nothing waits.
pub(crate) async fn scrape(
    store: &dyn Store,
    polled: impl IntoIterator<Item = String>,
    now_ms: u64,
) -> Option<String> {
    if !weft_telemetry::metrics::enabled() {
        return None;
    }
    match store.count_runs(&RunFilter::default()).await {
        Ok(counts) => {
            let n: u64 = counts
                .iter()
                .filter(|(status, _)| *status == RunStatus::Running)
                .map(|(_, n)| n)
                .sum();
            gauge!(RUNS_RUNNING).set(n as f64);
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot count running runs"),
    }
    match store.queue_stats(now_ms).await {
        Ok(queues) => {
            // A queue whose tasks are all gone has no row: its gauges drop to 0, not stay.
            let mut seen = SEEN_QUEUES.lock().unwrap_or_else(|p| p.into_inner());
            seen.extend(polled);
            let listed: std::collections::HashSet<&str> =
                queues.iter().map(|q| q.task_queue.as_str()).collect();
            for gone in seen.iter().filter(|q| !listed.contains(q.as_str())) {
                let labels = [("task_queue", gone.clone())];
                gauge!(QUEUE_READY, &labels).set(0.0);
                gauge!(QUEUE_OLDEST, &labels).set(0.0);
            }
            seen.extend(listed.iter().map(|q| (*q).to_owned()));
            for queue in queues {
                let labels = [("task_queue", queue.task_queue)];
                gauge!(QUEUE_READY, &labels).set(queue.ready as f64);
                let age_ms = queue
                    .oldest_ready_since_ms
                    .map_or(0, |since| now_ms.saturating_sub(since));
                gauge!(QUEUE_OLDEST, &labels).set(age_ms as f64 / 1000.0);
            }
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot read the task queues"),
    }
    weft_telemetry::metrics::render()
}

/// The context the run's own span has: its activations, attempts and children hang from it.
pub(crate) fn run_span(record: &RunRecord) -> Option<TraceContext> {
    let parent = TraceContext::parse(record.trace_context.as_deref()?)?;
    Some(parent.at(traces::derived_span_id(&["run", &record.run_id])))
}

/// The `traceparent` that a run started by `record` (a child, a continued run) is given.
pub(crate) fn child_trace_context(record: &RunRecord) -> Option<String> {
    run_span(record).map(|cx| cx.traceparent())
}

/// The caller's span for a request (the RPC span the layer made), when tracing is on.
pub(crate) fn caller_trace_context<T>(request: &tonic::Request<T>) -> Option<String> {
    if !traces::enabled() {
        return None;
    }
    let value = request.metadata().get("traceparent")?.to_str().ok()?;
    TraceContext::parse(value).map(|cx| cx.traceparent())
}

fn run_attributes(record: &RunRecord) -> Vec<Attribute> {
    vec![
        Attribute::new("weft.workflow_id", record.workflow_id.clone()),
        Attribute::new("weft.run_id", record.run_id.clone()),
        Attribute::new("weft.workflow_type", record.workflow_type.clone()),
    ]
}

/// A run was created (its batch committed).
pub(crate) fn run_started(record: &RunRecord) {
    counter!(RUNS_STARTED, "workflow_type" => record.workflow_type.clone()).increment(1);
}

/// A run closed (its batch committed): counted, and its span, from start to close, sent.
pub(crate) fn run_closed(record: &RunRecord, close: &RunClose) {
    counter!(RUNS_CLOSED,
        "workflow_type" => record.workflow_type.clone(),
        "status" => close.status.as_str())
    .increment(1);
    let Some(parent) = record
        .trace_context
        .as_deref()
        .and_then(TraceContext::parse)
    else {
        return;
    };
    let mut attributes = run_attributes(record);
    attributes.push(Attribute::new("weft.status", close.status.as_str()));
    attributes.push(Attribute::new(
        "weft.run_number",
        i64::from(record.run_number),
    ));
    traces::record(Finished {
        name: format!("workflow {}", record.workflow_type),
        kind: Kind::Internal,
        parent: &parent,
        span_id: Some(traces::derived_span_id(&["run", &record.run_id])),
        start: traces::time_ms(record.started_at_ms),
        end: traces::time_ms(close.closed_at_ms),
        attributes,
        error: close
            .error
            .as_ref()
            .filter(|_| close.status == RunStatus::Failed)
            .map(|e| format!("{}: {}", e.kind, e.message)),
    });
}

/// One activation of a run ran for `elapsed` and appended `events` events.
pub(crate) fn activated(
    record: &RunRecord,
    started: SystemTime,
    elapsed: Duration,
    events: usize,
    error: Option<String>,
) {
    counter!(ACTIVATIONS, "workflow_type" => record.workflow_type.clone()).increment(1);
    histogram!(ACTIVATION_SECONDS, "workflow_type" => record.workflow_type.clone())
        .record(elapsed.as_secs_f64());
    if let Some(parent) = run_span(record) {
        let mut attributes = run_attributes(record);
        attributes.push(Attribute::new("weft.events_appended", events as i64));
        traces::record(Finished {
            name: "activation".into(),
            kind: Kind::Internal,
            parent: &parent,
            span_id: None,
            start: started,
            end: started + elapsed,
            attributes,
            error,
        });
    }
}

/// A run was rebuilt from `events` events of history.
pub(crate) fn replayed(record: &RunRecord, started: SystemTime, elapsed: Duration, events: usize) {
    counter!(REPLAYS, "workflow_type" => record.workflow_type.clone()).increment(1);
    histogram!(REPLAY_SECONDS).record(elapsed.as_secs_f64());
    if let Some(parent) = run_span(record) {
        let mut attributes = run_attributes(record);
        attributes.push(Attribute::new("weft.events_replayed", events as i64));
        traces::record(Finished {
            name: "replay".into(),
            kind: Kind::Internal,
            parent: &parent,
            span_id: None,
            start: started,
            end: started + elapsed,
            attributes,
            error: None,
        });
    }
}

/// A batch of `steps` run steps committed in `elapsed`.
pub(crate) fn committed(steps: usize, elapsed: Duration) {
    histogram!(COMMIT_SIZE).record(steps as f64);
    histogram!(COMMIT_SECONDS).record(elapsed.as_secs_f64());
}

fn attempt_span_id(task: &TaskRecord) -> traces::SpanId {
    traces::derived_span_id(&["attempt", &task.task_id, &task.attempt.to_string()])
}

/// `n` tasks of `queue` went straight to a waiting poller.
pub(crate) fn matched_in_memory(queue: &str, n: usize) {
    counter!(MATCHED_IN_MEMORY, "task_queue" => queue.to_owned()).increment(n as u64);
}

/// A worker claimed `task` at `now_ms`: counted, and the `traceparent` its worker's span is
/// a child of (the attempt's span), if the run is traced.
pub(crate) fn attempt_claimed(task: &TaskRecord, now_ms: u64) -> String {
    counter!(ATTEMPTS,
        "task_queue" => task.task_queue.clone(),
        "activity" => task.activity_name.clone())
    .increment(1);
    if task.attempt == 1 {
        histogram!(SCHEDULE_TO_START, "task_queue" => task.task_queue.clone())
            .record(now_ms.saturating_sub(task.scheduled_at_ms) as f64 / 1000.0);
    }
    task.trace_context
        .as_deref()
        .and_then(TraceContext::parse)
        .map(|run| run.at(attempt_span_id(task)).traceparent())
        .unwrap_or_default()
}

/// An attempt of `task` ended at `now_ms` (`error`: why it failed or timed out): seen by the
/// queue view, counted, and its span, from claim to end, sent.
pub(crate) fn attempt_ended(
    activity: &crate::queue_activity::QueueActivity,
    task: &TaskRecord,
    outcome: Outcome,
    error: Option<&str>,
    now_ms: u64,
) {
    activity.attempt_ended(&task.task_queue, &task.activity_name, outcome, now_ms);
    let labels = [
        ("task_queue", task.task_queue.clone()),
        ("activity", task.activity_name.clone()),
    ];
    match outcome {
        Outcome::Completed => {}
        Outcome::Failed => counter!(FAILURES, &labels).increment(1),
        Outcome::TimedOut => counter!(TIMEOUTS, &labels).increment(1),
    }
    let claimed = task.claimed_at_ms.unwrap_or(now_ms);
    histogram!(ATTEMPT_SECONDS, &labels).record(now_ms.saturating_sub(claimed) as f64 / 1000.0);
    let Some(run) = task.trace_context.as_deref().and_then(TraceContext::parse) else {
        return;
    };
    traces::record(Finished {
        name: format!("activity {}", task.activity_name),
        kind: Kind::Producer,
        parent: &run,
        span_id: Some(attempt_span_id(task)),
        start: traces::time_ms(claimed),
        end: traces::time_ms(now_ms),
        attributes: vec![
            Attribute::new("weft.workflow_id", task.workflow_id.clone()),
            Attribute::new("weft.run_id", task.run_id.clone()),
            Attribute::new("weft.task_queue", task.task_queue.clone()),
            Attribute::new("weft.activity", task.activity_name.clone()),
            Attribute::new("weft.attempt", i64::from(task.attempt)),
            Attribute::new(
                "weft.outcome",
                match outcome {
                    Outcome::Completed => "completed",
                    Outcome::Failed => "failed",
                    Outcome::TimedOut => "timed_out",
                },
            ),
        ],
        error: error.map(str::to_owned),
    });
}

/// Counts and traces every gRPC call (and traces every JSON API call): one span per call,
/// a child of the caller's `traceparent`, which is then replaced by the call's own span so
/// the handler starts runs under it. A handler that panics answers `INTERNAL` and the server
/// goes on serving.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestLayer {
    /// Debug builds only: the request path whose handling panics (`WEFT_FAULT_PANIC_PATH`),
    /// for the test that proves a panic is contained.
    panic_path: Option<std::sync::Arc<str>>,
}

impl RequestLayer {
    pub(crate) fn new() -> Self {
        let panic_path = cfg!(debug_assertions)
            .then(|| std::env::var("WEFT_FAULT_PANIC_PATH").ok())
            .flatten()
            .map(std::sync::Arc::from);
        RequestLayer { panic_path }
    }
}

impl<S> tower::Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestService {
            inner,
            panic_path: self.panic_path.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct RequestService<S> {
    inner: S,
    panic_path: Option<std::sync::Arc<str>>,
}

/// The gRPC answer to a handler that panicked.
fn internal_response<B: Default>(method: &str) -> http::Response<B> {
    let mut response = http::Response::new(B::default());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        "grpc-status",
        http::HeaderValue::from(tonic::Code::Internal as i32),
    );
    if let Ok(message) = http::HeaderValue::from_str(&format!(
        "the server failed handling {method} (a bug; it is logged) and goes on serving"
    )) {
        headers.insert("grpc-message", message);
    }
    response
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The method label: known services only, so a stray client cannot add series.
fn method_label(path: &str) -> String {
    let method = path.trim_start_matches('/');
    if method.starts_with("weft.v1.") || method.starts_with("grpc.") {
        method.to_owned()
    } else {
        "other".to_owned()
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "Canceled",
        tonic::Code::Unknown => "Unknown",
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::DeadlineExceeded => "DeadlineExceeded",
        tonic::Code::NotFound => "NotFound",
        tonic::Code::AlreadyExists => "AlreadyExists",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::ResourceExhausted => "ResourceExhausted",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        tonic::Code::Aborted => "Aborted",
        tonic::Code::OutOfRange => "OutOfRange",
        tonic::Code::Unimplemented => "Unimplemented",
        tonic::Code::Internal => "Internal",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::DataLoss => "DataLoss",
        tonic::Code::Unauthenticated => "Unauthenticated",
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for RequestService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path();
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let api = path.starts_with("/api/v1/");
        if !grpc && !api {
            return Box::pin(inner.call(request));
        }
        let method = if grpc {
            method_label(path)
        } else {
            format!("{} /api/v1", request.method())
        };
        let span = if traces::enabled() {
            let parent = request
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(TraceContext::parse)
                .map(|cx| cx.context())
                .unwrap_or_default();
            let mut attributes = vec![Attribute::new("url.path", path.to_owned())];
            if grpc {
                let (service, rpc) = method.rsplit_once('/').unwrap_or((&method, ""));
                attributes.push(Attribute::new("rpc.system", "grpc"));
                attributes.push(Attribute::new("rpc.service", service.to_owned()));
                attributes.push(Attribute::new("rpc.method", rpc.to_owned()));
            }
            let span = traces::start(method.clone(), Kind::Server, &parent, attributes);
            if let Some(own) = span.as_ref().and_then(TraceContext::of)
                && let Ok(value) = own.traceparent().parse()
            {
                request.headers_mut().insert("traceparent", value);
            }
            span
        } else {
            None
        };
        let started = Instant::now();
        let inject = self
            .panic_path
            .as_deref()
            .is_some_and(|p| p == request.uri().path());
        let response = inner.call(request);
        Box::pin(async move {
            use futures_util::FutureExt;
            let handled = std::panic::AssertUnwindSafe(async move {
                if inject {
                    panic!("injected panic (WEFT_FAULT_PANIC_PATH)");
                }
                response.await
            })
            .catch_unwind()
            .await;
            let response = match handled {
                Ok(response) => response,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(method = %method, panic = %what, "a request handler panicked");
                    Ok(internal_response(&method))
                }
            };
            let code = match &response {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                Err(_) => tonic::Code::Unknown,
            };
            let http_status = response.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
            if grpc {
                let elapsed = started.elapsed().as_secs_f64();
                counter!(GRPC_REQUESTS, "method" => method.clone(), "code" => code_name(code))
                    .increment(1);
                histogram!(GRPC_SECONDS, "method" => method).record(elapsed);
            }
            if let Some(span) = span {
                let failed = if grpc {
                    (code != tonic::Code::Ok).then(|| code_name(code).to_owned())
                } else {
                    (http_status >= 500).then(|| format!("HTTP {http_status}"))
                };
                let attribute = if grpc {
                    Attribute::new("rpc.grpc.status_code", code as i64)
                } else {
                    Attribute::new("http.response.status_code", i64::from(http_status))
                };
                traces::finish(&span, vec![attribute], failed);
            }
            response
        })
    }
}
