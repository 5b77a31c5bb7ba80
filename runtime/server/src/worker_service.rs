//! `WorkerService`: native workers poll activity tasks and report their outcome.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use weft_engine::Clock;
use weft_engine::weft_history::{Completion, ErrorInfo, EventKind, Failure, Payload};
use weft_store::{AttemptFailure, Store, TaskRecord};

use crate::activity_policy::{
    DEFAULT_START_TO_CLOSE_MS, backoff_ms, default_retry, lease_ms, start_to_close_ms, task_token,
};
use crate::auth::{Auth, Right};
use crate::executor::Executor;
use crate::issued_claims::IssuedClaims;
use crate::proto::{self, worker_service_server::WorkerService};
use crate::queue_activity::Outcome;
use crate::{Registries, ServerError, check_payload};
const DEFAULT_POLL_MS: u64 = 30_000;
const MAX_POLL_MS: u64 = 60_000;
const MAX_TASKS_PER_POLL: u32 = 100;

/// The `WorkerService` RPCs (served over gRPC by [`crate::serve`]).
pub struct WorkerApi {
    store: Arc<dyn Store>,
    executor: Executor,
    registries: Registries,
    clock: Arc<dyn Clock>,
    auth: Auth,
}

/// How an attempt failed or timed out: its error kind (retry policies name kinds), whether
/// the worker said never to retry it, and what the workflow gets if it is not retried.
pub(crate) struct AttemptFailed<'a> {
    pub kind: &'a str,
    pub non_retryable: bool,
    pub failure: Failure,
}

/// Ends an attempt that failed or timed out: retries it per its policy, or delivers the
/// failure to the run when no attempt is left.
pub(crate) async fn fail_attempt(
    store: &dyn Store,
    executor: &Executor,
    registries: &Registries,
    task: &TaskRecord,
    failed: AttemptFailed<'_>,
    now_ms: u64,
) -> Result<(), ServerError> {
    let AttemptFailed {
        kind,
        non_retryable,
        failure,
    } = failed;
    let policy = task.options.retry.clone().unwrap_or_else(default_retry);
    let backoff = backoff_ms(&policy, task.attempt);
    let exhausted = policy.maximum_attempts != 0 && task.attempt >= policy.maximum_attempts;
    let never_retry = non_retryable || policy.non_retryable_errors.iter().any(|k| k == kind);
    let outcome = if kind == "TimedOut" || kind == "ScheduleToStartTimeout" {
        Outcome::TimedOut
    } else {
        Outcome::Failed
    };
    let message = match &failure {
        Failure::ActivityFailed(e) | Failure::ChildFailed(e) => e.message.clone(),
        Failure::TimedOut(what) => what.clone(),
        Failure::Cancelled => "cancelled".to_owned(),
    };
    crate::telemetry::attempt_ended(
        &registries.queue_activity,
        task,
        outcome,
        Some(&format!("{kind}: {message}")),
        now_ms,
    );
    let out_of_time = task
        .options
        .schedule_to_close_timeout_ms
        .is_some_and(|limit| now_ms + backoff >= task.scheduled_at_ms + limit);
    if exhausted || never_retry || out_of_time {
        tracing::info!(run_id = %task.run_id, task_id = %task.task_id, attempt = task.attempt, kind, "activity failed for good");
        executor
            .deliver(
                &task.run_id,
                EventKind::ActivityCompleted {
                    handle: task.handle,
                    completion: Completion::Err(failure),
                },
                Some(task.task_id.clone()),
                None,
            )
            .await
    } else {
        let ended = AttemptFailure {
            kind: kind.to_owned(),
            message,
            at_ms: now_ms,
        };
        store
            .retry_task(
                &task.task_id,
                task.attempt,
                task.claim_secret.as_deref(),
                now_ms + backoff,
                &ended,
            )
            .await?;
        registries.pollers.get(&task.task_queue).notify_waiters();
        Ok(())
    }
}

