//! Native activity workers for weft.
//!
//! Register async functions by name with serde-typed input and output, then poll one task
//! queue with a concurrency limit:
//!
//! ```no_run
//! # async fn example() -> Result<(), weft_worker::WorkerError> {
//! use weft_worker::{ActivityContext, ActivityError, Worker};
//!
//! #[derive(serde::Deserialize)]
//! struct Greeting { greeting: String, name: String }
//!
//! let mut worker = Worker::connect("http://127.0.0.1:7233").await?;
//! worker.activity("compose_greeting", |_ctx: ActivityContext, g: Greeting| async move {
//!     Ok::<_, ActivityError>(format!("{}, {}!", g.greeting, g.name))
//! });
//! worker.run("hello-activity-task-queue", 8, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! Observability: with a metrics recorder installed ([`telemetry::metrics::serve`], e.g.
//! behind a `--metrics ADDR` flag) the worker counts its tasks (`weft_worker_tasks_total`,
//! `weft_worker_task_duration_seconds`); with traces installed ([`telemetry::traces::install`])
//! each activity runs in a span that continues the trace the server sent with the task, and
//! is the current OpenTelemetry context while the activity runs, so spans the activity makes
//! (`opentelemetry::global::tracer(..)`) join the workflow's trace.
//!
//! On shutdown the worker stops polling and finishes the tasks it holds. A task whose
//! worker dies is retried by the server when its lease (start-to-close or heartbeat timeout)
//! runs out; [`ActivityContext::heartbeat`] extends it and saves progress for the next attempt.
#![deny(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use weft_proto::credentials::Authorized;
pub use weft_proto::credentials::ClientOptions;
use weft_proto::worker_service_client::WorkerServiceClient;
pub use weft_telemetry as telemetry;
use weft_telemetry::traces::{self, Attribute, Kind, TraceContext};

const TASKS: &str = "weft_worker_tasks_total";
const TASK_SECONDS: &str = "weft_worker_task_duration_seconds";

/// Gives the worker's metrics their help text (once a recorder is installed).
fn describe_metrics() {
    metrics::describe_counter!(
        TASKS,
        "Activity tasks this worker ran, by task_queue, activity and outcome (completed, failed)."
    );
    metrics::describe_histogram!(
        TASK_SECONDS,
        "Time this worker spent running one activity task, by task_queue and activity."
    );
}

/// Why the worker could not go on.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The server could not be reached.
    #[error("cannot connect to the weft server at {url}: {reason}")]
    Connect {
        /// The server address.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A call to the server failed.
    #[error("weft server call failed: {0}")]
    Rpc(#[from] tonic::Status),
}

/// An activity's failure, reported to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityError {
    /// Machine-readable kind; retry policies list the kinds never to retry.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// Never retry this failure, whatever the policy says.
    pub non_retryable: bool,
}

impl ActivityError {
    /// A failure that the retry policy may retry.
    pub fn retryable(kind: impl Into<String>, message: impl Into<String>) -> Self {
        ActivityError {
            kind: kind.into(),
            message: message.into(),
            non_retryable: false,
        }
    }

    /// A failure that is never retried.
    pub fn non_retryable(kind: impl Into<String>, message: impl Into<String>) -> Self {
        ActivityError {
            non_retryable: true,
            ..Self::retryable(kind, message)
        }
    }
}

/// What an activity invocation knows about itself, and its line to the server.
#[derive(Clone, Debug)]
pub struct ActivityContext {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The workflow that scheduled the activity.
    pub workflow_id: String,
    /// Its run.
    pub run_id: String,
    /// The same for every attempt of this activity: use it to de-duplicate side effects.
    pub idempotency_key: String,
    /// Details of the last heartbeat of an earlier attempt (empty if none).
    pub heartbeat_details: Vec<u8>,
    token: String,
    client: WorkerServiceClient<Authorized>,
}

impl ActivityContext {
    /// Reports progress and extends the lease. Returns true when the server asks the attempt
    /// to stop (it was cancelled or has timed out).
    pub async fn heartbeat<T: Serialize>(&self, details: &T) -> Result<bool, WorkerError> {
        let details = serde_json::to_vec(details).unwrap_or_default();
        let reply = self
            .client
            .clone()
            .record_heartbeat(weft_proto::RecordHeartbeatRequest {
                task_token: self.token.clone(),
                details,
            })
            .await?;
        Ok(reply.into_inner().cancel_requested)
    }

    /// The previous attempt's last heartbeat details, decoded.
    pub fn previous_progress<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.heartbeat_details).ok()
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, ActivityError>> + Send>>;
type Handler = Arc<dyn Fn(ActivityContext, Vec<u8>) -> BoxFuture + Send + Sync>;

