//! `WorkflowService`: upload modules, start runs, read their results and histories, signal.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use weft_engine::replay::ReplayVerdict;
use weft_engine::weft_history::{
    ErrorInfo, EventKind, History, ParentClosePolicy, Payload, PendingOp, pending_operations,
};
use weft_engine::{Clock, Engine, WorkflowModule, module_sha256};
use weft_store::{RunFilter, RunRecord, RunStatus, Store};

use crate::auth::{self, Auth, Principal, Right};
use crate::executor::{ClosedRun, Executor, Migration, StartRequest};
use crate::proto::{self, workflow_service_server::WorkflowService};
use crate::{MAX_COMPONENT_BYTES, ServerError, check_payload};

const DEFAULT_RESULT_WAIT_MS: u64 = 60_000;
/// Running runs read per page when `MigrateRuns` lists a type's runs.
const MIGRATE_PAGE: u32 = 500;
/// Vet-and-move rounds for a run whose history grows while it is vetted.
const MIGRATE_ROUNDS: usize = 3;
/// How long `MigrateRuns` waits for another node to carry out a migration routed to it.
const ROUTED_MIGRATION_WAIT: Duration = Duration::from_secs(10);

/// Where and how a history did not replay on a module.
struct Divergence {
    /// The recorded event that did not match; 0 when the replay failed otherwise.
    seq: u64,
    recorded: String,
    new: String,
    message: String,
}
/// How often a waiting `GetWorkflowResult` looks at the store, for runs closed by other nodes.
const RESULT_RECHECK: Duration = Duration::from_secs(1);

/// The `WorkflowService` RPCs (served over gRPC by [`crate::serve`]).
pub struct WorkflowApi {
    engine: Engine,
    store: Arc<dyn Store>,
    executor: Executor,
    clock: Arc<dyn Clock>,
    auth: Auth,
    limits: crate::ApiLimits,
    secure_cookies: bool,
    starts: crate::rate::RateLimiter,
    /// Module compiles at once: a flood of hostile uploads queues here instead of taking
    /// every blocking thread.
    compiles: Arc<tokio::sync::Semaphore>,
    /// Modules compiled to replay histories for their log lines (bounded; the executor's
    /// own cache is private to its task).
    replay_modules: std::sync::Mutex<std::collections::HashMap<String, WorkflowModule>>,
}

impl WorkflowApi {
    /// The principal `token` stands for (the console's sign-in); any valid token will do.
    pub(crate) async fn check_token(&self, token: &str) -> Result<Principal, Status> {
        let mut request = Request::new(());
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::unauthenticated("unknown token"))?;
        request.metadata_mut().insert("authorization", value);
        if !self.auth.enabled() {
            return Err(Status::failed_precondition(
                "this server runs without auth (--auth): no sign-in is needed",
            ));
        }
        self.auth.require(&request, Right::Login).await
    }

    /// Whether the console's cookie must only travel over TLS.
    pub(crate) fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }

    /// Marks the console's cookie `Secure` (the server runs TLS).
    pub(crate) fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// The Prometheus exposition, for a caller who may read; `Ok(None)` when metrics are off.
    pub(crate) async fn metrics_text(
        &self,
        request: Request<()>,
    ) -> Result<Option<String>, Status> {
        self.auth.require(&request, Right::Read).await?;
        let now_ms = self.clock.now_ms();
        let polled = self.executor.queue_activity().snapshot(now_ms).into_keys();
        Ok(crate::telemetry::scrape(self.store.as_ref(), polled, now_ms).await)
    }
}

/// How many compiled modules [`WorkflowApi`] keeps for log replays.
const REPLAY_MODULES_KEPT: usize = 16;

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{field} is required")))
    } else {
        Ok(value)
    }
}

/// A run's result as `GetWorkflowResult` answers it.
fn result_response(
    run_id: String,
    status: RunStatus,
    output: Option<Payload>,
    error: Option<ErrorInfo>,
) -> proto::GetWorkflowResultResponse {
    proto::GetWorkflowResultResponse {
        run_id,
        status: status_to_proto(status) as i32,
        output: output.map(|p| p.0).unwrap_or_default(),
        // A run's error is stored without an attempt count; say the same either way.
        error: error.map(|e| proto::ErrorInfo {
            kind: e.kind,
            message: e.message,
            attempts: 0,
        }),
    }
}

fn status_to_proto(s: RunStatus) -> proto::RunStatus {
    match s {
        RunStatus::Running => proto::RunStatus::Running,
        RunStatus::Completed => proto::RunStatus::Completed,
        RunStatus::Failed => proto::RunStatus::Failed,
        RunStatus::ContinuedAsNew => proto::RunStatus::ContinuedAsNew,
        RunStatus::Terminated => proto::RunStatus::Terminated,
        RunStatus::Cancelled => proto::RunStatus::Cancelled,
    }
}

fn run_to_proto(r: &RunRecord) -> proto::WorkflowRun {
    proto::WorkflowRun {
        workflow_id: r.workflow_id.clone(),
        run_id: r.run_id.clone(),
        workflow_type: r.workflow_type.clone(),
        task_queue: r.task_queue.clone(),
        status: status_to_proto(r.status) as i32,
        run_number: r.run_number,
        module_id: r.module_id.clone(),
        started_at_ms: r.started_at_ms,
        closed_at_ms: r.closed_at_ms.unwrap_or(0),
        history_length: r.history_length as u32,
        parent_close_policy: String::new(),
    }
}

impl WorkflowApi {
    pub(crate) fn new(
        engine: Engine,
        store: Arc<dyn Store>,
        executor: Executor,
        clock: Arc<dyn Clock>,
        auth: Auth,
        limits: crate::ApiLimits,
    ) -> Self {
        WorkflowApi {
            engine,
            store,
            executor,
            clock,
            auth,
            starts: crate::rate::RateLimiter::new(limits.starts_per_second_per_token),
            limits,
            secure_cookies: false,
            compiles: Arc::new(tokio::sync::Semaphore::new(2)),
            replay_modules: Default::default(),
        }
    }