/// The poll's answer: the claimed tasks, with tokens that carry the claim's secret (and
/// which `claims` remembers, for their completions).
fn tasks_response(
    claims: &IssuedClaims,
    mut claimed: Vec<TaskRecord>,
    secret: &str,
    now: u64,
) -> proto::PollActivityTaskResponse {
    let mut tasks = Vec::with_capacity(claimed.len());
    for task in &mut claimed {
        let details = task.heartbeat_details.clone().unwrap_or_default();
        let start_to_close = start_to_close_ms(task);
        let traceparent = crate::telemetry::attempt_claimed(task, now);
        tasks.push(proto::ActivityTask {
            task_token: task_token(&task.task_id, task.attempt, secret),
            activity_name: task.activity_name.clone(),
            // Moved, not copied: what `claims` keeps has no use for it.
            input: std::mem::take(&mut task.input.0),
            attempt: task.attempt,
            workflow_id: task.workflow_id.clone(),
            run_id: task.run_id.clone(),
            idempotency_key: format!("{}/{}", task.workflow_id, task.task_id),
            deadline_ms: now + start_to_close,
            heartbeat_timeout_ms: task.options.heartbeat_timeout_ms.unwrap_or(0),
            heartbeat_details: details,
            traceparent,
        });
    }
    claims.issued(claimed, now);
    proto::PollActivityTaskResponse { tasks }
}

/// `<task id>#<attempt>#<claim secret>`.
fn parse_token(token: &str) -> Result<(&str, u32, &str), Status> {
    let mut parts = token.rsplitn(3, '#');
    let (secret, attempt, id) = (parts.next(), parts.next(), parts.next());
    id.zip(attempt)
        .zip(secret)
        .and_then(|((id, attempt), secret)| Some((id, attempt.parse().ok()?, secret)))
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "task_token `{token}` is not a token this server issued; pass the task_token of a polled task"
            ))
        })
}

impl WorkerApi {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        executor: Executor,
        registries: Registries,
        clock: Arc<dyn Clock>,
        auth: Auth,
    ) -> Self {
        WorkerApi {
            store,
            executor,
            registries,
            clock,
            auth,
        }
    }

    /// The task `request`'s token names, if its caller may work on the task's queue. With
    /// `from_claims` (a completion) the claims this node issued answer where they can, with
    /// no read (`issued_claims` says why that is the same check); a remembered claim is
    /// forgotten once asked for.
    async fn authorized_task<T>(
        &self,
        request: &Request<T>,
        token: &str,
        from_claims: bool,
    ) -> Result<TaskRecord, Status> {
        let principal = self.auth.require(request, Right::Work("")).await?;
        let (task_id, attempt, secret) = parse_token(token)?;
        let issued = from_claims
            .then(|| {
                self.registries
                    .claims
                    .take(task_id, attempt, secret, self.clock.now_ms())
            })
            .flatten();
        let task = match issued {
            Some(task) => task,
            None => self.current_task(token).await?,
        };
        principal.require(Right::Work(&task.task_queue))?;
        Ok(task)
    }

    /// The task a token names, if its attempt is still the current, leased one.
    async fn current_task(&self, token: &str) -> Result<TaskRecord, Status> {
        let (task_id, attempt, secret) = parse_token(token)?;
        let task = self
            .store
            .task(task_id)
            .await
            .map_err(ServerError::from)?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "unknown task token `{token}`: the task completed, was cancelled, or was never issued"
                ))
            })?;
        // A token made up from a task's id and attempt does not hold the claim's secret.
        if !task
            .claim_secret
            .as_deref()
            .is_some_and(|s| crate::auth::same_secret(s, secret))
            && task.attempt == attempt
        {
            return Err(Status::not_found(format!(
                "unknown task token `{task_id}#{attempt}#...`: it is not the token of this task's claim"
            )));
        }
        if task.attempt != attempt || task.lease_until_ms.is_none() {
            return Err(Status::failed_precondition(format!(
                "attempt {attempt} of task {task_id} is no longer current (it timed out; attempt {} is the current one)",
                task.attempt
            )));
        }
        Ok(task)
    }
}

