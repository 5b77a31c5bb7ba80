//! `WorkflowService`: upload modules, start runs, read their results and histories, signal.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use weft_engine::weft_history::{ErrorInfo, EventKind, Payload};
use weft_engine::{Clock, Engine, module_sha256};
use weft_store::{RunFilter, RunRecord, RunStatus, Store};

use crate::executor::{ClosedRun, Executor, StartRequest};
use crate::proto::{self, workflow_service_server::WorkflowService};
use crate::{MAX_COMPONENT_BYTES, ServerError, check_payload};

const DEFAULT_RESULT_WAIT_MS: u64 = 60_000;
/// How often a waiting `GetWorkflowResult` looks at the store, for runs closed by other nodes.
const RESULT_RECHECK: Duration = Duration::from_secs(1);

pub(crate) struct WorkflowApi {
    engine: Engine,
    store: Arc<dyn Store>,
    executor: Executor,
    clock: Arc<dyn Clock>,
}

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
    }
}

impl WorkflowApi {
    pub(crate) fn new(
        engine: Engine,
        store: Arc<dyn Store>,
        executor: Executor,
        clock: Arc<dyn Clock>,
    ) -> Self {
        WorkflowApi {
            engine,
            store,
            executor,
            clock,
        }
    }

    /// The run named by id (and run id, or the latest run of the id).
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
        let req = request.into_inner();
        let workflow_type = required("workflow_type", &req.workflow_type)?;
        if req.component.is_empty() {
            return Err(Status::invalid_argument(
                "component is required: the bytes of a .wasm component",
            ));
        }
        if req.component.len() > MAX_COMPONENT_BYTES {
            return Err(Status::invalid_argument(format!(
                "component is {} bytes; the limit is {MAX_COMPONENT_BYTES}",
                req.component.len()
            )));
        }
        // Compiling is CPU work: keep it off the async workers.
        let engine = self.engine.clone();
        let bytes = req.component;
        let (bytes, checked) = tokio::task::spawn_blocking(move || {
            let checked = engine.load(&bytes).map(|_| ());
            (bytes, checked)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        checked.map_err(|e| Status::invalid_argument(format!("component rejected: {e}")))?;
        let module_id = module_sha256(&bytes);
        self.store
            .put_module(workflow_type, &module_id, &bytes, self.clock.now_ms())
            .await
            .map_err(ServerError::from)?;
        self.executor.module_uploaded(workflow_type, &module_id);
        tracing::info!(workflow_type, module_id = %module_id, "module uploaded");
        Ok(Response::new(proto::UploadModuleResponse { module_id }))
    }

    async fn start_workflow(
        &self,
        request: Request<proto::StartWorkflowRequest>,
    ) -> Result<Response<proto::StartWorkflowResponse>, Status> {
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
        let req = request.into_inner();
        let wait_ms = match req.wait_timeout_ms {
            0 => DEFAULT_RESULT_WAIT_MS,
            ms => u64::from(ms),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        let waiters = self.executor.close_waiters();
        let result = async {
            loop {
                // Watching before reading, so a close between the read and the wait is seen.
                let mut closes = req.wait.then(|| waiters.watch(&req.workflow_id));
                let mut run = self.find_run(&req.workflow_id, &req.run_id).await?;
                // Follow continue-as-new to the run that ends the chain.
                while run.status == RunStatus::ContinuedAsNew && req.wait {
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
                let Some(closes) = closes.as_mut().filter(|_| run.status == RunStatus::Running)
                else {
                    return Ok(result_response(run.run_id, run.status, run.output, run.error));
                };
                tokio::select! {
                    changed = closes.changed() => {
                        let closed = changed.ok().and_then(|()| closes.borrow().clone());
                        if let Some(closed) = closed
                            && closed.run_id == run.run_id
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
                            "run {} of `{}` is still running after {wait_ms} ms",
                            run.run_id, run.workflow_id
                        )));
                    }
                }
            }
        }
        .await;
        if req.wait {
            waiters.unwatch(&req.workflow_id);
        }
        result.map(Response::new)
    }

    async fn describe_workflow(
        &self,
        request: Request<proto::DescribeWorkflowRequest>,
    ) -> Result<Response<proto::DescribeWorkflowResponse>, Status> {
        let req = request.into_inner();
        let run = self.find_run(&req.workflow_id, &req.run_id).await?;
        Ok(Response::new(proto::DescribeWorkflowResponse {
            run: Some(run_to_proto(&run)),
        }))
    }

    async fn list_workflows(
        &self,
        request: Request<proto::ListWorkflowsRequest>,
    ) -> Result<Response<proto::ListWorkflowsResponse>, Status> {
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
        let req = request.into_inner();
        let run = self.find_run(&req.workflow_id, &req.run_id).await?;
        let history = self
            .store
            .history(&run.run_id)
            .await
            .map_err(ServerError::from)?
            .ok_or_else(|| Status::not_found(format!("no history for run {}", run.run_id)))?;
        Ok(Response::new(proto::GetHistoryResponse {
            history_json: history.to_json_pretty(),
        }))
    }

    async fn signal_workflow(
        &self,
        request: Request<proto::SignalWorkflowRequest>,
    ) -> Result<Response<proto::SignalWorkflowResponse>, Status> {
        let req = request.into_inner();
        let name = required("signal_name", &req.signal_name)?.to_owned();
        check_payload("payload", &req.payload)?;
        let run = self.find_run(&req.workflow_id, "").await?;
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
}