    /// Replays `history` on its own module (compiled once, then kept) for the guest's log
    /// lines, as `weft replay` prints them.
    /// Compiles and checks a component, off the async workers, a few at a time, with a
    /// deadline; a bad one is INVALID_ARGUMENT naming the problem.
    async fn compile(&self, bytes: Vec<u8>) -> Result<(Vec<u8>, WorkflowModule), Status> {
        // Compiling is CPU work: off the async workers, a few at a time, with a deadline.
        let slot = self
            .compiles
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        let engine = self.engine.clone();
        let compiling = tokio::task::spawn_blocking(move || {
            let checked = engine.load(&bytes);
            // Held until the compile ends, even past the caller's deadline.
            drop(slot);
            (bytes, checked)
        });
        let timeout = self.limits.module_compile_timeout;
        let (bytes, checked) = tokio::time::timeout(timeout, compiling)
            .await
            .map_err(|_| {
                Status::invalid_argument(format!(
                    "component rejected: compiling it took longer than {} ms \
                     (module_compile_timeout_ms); a workflow module should compile in well under a second",
                    timeout.as_millis()
                ))
            })?
            .map_err(|e| Status::internal(e.to_string()))?;
        let module =
            checked.map_err(|e| Status::invalid_argument(format!("component rejected: {e}")))?;
        Ok((bytes, module))
    }

    /// Replays the stored histories of the `limit` most recent runs of `workflow_type` (only
    /// the running ones with `running_only`) on `module`, on every core.
    async fn vet(
        &self,
        workflow_type: &str,
        module: &WorkflowModule,
        limit: u32,
        running_only: bool,
    ) -> Result<proto::VetModuleResponse, Status> {
        let filter = RunFilter {
            status: running_only.then_some(RunStatus::Running),
            workflow_type: Some(workflow_type.to_owned()),
            workflow_id_prefix: None,
        };
        let runs = self
            .store
            .list_runs(&filter, None, limit)
            .await
            .map_err(ServerError::from)?;
        let mut histories = Vec::with_capacity(runs.len());
        for run in &runs {
            if let Some(h) = self
                .store
                .history(&run.run_id)
                .await
                .map_err(ServerError::from)?
            {
                histories.push((run, h));
            }
        }
        let (runs, histories): (Vec<&RunRecord>, Vec<History>) = histories.into_iter().unzip();
        let replayed = self.replay_on(module, histories).await?;
        let mut response = proto::VetModuleResponse {
            module_id: module.sha256().to_owned(),
            vetted: replayed.len() as u32,
            ..Default::default()
        };
        for (run, replayed) in runs.iter().zip(replayed) {
            match replayed {
                None => response.clean += 1,
                Some(d) => response.divergences.push(proto::VetDivergence {
                    workflow_id: run.workflow_id.clone(),
                    run_id: run.run_id.clone(),
                    seq: d.seq,
                    recorded: d.recorded,
                    new: d.new,
                    message: d.message,
                }),
            }
        }
        Ok(response)
    }