#[tonic::async_trait]
impl WorkerService for WorkerApi {
    async fn poll_activity_task(
        &self,
        request: Request<proto::PollActivityTaskRequest>,
    ) -> Result<Response<proto::PollActivityTaskResponse>, Status> {
        let queue = request.get_ref().task_queue.clone();
        self.auth.require(&request, Right::Work(&queue)).await?;
        let req = request.into_inner();
        if req.task_queue.is_empty() {
            return Err(Status::invalid_argument(
                "task_queue is required: name the queue this worker serves",
            ));
        }
        if req.max_tasks > MAX_TASKS_PER_POLL {
            return Err(Status::invalid_argument(format!(
                "max_tasks is {}; ask for 1 to {MAX_TASKS_PER_POLL}",
                req.max_tasks
            )));
        }
        let max = req.max_tasks.max(1);
        let wait_ms = match req.poll_timeout_ms {
            0 => DEFAULT_POLL_MS,
            ms => u64::from(ms).min(MAX_POLL_MS),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        let notify = self.registries.pollers.get(&req.task_queue);
        let worker_id = if req.worker_id.is_empty() {
            "(no worker id)"
        } else {
            req.worker_id.as_str()
        };
        self.registries
            .queue_activity
            .polled(&req.task_queue, worker_id, self.clock.now_ms());
        let queues = self.registries.pollers.clone();
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = self.clock.now_ms();
            let secret = crate::entropy::random_hex(16);
            let claimed = self
                .store
                .claim_tasks(
                    &req.task_queue,
                    max,
                    now,
                    DEFAULT_START_TO_CLOSE_MS,
                    &secret,
                )
                .await
                .map_err(ServerError::from)?;
            if !claimed.is_empty() {
                return Ok(Response::new(tasks_response(
                    &self.registries.claims,
                    claimed,
                    &secret,
                    now,
                )));
            }
            // Nothing in the store: wait for the executor to hand over the next task created
            // here, for a wake-up (tasks from elsewhere), or now and then for retries coming
            // due.
            let (id, mut handed) =
                queues.wait_for_tasks(&req.task_queue, max as usize, secret.clone());
            let tick = tokio::time::sleep(Duration::from_millis(100));
            let timed_out = tokio::select! {
                // In the order written: a simulated schedule replays the same way.
                biased;
                tasks = &mut handed => match tasks {
                    Ok(tasks) => {
                        let now = self.clock.now_ms();
                        return Ok(Response::new(tasks_response(&self.registries.claims, tasks, &secret, now)));
                    }
                    // Their batch failed: look in the store again.
                    Err(_) => continue,
                },
                _ = &mut notified => false,
                _ = tick => false,
                _ = tokio::time::sleep_until(deadline) => true,
            };
            if !queues.stop_waiting(&req.task_queue, id) {
                // The executor took this poll already: its tasks come when their batch commits.
                if let Ok(tasks) = handed.await {
                    let now = self.clock.now_ms();
                    return Ok(Response::new(tasks_response(
                        &self.registries.claims,
                        tasks,
                        &secret,
                        now,
                    )));
                }
            }
            if timed_out {
                return Ok(Response::new(proto::PollActivityTaskResponse {
                    tasks: Vec::new(),
                }));
            }
        }
    }