/// A native worker: activities by name, polled from one task queue.
pub struct Worker {
    url: String,
    client: WorkerServiceClient<Authorized>,
    activities: HashMap<String, Handler>,
    worker_id: String,
    drain_timeout: Option<std::time::Duration>,
}

impl Worker {
    /// Connects to the server at `url` (e.g. `http://127.0.0.1:7233`, or `https://...`),
    /// with what the environment gives: `WEFT_TOKEN` (a `worker` token for the queues this
    /// worker serves), `WEFT_CA`, `WEFT_CERT` and `WEFT_KEY` (PEM files, for TLS and mTLS).
    pub async fn connect(url: &str) -> Result<Self, WorkerError> {
        let options = ClientOptions::from_env().map_err(|reason| WorkerError::Connect {
            url: url.to_owned(),
            reason,
        })?;
        Self::connect_with(url, &options).await
    }

    /// Connects to the server at `url` with a token and TLS settings.
    pub async fn connect_with(url: &str, options: &ClientOptions) -> Result<Self, WorkerError> {
        let channel = options
            .connect(url)
            .await
            .map_err(|reason| WorkerError::Connect {
                url: url.to_owned(),
                reason,
            })?;
        let client = WorkerServiceClient::new(channel);
        Ok(Worker {
            url: url.to_owned(),
            client,
            activities: HashMap::new(),
            worker_id: format!("worker-{}", std::process::id()),
            drain_timeout: None,
        })
    }

    /// On shutdown, wait at most `timeout` for running activities, then stop them and hand
    /// their tasks back to the server, which offers them to other workers at once. Without
    /// it, shutdown waits for every running activity to finish.
    pub fn drain_timeout(&mut self, timeout: std::time::Duration) -> &mut Self {
        self.drain_timeout = Some(timeout);
        self
    }