    /// Replays `histories` on `module` on every core, off the async workers: `None` for each
    /// that replays clean, else where and how it diverged.
    async fn replay_on(
        &self,
        module: &WorkflowModule,
        histories: Vec<History>,
    ) -> Result<Vec<Option<Divergence>>, Status> {
        let engine = self.engine.clone();
        let module = module.clone();
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        let replayed = tokio::task::spawn_blocking(move || {
            weft_engine::replay::replay_many(&engine, &module, histories, jobs)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(replayed
            .into_iter()
            .map(|replayed| match replayed.report {
                Ok(report) => match report.verdict {
                    ReplayVerdict::Clean => None,
                    ReplayVerdict::NonDeterminism(nd) => Some(Divergence {
                        seq: nd.seq,
                        recorded: nd.recorded.clone(),
                        new: nd.new.clone(),
                        message: nd.to_string(),
                    }),
                },
                Err(e) => Some(Divergence {
                    seq: 0,
                    recorded: String::new(),
                    new: String::new(),
                    message: format!("the replay failed: {e}"),
                }),
            })
            .collect())
    }

    /// The running runs `MigrateRuns` is about, in workflow id order: every one of the type,
    /// or those of the ids asked for (each must have a running run of the type).
    async fn runs_to_migrate(
        &self,
        workflow_type: &str,
        workflow_ids: &[String],
    ) -> Result<Vec<RunRecord>, Status> {
        let mut runs = Vec::new();
        if workflow_ids.is_empty() {
            let filter = RunFilter {
                status: Some(RunStatus::Running),
                workflow_type: Some(workflow_type.to_owned()),
                workflow_id_prefix: None,
            };
            let mut cursor = None;
            loop {
                let page = self
                    .store
                    .list_runs(&filter, cursor.clone(), MIGRATE_PAGE)
                    .await
                    .map_err(ServerError::from)?;
                let full = page.len() == MIGRATE_PAGE as usize;
                cursor = page.last().map(|r| (r.started_at_ms, r.run_id.clone()));
                runs.extend(page);
                if !full {
                    break;
                }
            }
        } else {
            for workflow_id in workflow_ids {
                let run = self
                    .store
                    .latest_run(workflow_id)
                    .await
                    .map_err(ServerError::from)?
                    .ok_or_else(|| {
                        Status::not_found(format!("no workflow `{workflow_id}` is stored"))
                    })?;
                if run.status != RunStatus::Running {
                    return Err(Status::failed_precondition(format!(
                        "workflow `{workflow_id}` has no running run (its latest, {}, is {}); \
                         only running runs move",
                        run.run_id,
                        run.status.as_str()
                    )));
                }
                if run.workflow_type != workflow_type {
                    return Err(Status::invalid_argument(format!(
                        "workflow `{workflow_id}` is a `{}`, not a `{workflow_type}`",
                        run.workflow_type
                    )));
                }
                runs.push(run);
            }
        }
        runs.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
        runs.dedup_by(|a, b| a.run_id == b.run_id);
        Ok(runs)
    }

    /// Waits, up to [`ROUTED_MIGRATION_WAIT`] in all, for the migrations routed to other nodes
    /// (`rows[i]`, run on `owner`) to show in the store: each becomes MIGRATED, or SKIPPED
    /// saying its owner did not re-pin it in time.
    async fn await_routed(
        &self,
        to: &str,
        routed: Vec<(proto::RunMigration, String)>,
    ) -> Result<Vec<proto::RunMigration>, Status> {
        let deadline = tokio::time::Instant::now() + ROUTED_MIGRATION_WAIT;
        let mut waiting = routed;
        let mut done = Vec::with_capacity(waiting.len());
        while !waiting.is_empty() {
            let mut still = Vec::new();
            for (mut row, owner) in waiting {
                let run = self
                    .store
                    .run(&row.run_id)
                    .await
                    .map_err(ServerError::from)?;
                match run {
                    Some(run) if run.module_id == to => {
                        row.outcome = proto::MigrationOutcome::Migrated as i32;
                        done.push(row);
                    }
                    Some(run) if run.status == RunStatus::Running => still.push((row, owner)),
                    _ => {
                        row.outcome = proto::MigrationOutcome::Skipped as i32;
                        row.message = "it closed while it was moved".into();
                        done.push(row);
                    }
                }
            }
            waiting = still;
            if waiting.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                for (mut row, owner) in waiting.drain(..) {
                    row.outcome = proto::MigrationOutcome::Skipped as i32;
                    row.message = format!(
                        "its owner, node `{owner}`, did not re-pin it within {} s (its history \
                         may have grown meanwhile); run the migration again",
                        ROUTED_MIGRATION_WAIT.as_secs()
                    );
                    done.push(row);
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(done)
    }

    async fn replay_logs(&self, history: &History) -> Result<Vec<proto::LogLine>, String> {
        let module_id = history.header.module_sha256.clone();
        let cached = self
            .replay_modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&module_id)
            .cloned();
        let bytes = match cached {
            Some(_) => Vec::new(),
            None => self
                .store
                .module(&module_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("module {module_id} is not stored"))?,
        };
        let engine = self.engine.clone();
        let history = history.clone();
        // Compiling and replaying are CPU work: keep them off the async workers.
        let (module, report) = tokio::task::spawn_blocking(move || {
            let module = match cached {
                Some(m) => m,
                None => engine.load(&bytes).map_err(|e| e.to_string())?,
            };
            let report = weft_engine::replay::replay(&engine, &module, history)
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((module, report))
        })
        .await
        .map_err(|e| e.to_string())??;
        {
            let mut kept = self
                .replay_modules
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if kept.len() >= REPLAY_MODULES_KEPT && !kept.contains_key(&module_id) {
                kept.clear();
            }
            kept.insert(module_id, module);
        }
        if let weft_engine::replay::ReplayVerdict::NonDeterminism(nd) = report.verdict {
            return Err(format!("the history does not replay on its module: {nd}"));
        }
        Ok(report
            .logs
            .into_iter()
            .map(|l| proto::LogLine {
                after_event: l.after_event,
                level: l.level.as_str().to_owned(),
                message: l.message,
            })
            .collect())
    }

    /// Everything the run page shows beyond the run's row.
    async fn describe_details(
        &self,
        run: &RunRecord,
    ) -> Result<proto::DescribeWorkflowResponse, Status> {
        let store = self.store.as_ref();
        let mut response = proto::DescribeWorkflowResponse {
            run: Some(run_to_proto(run)),
            input: run.input.0.clone(),
            output: run.output.as_ref().map(|p| p.0.clone()).unwrap_or_default(),
            error: run.error.as_ref().map(|e| proto::ErrorInfo {
                kind: e.kind.clone(),
                message: e.message.clone(),
                attempts: 0,
            }),
            ..Default::default()
        };
        if run.status == RunStatus::Running {
            let history = store
                .history(&run.run_id)
                .await
                .map_err(ServerError::from)?
                .ok_or_else(|| Status::not_found(format!("no history for run {}", run.run_id)))?;
            let tasks = store
                .run_tasks(&run.run_id)
                .await
                .map_err(ServerError::from)?;
            let timers = store
                .run_timers(&run.run_id)
                .await
                .map_err(ServerError::from)?;
            for (handle, op) in pending_operations(&history.events) {
                match op {
                    PendingOp::Activity => {
                        let scheduled = history.events.iter().find_map(|e| match &e.kind {
                            EventKind::ActivityScheduled {
                                handle: h,
                                name,
                                options,
                                ..
                            } if *h == handle => Some((name, options, e.timestamp_ms)),
                            _ => None,
                        });
                        let task = tasks.iter().find(|t| t.handle == handle);
                        let (Some((name, options, at)), task) = (scheduled, task) else {
                            continue;
                        };
                        response.pending_activities.push(proto::PendingActivity {
                            handle,
                            activity_name: name.clone(),
                            task_queue: task
                                .map(|t| t.task_queue.clone())
                                .or_else(|| options.task_queue.clone())
                                .unwrap_or_else(|| run.task_queue.clone()),
                            attempt: task.map_or(1, |t| t.attempt),
                            scheduled_at_ms: at,
                            running: task.is_some_and(|t| t.lease_until_ms.is_some()),
                            claimed_at_ms: task
                                .filter(|t| t.lease_until_ms.is_some())
                                .and_then(|t| t.claimed_at_ms)
                                .unwrap_or(0),
                            last_heartbeat_ms: task.and_then(|t| t.last_heartbeat_ms).unwrap_or(0),
                            heartbeat_details: task
                                .and_then(|t| t.heartbeat_details.clone())
                                .unwrap_or_default(),
                            last_failure: task.and_then(|t| t.last_error.as_ref()).map(|e| {
                                proto::ErrorInfo {
                                    kind: e.kind.clone(),
                                    message: e.message.clone(),
                                    attempts: task.map_or(1, |t| t.attempt.saturating_sub(1)),
                                }
                            }),
                            lease_until_ms: task.and_then(|t| t.lease_until_ms).unwrap_or(0),
                        });
                    }
                    PendingOp::Timer => {
                        if let Some(t) = timers.iter().find(|t| t.handle == handle) {
                            response.pending_timers.push(proto::PendingTimer {
                                handle,
                                fire_at_ms: t.fire_at_ms,
                            });
                        }
                    }
                    PendingOp::Signal(name) => {
                        response
                            .awaited_signals
                            .push(proto::AwaitedSignal { handle, name });
                    }
                    // Children are listed with their own status below.
                    PendingOp::Child(_) => {}
                }
            }
        }
        response.retried_attempts = store
            .run_attempts(&run.run_id)
            .await
            .map_err(ServerError::from)?
            .into_iter()
            .map(|a| proto::ActivityAttempt {
                handle: a.handle,
                attempt: a.attempt,
                started_at_ms: a.started_at_ms.unwrap_or(0),
                ended_at_ms: a.ended_at_ms,
                error_kind: a.error_kind,
                error_message: a.error_message,
                retry_at_ms: a.retry_at_ms,
            })
            .collect();
        if let Some((parent_run_id, _)) = &run.parent {
            if let Some(parent) = store.run(parent_run_id).await.map_err(ServerError::from)? {
                response.parent_workflow_id = parent.workflow_id;
            }
            response.parent_run_id = parent_run_id.clone();
        }
        let children = store
            .child_runs(&run.run_id)
            .await
            .map_err(ServerError::from)?;
        if !children.is_empty() {
            // Each child's policy is recorded with its start, in this run's history.
            let history = store
                .history(&run.run_id)
                .await
                .map_err(ServerError::from)?;
            let policies: std::collections::HashMap<u32, ParentClosePolicy> = history
                .iter()
                .flat_map(|h| h.events.iter())
                .filter_map(|e| match &e.kind {
                    EventKind::ChildWorkflowStarted {
                        handle,
                        parent_close_policy,
                        ..
                    } => Some((
                        *handle,
                        ParentClosePolicy::of_recorded(*parent_close_policy),
                    )),
                    _ => None,
                })
                .collect();
            response.children = children
                .iter()
                .map(|child| proto::WorkflowRun {
                    parent_close_policy: child
                        .parent
                        .as_ref()
                        .and_then(|(_, handle)| policies.get(handle))
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    ..run_to_proto(child)
                })
                .collect();
        }
        if run.run_number > 1 {
            response.previous_run_id = store
                .runs_numbered(&run.workflow_id, run.run_number - 1)
                .await
                .map_err(ServerError::from)?
                .into_iter()
                .find(|r| {
                    r.status == RunStatus::ContinuedAsNew && r.started_at_ms <= run.started_at_ms
                })
                .map(|r| r.run_id)
                .unwrap_or_default();
        }
        if run.status == RunStatus::ContinuedAsNew {
            response.next_run_id = store
                .runs_numbered(&run.workflow_id, run.run_number + 1)
                .await
                .map_err(ServerError::from)?
                .into_iter()
                .rfind(|r| r.started_at_ms >= run.started_at_ms)
                .map(|r| r.run_id)
                .unwrap_or_default();
        }
        Ok(response)
    }

    /// The run named by id (and run id, or the latest run of the id).
    /// Checks an operator scoped to workflow types against the type of `workflow_id`.
    async fn operate_on(&self, principal: &Principal, workflow_id: &str) -> Result<(), Status> {
        if principal.types.is_none() {
            return Ok(());
        }
        let run = self.find_run(workflow_id, "").await?;
        principal.require(Right::Operate(&run.workflow_type))
    }

    async fn find_run(&self, workflow_id: &str, run_id: &str) -> Result<RunRecord, Status> {
        let workflow_id = required("workflow_id", workflow_id)?;
        let run = if run_id.is_empty() {
            self.store.latest_run(workflow_id).await
        } else {
            self.store.run(run_id).await
        }
        .map_err(ServerError::from)?;
        match run {
            Some(r) if r.workflow_id == workflow_id => Ok(r),
            _ if run_id.is_empty() => Err(Status::not_found(format!(
                "no workflow with id `{workflow_id}`"
            ))),
            _ => Err(Status::not_found(format!(
                "workflow `{workflow_id}` has no run `{run_id}`"
            ))),
        }
    }
}

#[tonic::async_trait]
impl WorkflowService for WorkflowApi {
    async fn upload_module(
        &self,
        request: Request<proto::UploadModuleRequest>,
    ) -> Result<Response<proto::UploadModuleResponse>, Status> {
        let principal = self.auth.require(&request, Right::Administer).await?;
        let audit = request.get_ref().workflow_type.clone();
        let peer = auth::peer_of(&request);
        let req = request.into_inner();
        let workflow_type = required("workflow_type", &req.workflow_type)?;
        check_component(&req.component)?;
        let module_id = module_sha256(&req.component);
        let versions = self
            .store
            .modules()
            .await
            .map_err(ServerError::from)?
            .into_iter()
            .filter(|m| m.workflow_type == workflow_type)
            .collect::<Vec<_>>();
        if versions.len() >= self.limits.max_module_versions
            && !versions.iter().any(|m| m.module_id == module_id)
        {
            return Err(Status::resource_exhausted(format!(
                "workflow type `{workflow_type}` has {} module versions, the limit \
                 (max_module_versions); upload under a new type name, or raise the limit",
                versions.len()
            )));
        }
        let bytes = req.component;
        let (bytes, module) = self.compile(bytes).await?;
        if req.vet_recent > 0 {
            let vetted = self
                .vet(workflow_type, &module, req.vet_recent.min(1000), false)
                .await?;
            if !vetted.divergences.is_empty() {
                let runs: Vec<String> = vetted
                    .divergences
                    .iter()
                    .map(|d| format!("{}/{}: {}", d.workflow_id, d.run_id, d.message))
                    .collect();
                return Err(Status::failed_precondition(format!(
                    "component refused: it cannot replay {} of the {} most recent runs of `{workflow_type}`: {}",
                    vetted.divergences.len(),
                    vetted.vetted,
                    runs.join("; ")
                )));
            }
        }
        self.store
            .put_module(workflow_type, &module_id, &bytes, self.clock.now_ms())
            .await
            .map_err(ServerError::from)?;
        self.executor.module_uploaded(workflow_type, &module_id);
        tracing::info!(workflow_type, module_id = %module_id, "module uploaded");
        let target = format!("{audit} {module_id}");
        self.auth
            .audit(&principal, &peer, "upload_module", &target, "ok")
            .await;
        Ok(Response::new(proto::UploadModuleResponse { module_id }))
    }

    async fn vet_module(
        &self,
        request: Request<proto::VetModuleRequest>,
    ) -> Result<Response<proto::VetModuleResponse>, Status> {
        // Compiling and replaying a stranger's component is as costly as an upload.
        self.auth.require(&request, Right::Administer).await?;
        let req = request.into_inner();
        let workflow_type = required("workflow_type", &req.workflow_type)?;
        check_component(&req.component)?;
        let limit = match req.limit {
            0 => 100,
            n => n.min(1000),
        };
        let (_, module) = self.compile(req.component).await?;
        let vetted = self
            .vet(workflow_type, &module, limit, req.running_only)
            .await?;
        tracing::info!(workflow_type, module_id = %vetted.module_id, vetted = vetted.vetted,
            diverged = vetted.divergences.len(), "module vetted");
        Ok(Response::new(vetted))
    }

    async fn migrate_runs(
        &self,
        request: Request<proto::MigrateRunsRequest>,
    ) -> Result<Response<proto::MigrateRunsResponse>, Status> {
        use proto::MigrationOutcome as Outcome;
        let principal = self.auth.require(&request, Right::Administer).await?;
        let peer = auth::peer_of(&request);
        let req = request.into_inner();
        let workflow_type = required("workflow_type", &req.workflow_type)?;
        let to = required("to_module_id", &req.to_module_id)?;
        let stored = self.store.modules().await.map_err(ServerError::from)?;
        match stored.iter().find(|m| m.module_id == to) {
            None => {
                return Err(Status::not_found(format!(
                    "no module `{to}` is stored; upload it first (`weft upload --type \
                     {workflow_type} FILE`) and pass the module id it answers"
                )));
            }
            Some(m) if m.workflow_type != workflow_type => {
                return Err(Status::invalid_argument(format!(
                    "module `{to}` was uploaded for workflow type `{}`, not `{workflow_type}`",
                    m.workflow_type
                )));
            }
            Some(_) => {}
        }
        let bytes = self
            .store
            .module(to)
            .await
            .map_err(ServerError::from)?
            .ok_or_else(|| Status::not_found(format!("module `{to}` is not stored")))?;
        let (_, module) = self.compile(bytes).await?;
        let runs = self
            .runs_to_migrate(workflow_type, &req.workflow_ids)
            .await?;
        let mut rows: Vec<proto::RunMigration> = Vec::with_capacity(runs.len());
        let mut to_vet: Vec<RunRecord> = Vec::new();
        for run in runs {
            if run.module_id == to {
                rows.push(proto::RunMigration {
                    workflow_id: run.workflow_id.clone(),
                    run_id: run.run_id.clone(),
                    from_module_id: run.module_id.clone(),
                    outcome: Outcome::AlreadyOnModule as i32,
                    events: run.history_length,
                    ..Default::default()
                });
            } else {
                to_vet.push(run);
            }
        }
        // Runs another node owns: moved there, confirmed from the store at the end.
        let mut routed = Vec::new();
        for round in 1..=MIGRATE_ROUNDS {
            if to_vet.is_empty() {
                break;
            }
            let mut histories = Vec::with_capacity(to_vet.len());
            let mut vetted_runs = Vec::with_capacity(to_vet.len());
            for run in to_vet.drain(..) {
                if let Some(h) = self
                    .store
                    .history(&run.run_id)
                    .await
                    .map_err(ServerError::from)?
                {
                    histories.push(h);
                    vetted_runs.push(run);
                }
            }
            let lengths: Vec<u64> = histories.iter().map(|h| h.events.len() as u64).collect();
            let replayed = self.replay_on(&module, histories).await?;
            for ((run, events), divergence) in vetted_runs.into_iter().zip(lengths).zip(replayed) {
                let mut row = proto::RunMigration {
                    workflow_id: run.workflow_id.clone(),
                    run_id: run.run_id.clone(),
                    from_module_id: run.module_id.clone(),
                    events,
                    ..Default::default()
                };
                if let Some(d) = divergence {
                    row.outcome = Outcome::Diverged as i32;
                    row.seq = d.seq;
                    row.recorded = d.recorded;
                    row.new = d.new;
                    row.message = d.message;
                    rows.push(row);
                    continue;
                }
                if req.dry_run {
                    row.outcome = Outcome::WouldMigrate as i32;
                    rows.push(row);
                    continue;
                }
                let skipped = |row: &mut proto::RunMigration, message: String| {
                    row.outcome = Outcome::Skipped as i32;
                    row.message = message;
                };
                match self
                    .executor
                    .migrate(&run.run_id, &run.module_id, to, events)
                    .await
                {
                    Ok(Migration::Migrated { .. }) => row.outcome = Outcome::Migrated as i32,
                    Ok(Migration::Routed { owner }) => {
                        routed.push((row, owner));
                        continue;
                    }
                    Ok(Migration::HistoryGrew { events: now }) if round < MIGRATE_ROUNDS => {
                        tracing::debug!(run_id = %run.run_id, vetted = events, now,
                            "history grew while vetted; vetting again");
                        to_vet.push(run);
                        continue;
                    }
                    Ok(Migration::HistoryGrew { events: now }) => skipped(
                        &mut row,
                        format!(
                            "its history kept growing while it was vetted ({events} events \
                             vetted, {now} now, {MIGRATE_ROUNDS} tries); run the migration again"
                        ),
                    ),
                    Ok(Migration::Moved { module_id }) if module_id == to => {
                        row.outcome = Outcome::AlreadyOnModule as i32;
                    }
                    Ok(Migration::Moved { module_id }) => skipped(
                        &mut row,
                        format!("it was moved to module `{module_id}` meanwhile"),
                    ),
                    Err(ServerError::RunClosed(_)) => {
                        skipped(&mut row, "it closed while it was vetted".into());
                    }
                    Err(e) => skipped(&mut row, format!("the migration failed: {e}")),
                }
                rows.push(row);
            }
        }
        rows.extend(self.await_routed(to, routed).await?);
        rows.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
        let count = |o: Outcome| rows.iter().filter(|r| r.outcome == o as i32).count() as u32;
        let response = proto::MigrateRunsResponse {
            to_module_id: to.to_owned(),
            migrated: count(Outcome::Migrated),
            diverged: count(Outcome::Diverged),
            runs: rows,
        };
        tracing::info!(workflow_type, module_id = %to, migrated = response.migrated,
            diverged = response.diverged, dry_run = req.dry_run, "runs migrated");
        if !req.dry_run {
            let target = format!("{workflow_type} -> {to}: {} migrated", response.migrated);
            self.auth
                .audit(&principal, &peer, "migrate_runs", &target, "ok")
                .await;
        }
        Ok(Response::new(response))
    }

    async fn start_workflow(
        &self,
        request: Request<proto::StartWorkflowRequest>,
    ) -> Result<Response<proto::StartWorkflowResponse>, Status> {
        let workflow_type = request.get_ref().workflow_type.clone();
        let principal = self
            .auth
            .require(&request, Right::Operate(&workflow_type))
            .await?;
        if let Err(wait) = self.starts.take(&principal.name) {
            return Err(<Status as tonic_types::StatusExt>::with_error_details(
                tonic::Code::ResourceExhausted,
                format!(
                    "token `{}` starts more than {} runs per second \
                     (starts_per_second_per_token); retry in {} ms",
                    principal.name,
                    self.limits.starts_per_second_per_token,
                    wait.as_millis().max(1)
                ),
                tonic_types::ErrorDetails::with_retry_info(Some(wait)),
            ));
        }
        let trace_context = crate::telemetry::caller_trace_context(&request);
        let req = request.into_inner();
        required("workflow_type", &req.workflow_type)?;
        required("workflow_id", &req.workflow_id)?;
        check_payload("input", &req.input)?;
        let input = if req.input.is_empty() {
            Payload::null()
        } else {
            Payload(req.input)
        };
        let started = self
            .executor
            .start(StartRequest {
                workflow_type: req.workflow_type,
                workflow_id: req.workflow_id,
                input,
                task_queue: if req.task_queue.is_empty() {
                    "default".into()
                } else {
                    req.task_queue
                },
                return_existing: req.return_existing,
                trace_context,
            })
            .await?;
        Ok(Response::new(proto::StartWorkflowResponse {
            run_id: started.run_id,
            existing: started.existing,
        }))
    }

    async fn get_workflow_result(
        &self,
        request: Request<proto::GetWorkflowResultRequest>,
    ) -> Result<Response<proto::GetWorkflowResultResponse>, Status> {
        self.auth.require(&request, Right::Read).await?;
        let req = request.into_inner();
        let wait_ms = match req.wait_timeout_ms {
            0 => DEFAULT_RESULT_WAIT_MS,
            ms => u64::from(ms),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        let waiters = self.executor.close_waiters();
        if !req.wait {
            let run = self.find_run(&req.workflow_id, &req.run_id).await?;
            return Ok(Response::new(result_response(
                run.run_id, run.status, run.output, run.error,
            )));
        }
        let result = async {
            let mut first = true;
            loop {
                // Watching before reading, so a close between the read and the wait is seen.
                let mut closes = waiters.watch(&req.workflow_id);
                // A run this node started and has not seen close is running: the first look
                // needs no read (the rechecks below read, in case another node took it over).
                let here = waiters
                    .running_here(&req.workflow_id)
                    .filter(|id| first && (req.run_id.is_empty() || *id == req.run_id));
                first = false;
                let run_id = match here {
                    Some(run_id) => run_id,
                    None => {
                        let mut run = self.find_run(&req.workflow_id, &req.run_id).await?;
                        // Follow continue-as-new to the run that ends the chain.
                        while run.status == RunStatus::ContinuedAsNew {
                            match self
                                .store
                                .latest_run(&run.workflow_id)
                                .await
                                .map_err(ServerError::from)?
                            {
                                Some(next) if next.run_id != run.run_id => run = next,
                                _ => break,
                            }
                        }
                        if run.status != RunStatus::Running {
                            return Ok(result_response(
                                run.run_id, run.status, run.output, run.error,
                            ));
                        }
                        run.run_id
                    }
                };
                tokio::select! {
                    // In the order written: a simulated schedule replays the same way.
                    biased;
                    changed = closes.changed() => {
                        let closed = changed.ok().and_then(|()| closes.borrow().clone());
                        if let Some(closed) = closed
                            && closed.run_id == run_id
                            && closed.close.status != RunStatus::ContinuedAsNew
                        {
                            let ClosedRun { run_id, close } = (*closed).clone();
                            return Ok(result_response(run_id, close.status, close.output, close.error));
                        }
                    }
                    // The run may be stepped by another node sharing the database.
                    _ = tokio::time::sleep(RESULT_RECHECK) => {}
                    _ = tokio::time::sleep_until(deadline) => {
                        return Err(Status::deadline_exceeded(format!(
                            "run {run_id} of `{}` is still running after {wait_ms} ms",
                            req.workflow_id
                        )));
                    }
                }
            }
        }
        .await;
        waiters.unwatch(&req.workflow_id);
        result.map(Response::new)
    }

    async fn describe_workflow(
        &self,
        request: Request<proto::DescribeWorkflowRequest>,
    ) -> Result<Response<proto::DescribeWorkflowResponse>, Status> {
        self.auth.require(&request, Right::Read).await?;
        let req = request.into_inner();
        let run = self.find_run(&req.workflow_id, &req.run_id).await?;
        Ok(Response::new(self.describe_details(&run).await?))
    }

    async fn list_workflows(
        &self,
        request: Request<proto::ListWorkflowsRequest>,
    ) -> Result<Response<proto::ListWorkflowsResponse>, Status> {
        self.auth.require(&request, Right::Read).await?;
        let req = request.into_inner();
        let status = match proto::RunStatus::try_from(req.status) {
            Ok(proto::RunStatus::Unspecified) => None,
            Ok(proto::RunStatus::Running) => Some(RunStatus::Running),
            Ok(proto::RunStatus::Completed) => Some(RunStatus::Completed),
            Ok(proto::RunStatus::Failed) => Some(RunStatus::Failed),
            Ok(proto::RunStatus::ContinuedAsNew) => Some(RunStatus::ContinuedAsNew),
            Ok(proto::RunStatus::Terminated) => Some(RunStatus::Terminated),
            Ok(proto::RunStatus::Cancelled) => Some(RunStatus::Cancelled),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "status {} is not a RunStatus",
                    req.status
                )));
            }
        };
        if req.page_size > 1000 {
            return Err(Status::invalid_argument(format!(
                "page_size is {}; ask for 1 to 1000",
                req.page_size
            )));
        }
        let limit = if req.page_size == 0 {
            100
        } else {
            req.page_size
        };
        let before = if req.page_token.is_empty() {
            None
        } else {
            let (ms, id) = req
                .page_token
                .split_once(':')
                .and_then(|(ms, id)| Some((ms.parse::<u64>().ok()?, id.to_owned())))
                .ok_or_else(|| {
                    Status::invalid_argument("page_token is not one this server returned")
                })?;
            Some((ms, id))
        };
        let filter = RunFilter {
            status,
            workflow_type: (!req.workflow_type.is_empty()).then_some(req.workflow_type),
            workflow_id_prefix: (!req.workflow_id_prefix.is_empty())
                .then_some(req.workflow_id_prefix),
        };
        let runs = self
            .store
            .list_runs(&filter, before, limit)
            .await
            .map_err(ServerError::from)?;
        let next_page_token = match runs.last() {
            Some(last) if runs.len() == limit as usize => {
                format!("{}:{}", last.started_at_ms, last.run_id)
            }
            _ => String::new(),
        };
        Ok(Response::new(proto::ListWorkflowsResponse {
            runs: runs.iter().map(run_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_history(
        &self,
        request: Request<proto::GetHistoryRequest>,
    ) -> Result<Response<proto::GetHistoryResponse>, Status> {
        self.auth.require(&request, Right::Read).await?;
        let req = request.into_inner();
        let run = self.find_run(&req.workflow_id, &req.run_id).await?;
        let history = self
            .store
            .history(&run.run_id)
            .await
            .map_err(ServerError::from)?
            .ok_or_else(|| Status::not_found(format!("no history for run {}", run.run_id)))?;
        let (logs, logs_error) = if req.include_logs {
            match self.replay_logs(&history).await {
                Ok(logs) => (logs, String::new()),
                Err(e) => (Vec::new(), e),
            }
        } else {
            (Vec::new(), String::new())
        };
        Ok(Response::new(proto::GetHistoryResponse {
            history_json: history.to_json_pretty(),
            logs,
            logs_error,
        }))
    }

    async fn signal_workflow(
        &self,
        request: Request<proto::SignalWorkflowRequest>,
    ) -> Result<Response<proto::SignalWorkflowResponse>, Status> {
        let principal = self.auth.require(&request, Right::Operate("")).await?;
        let req = request.into_inner();
        let name = required("signal_name", &req.signal_name)?.to_owned();
        check_payload("payload", &req.payload)?;
        let run = self.find_run(&req.workflow_id, "").await?;
        principal.require(Right::Operate(&run.workflow_type))?;
        if run.status != RunStatus::Running {
            return Err(Status::failed_precondition(format!(
                "workflow `{}` is not running (its last run is {})",
                run.workflow_id,
                run.status.as_str()
            )));
        }
        let payload = if req.payload.is_empty() {
            Payload::null()
        } else {
            Payload(req.payload)
        };
        self.executor
            .deliver(
                &run.run_id,
                EventKind::SignalReceived { name, payload },
                None,
                None,
            )
            .await?;
        Ok(Response::new(proto::SignalWorkflowResponse {}))
    }

    async fn cancel_workflow(
        &self,
        request: Request<proto::CancelWorkflowRequest>,
    ) -> Result<Response<proto::CancelWorkflowResponse>, Status> {
        let principal = self.auth.require(&request, Right::Operate("")).await?;
        self.operate_on(&principal, &request.get_ref().workflow_id)
            .await?;
        let req = request.into_inner();
        let workflow_id = required("workflow_id", &req.workflow_id)?;
        let reason = if req.reason.is_empty() {
            "cancelled".to_owned()
        } else {
            req.reason.clone()
        };
        let cancelled = self.executor.cancel(workflow_id, reason).await?;
        Ok(Response::new(proto::CancelWorkflowResponse {
            run_id: cancelled.run_id,
            newly_requested: cancelled.newly_requested,
        }))
    }

    async fn terminate_workflow(
        &self,
        request: Request<proto::TerminateWorkflowRequest>,
    ) -> Result<Response<proto::TerminateWorkflowResponse>, Status> {
        let principal = self.auth.require(&request, Right::Operate("")).await?;
        self.operate_on(&principal, &request.get_ref().workflow_id)
            .await?;
        let target = request.get_ref().workflow_id.clone();
        self.auth
            .audit(
                &principal,
                &auth::peer_of(&request),
                "terminate",
                &target,
                "requested",
            )
            .await;
        let req = request.into_inner();
        let workflow_id = required("workflow_id", &req.workflow_id)?;
        let reason = if req.reason.is_empty() {
            "terminated".to_owned()
        } else {
            req.reason.clone()
        };
        self.executor.terminate(workflow_id, reason).await?;
        Ok(Response::new(proto::TerminateWorkflowResponse {}))
    }

    async fn count_workflows(
        &self,
        request: Request<proto::CountWorkflowsRequest>,
    ) -> Result<Response<proto::CountWorkflowsResponse>, Status> {
        self.auth.require(&request, Right::Read).await?;
        let req = request.into_inner();
        let filter = RunFilter {
            status: None,
            workflow_type: (!req.workflow_type.is_empty()).then_some(req.workflow_type),
            workflow_id_prefix: (!req.workflow_id_prefix.is_empty())
                .then_some(req.workflow_id_prefix),
        };
        let mut counts = self
            .store
            .count_runs(&filter)
            .await
            .map_err(ServerError::from)?;
        counts.sort_by_key(|(status, _)| status_to_proto(*status) as i32);
        Ok(Response::new(proto::CountWorkflowsResponse {
            total: counts.iter().map(|(_, n)| n).sum(),
            counts: counts
                .into_iter()
                .map(|(status, count)| proto::StatusCount {
                    status: status_to_proto(status) as i32,
                    count,
                })
                .collect(),
        }))
    }

    async fn list_modules(
        &self,
        request: Request<proto::ListModulesRequest>,
    ) -> Result<Response<proto::ListModulesResponse>, Status> {
        self.auth.require(&request, Right::Read).await?;
        let modules = self.store.modules().await.map_err(ServerError::from)?;
        Ok(Response::new(proto::ListModulesResponse {
            modules: modules
                .into_iter()
                .map(|m| proto::ModuleVersion {
                    workflow_type: m.workflow_type,
                    module_id: m.module_id,
                    size_bytes: m.size_bytes,
                    uploaded_at_ms: m.uploaded_at_ms,
                    newest: m.newest,
                    running_runs: m.running_runs,
                    closed_runs: m.closed_runs,
                })
                .collect(),
        }))
    }

    async fn list_task_queues(
        &self,
        request: Request<proto::ListTaskQueuesRequest>,
    ) -> Result<Response<proto::ListTaskQueuesResponse>, Status> {
        self.auth.require(&request, Right::Read).await?;
        let now = self.clock.now_ms();
        let stored = self
            .store
            .queue_stats(now)
            .await
            .map_err(ServerError::from)?;
        let mut seen = self.executor.queue_activity().snapshot(now);
        let mut queues: Vec<proto::TaskQueueInfo> = stored
            .into_iter()
            .map(|q| {
                let view = seen.remove(&q.task_queue).unwrap_or_default();
                queue_info(&q, view, now)
            })
            .collect();
        // Queues with no task now but workers or recent outcomes.
        for (name, view) in seen {
            let empty = weft_store::QueueStats {
                task_queue: name,
                ready: 0,
                leased: 0,
                backing_off: 0,
                oldest_ready_since_ms: None,
            };
            queues.push(queue_info(&empty, view, now));
        }
        queues.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(proto::ListTaskQueuesResponse { queues }))
    }
}

/// One queue's row at `now_ms`.
fn queue_info(
    stats: &weft_store::QueueStats,
    view: crate::queue_activity::QueueView,
    now_ms: u64,
) -> proto::TaskQueueInfo {
    proto::TaskQueueInfo {
        name: stats.task_queue.clone(),
        ready_tasks: stats.ready,
        running_tasks: stats.leased,
        backing_off_tasks: stats.backing_off,
        oldest_ready_age_ms: stats
            .oldest_ready_since_ms
            .map_or(0, |since| now_ms.saturating_sub(since)),
        workers: view
            .workers
            .into_iter()
            .map(|(worker_id, last_poll_ms)| proto::QueueWorker {
                worker_id,
                last_poll_ms,
            })
            .collect(),
        activities: view
            .activities
            .into_iter()
            .map(|(activity_name, o)| proto::ActivityOutcomes {
                activity_name,
                completed: o.completed,
                failed: o.failed,
                timed_out: o.timed_out,
                last_at_ms: o.last_at_ms,
            })
            .collect(),
    }
}

/// A component's bytes are there and within the limit.
fn check_component(component: &[u8]) -> Result<(), Status> {
    if component.is_empty() {
        return Err(Status::invalid_argument(
            "component is required: the bytes of a .wasm component",
        ));
    }
    if component.len() > MAX_COMPONENT_BYTES {
        return Err(Status::invalid_argument(format!(
            "component is {} bytes; the limit is {MAX_COMPONENT_BYTES}",
            component.len()
        )));
    }
    Ok(())
}