    async fn complete_activity_task(
        &self,
        request: Request<proto::CompleteActivityTaskRequest>,
    ) -> Result<Response<proto::CompleteActivityTaskResponse>, Status> {
        let token = request.get_ref().task_token.clone();
        let task = self.authorized_task(&request, &token, true).await?;
        let req = request.into_inner();
        check_payload("output", &req.output)?;
        // The attempt ends when its result arrives, before the run takes it.
        let ended_ms = self.clock.now_ms();
        self.executor
            .deliver(
                &task.run_id,
                EventKind::ActivityCompleted {
                    handle: task.handle,
                    completion: Completion::Ok(Payload(req.output)),
                },
                Some(task.task_id.clone()),
                None,
            )
            .await?;
        crate::telemetry::attempt_ended(
            &self.registries.queue_activity,
            &task,
            Outcome::Completed,
            None,
            ended_ms,
        );
        Ok(Response::new(proto::CompleteActivityTaskResponse {}))
    }

    async fn fail_activity_task(
        &self,
        request: Request<proto::FailActivityTaskRequest>,
    ) -> Result<Response<proto::FailActivityTaskResponse>, Status> {
        // Who is asking comes first: an unauthenticated caller learns nothing of the rules.
        self.auth.require(&request, Right::Work("")).await?;
        if request.get_ref().error_kind.is_empty() {
            return Err(Status::invalid_argument(
                "error_kind is required: a machine-readable kind such as `ModelUnavailable`",
            ));
        }
        let token = request.get_ref().task_token.clone();
        let task = self.authorized_task(&request, &token, false).await?;
        // This attempt ends here: a later report of it must read the store.
        self.registries.claims.forget(&task.task_id);
        let req = request.into_inner();
        if req.handed_back {
            tracing::info!(run_id = %task.run_id, task_id = %task.task_id, attempt = task.attempt,
                reason = %req.error_kind, "task handed back by its worker");
            let now_ms = self.clock.now_ms();
            let ended = AttemptFailure {
                kind: req.error_kind.clone(),
                message: format!("handed back by its worker: {}", req.message),
                at_ms: now_ms,
            };
            self.store
                .retry_task(
                    &task.task_id,
                    task.attempt,
                    task.claim_secret.as_deref(),
                    now_ms,
                    &ended,
                )
                .await
                .map_err(ServerError::from)?;
            self.registries
                .pollers
                .get(&task.task_queue)
                .notify_waiters();
            return Ok(Response::new(proto::FailActivityTaskResponse {}));
        }
        let failure = Failure::ActivityFailed(ErrorInfo {
            kind: req.error_kind.clone(),
            message: req.message,
            attempts: task.attempt,
        });
        fail_attempt(
            self.store.as_ref(),
            &self.executor,
            &self.registries,
            &task,
            AttemptFailed {
                kind: &req.error_kind,
                non_retryable: req.non_retryable,
                failure,
            },
            self.clock.now_ms(),
        )
        .await?;
        Ok(Response::new(proto::FailActivityTaskResponse {}))
    }

    async fn record_heartbeat(
        &self,
        request: Request<proto::RecordHeartbeatRequest>,
    ) -> Result<Response<proto::RecordHeartbeatResponse>, Status> {
        check_payload("details", &request.get_ref().details)?;
        let token = request.get_ref().task_token.clone();
        let task = match self.authorized_task(&request, &token, false).await {
            Ok(task) => task,
            // The task was cancelled, its run closed, or this attempt timed out: either way
            // the attempt should stop, which is what the answer is for.
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::NotFound | tonic::Code::FailedPrecondition
                ) =>
            {
                return Ok(Response::new(proto::RecordHeartbeatResponse {
                    cancel_requested: true,
                }));
            }
            Err(status) => return Err(status),
        };
        let req = request.into_inner();
        let now_ms = self.clock.now_ms();
        let lease = now_ms + lease_ms(&task);
        let alive = self
            .store
            .heartbeat(&task.task_id, task.attempt, &req.details, now_ms, lease)
            .await
            .map_err(ServerError::from)?;
        // A task deleted or retried under us: the attempt should stop.
        Ok(Response::new(proto::RecordHeartbeatResponse {
            cancel_requested: !alive,
        }))
    }
}