    /// The server this worker talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Registers activity `name`: JSON input decoded into `I`, `O` encoded as the result.
    pub fn activity<I, O, F, Fut>(&mut self, name: &str, f: F) -> &mut Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ActivityError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let activity = name.to_owned();
        let handler: Handler = Arc::new(move |ctx, input| {
            let f = f.clone();
            let activity = activity.clone();
            Box::pin(async move {
                let input: I = serde_json::from_slice(&input).map_err(|e| {
                    ActivityError::non_retryable(
                        "BadInput",
                        format!("input of activity `{activity}` does not decode: {e}"),
                    )
                })?;
                let output = f(ctx, input).await?;
                serde_json::to_vec(&output).map_err(|e| {
                    ActivityError::non_retryable(
                        "BadOutput",
                        format!("output of activity `{activity}` does not encode: {e}"),
                    )
                })
            })
        });
        self.activities.insert(name.to_owned(), handler);
        self
    }

    /// Polls `task_queue`, running up to `concurrency` activities at once, until `shutdown`
    /// resolves; then finishes the running ones (or, past the
    /// [`drain_timeout`](Self::drain_timeout), hands them back) and returns.
    pub async fn run(
        &self,
        task_queue: &str,
        concurrency: usize,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WorkerError> {
        describe_metrics();
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut running = tokio::task::JoinSet::new();
        // Tokens of the tasks started and not yet reported, to hand back on a timed-out drain.
        let unreported: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
        tokio::pin!(shutdown);
        loop {
            // Ask only for as many tasks as there are free slots.
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                permit = slots.clone().acquire_owned() => permit.expect("semaphore open"),
            };
            // Only this loop takes slots, so the free ones stay free until the tasks arrive.
            let free = 1 + slots.available_permits().min(99);
            let mut client = self.client.clone();
            let poll = client.poll_activity_task(weft_proto::PollActivityTaskRequest {
                task_queue: task_queue.to_owned(),
                worker_id: self.worker_id.clone(),
                max_tasks: free as u32,
                poll_timeout_ms: 10_000,
            });
            let tasks = tokio::select! {
                _ = &mut shutdown => break,
                reply = poll => match reply {
                    Ok(reply) => reply.into_inner().tasks,
                    Err(status) => {
                        tracing::warn!(%status, "poll failed; retrying in 1 s");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            drop(permit);
            for task in tasks {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    // Cannot happen (we asked for free slots only); the lease will expire.
                    tracing::error!(task = %task.task_token, "no free slot for a polled task");
                    continue;
                };
                let handler = self.activities.get(&task.activity_name).cloned();
                let client = self.client.clone();
                let unreported = unreported.clone();
                let queue = task_queue.to_owned();
                lock(&unreported).insert(task.task_token.clone());
                running.spawn(async move {
                    let token = task.task_token.clone();
                    execute(client, handler, task, queue).await;
                    lock(&unreported).remove(&token);
                    drop(permit);
                });
            }
            while running.try_join_next().is_some() {}
        }
        let drained = async { while running.join_next().await.is_some() {} };
        match self.drain_timeout {
            None => drained.await,
            Some(timeout) => {
                if tokio::time::timeout(timeout, drained).await.is_err() {
                    running.abort_all();
                    while running.join_next().await.is_some() {}
                    let tokens: Vec<String> = lock(&unreported).drain().collect();
                    for token in tokens {
                        self.hand_back(token).await;
                    }
                }
            }
        }
        Ok(())
    }

    async fn hand_back(&self, token: String) {
        let handed = self
            .client
            .clone()
            .fail_activity_task(weft_proto::FailActivityTaskRequest {
                task_token: token.clone(),
                error_kind: "WorkerShutdown".into(),
                message: format!("worker {} shut down", self.worker_id),
                non_retryable: false,
                handed_back: true,
            })
            .await;
        match handed {
            Ok(_) => tracing::info!(task = %token, "handed the task back"),
            // Its lease will expire and the server will retry it anyway.
            Err(status) => tracing::warn!(task = %token, %status, "could not hand the task back"),
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn execute(
    mut client: WorkerServiceClient<Authorized>,
    handler: Option<Handler>,
    task: weft_proto::ActivityTask,
    queue: String,
) {
    let token = task.task_token.clone();
    let ctx = ActivityContext {
        attempt: task.attempt,
        workflow_id: task.workflow_id.clone(),
        run_id: task.run_id.clone(),
        idempotency_key: task.idempotency_key.clone(),
        heartbeat_details: task.heartbeat_details.clone(),
        token: token.clone(),
        client: client.clone(),
    };
    let span = TraceContext::parse(&task.traceparent).and_then(|parent| {
        traces::start(
            format!("run activity {}", task.activity_name),
            Kind::Consumer,
            &parent.context(),
            vec![
                Attribute::new("weft.workflow_id", task.workflow_id.clone()),
                Attribute::new("weft.run_id", task.run_id.clone()),
                Attribute::new("weft.task_queue", queue.clone()),
                Attribute::new("weft.activity", task.activity_name.clone()),
                Attribute::new("weft.attempt", i64::from(task.attempt)),
            ],
        )
    });
    let started = std::time::Instant::now();
    let result = match handler {
        Some(h) => {
            let running = h(ctx, task.input);
            match &span {
                // The activity's own spans become children of this one.
                Some(cx) => {
                    opentelemetry::trace::FutureExt::with_context(running, cx.clone()).await
                }
                None => running.await,
            }
        }
        None => Err(ActivityError::non_retryable(
            "ActivityNotRegistered",
            format!("this worker has no activity `{}`", task.activity_name),
        )),
    };
    let outcome = if result.is_ok() {
        "completed"
    } else {
        "failed"
    };
    metrics::counter!(TASKS,
        "task_queue" => queue.clone(),
        "activity" => task.activity_name.clone(),
        "outcome" => outcome)
    .increment(1);
    metrics::histogram!(TASK_SECONDS,
        "task_queue" => queue,
        "activity" => task.activity_name.clone())
    .record(started.elapsed().as_secs_f64());
    if let Some(cx) = &span {
        let error = result
            .as_ref()
            .err()
            .map(|e| format!("{}: {}", e.kind, e.message));
        traces::finish(cx, Vec::new(), error);
    }
    // A server that is briefly unavailable gets the result again; anything else is final.
    let mut delay = std::time::Duration::from_millis(100);
    for attempt in 1..=6 {
        let reported = match &result {
            Ok(output) => client
                .complete_activity_task(weft_proto::CompleteActivityTaskRequest {
                    task_token: token.clone(),
                    output: output.clone(),
                })
                .await
                .map(|_| ()),
            Err(e) => client
                .fail_activity_task(weft_proto::FailActivityTaskRequest {
                    task_token: token.clone(),
                    error_kind: e.kind.clone(),
                    message: e.message.clone(),
                    non_retryable: e.non_retryable,
                    handed_back: false,
                })
                .await
                .map(|_| ()),
        };
        match reported {
            Ok(()) => return,
            Err(status) if status.code() == tonic::Code::Unavailable && attempt < 6 => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(status) => {
                tracing::warn!(task = %token, %status, "could not report the activity's result");
                return;
            }
        }
    }
}
