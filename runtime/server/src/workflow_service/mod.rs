//! `WorkflowService`: upload modules, start runs, read their results and histories, signal.
//!
//! One file per concern: `modules.rs` (upload, vet, migrate, list modules), `reads.rs`
//! (results, descriptions, lists, histories, counts, queues), `commands.rs` (start, signal,
//! cancel, terminate). This file holds the service's state, what they share (the check of a
//! required field, the run a request names, who may operate on it, a store error as a gRPC
//! status), and the trait impl, which only routes each RPC to its file.

mod commands;
mod modules;
mod reads;

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
use crate::close_waiters::ClosedRun;
use crate::executor::{Executor, Migration, StartRequest};
use crate::proto::{self, workflow_service_server::WorkflowService};
use crate::{MAX_COMPONENT_BYTES, ServerError, check_payload};

/// The `WorkflowService` RPCs (served over gRPC by [`crate::serve`]).
pub struct WorkflowApi {
    engine: Engine,
    store: Arc<dyn Store>,
    executor: Executor,
    registries: crate::Registries,
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
        let polled = self.registries.queue_activity.snapshot(now_ms).into_keys();
        Ok(crate::telemetry::scrape(self.store.as_ref(), polled, now_ms).await)
    }
}

pub(super) fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{field} is required")))
    } else {
        Ok(value)
    }
}

/// A store call's outcome as a gRPC answer: the one way a storage error becomes a status.
pub(super) trait OrStatus<T> {
    fn or_status(self) -> Result<T, Status>;
}

impl<T> OrStatus<T> for Result<T, weft_store::StoreError> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(|e| ServerError::from(e).into())
    }
}

impl WorkflowApi {
    pub(crate) fn new(
        engine: Engine,
        store: Arc<dyn Store>,
        executor: Executor,
        registries: crate::Registries,
        clock: Arc<dyn Clock>,
        auth: Auth,
        limits: crate::ApiLimits,
    ) -> Self {
        WorkflowApi {
            engine,
            store,
            executor,
            registries,
            clock,
            auth,
            starts: crate::rate::RateLimiter::new(limits.starts_per_second_per_token),
            limits,
            secure_cookies: false,
            compiles: Arc::new(tokio::sync::Semaphore::new(2)),
            replay_modules: Default::default(),
        }
    }

    /// The run named by id (and run id, or the latest run of the id).
    /// Checks an operator scoped to workflow types against the type of `workflow_id`.
    pub(super) async fn operate_on(
        &self,
        principal: &Principal,
        workflow_id: &str,
    ) -> Result<(), Status> {
        if principal.types.is_none() {
            return Ok(());
        }
        let run = self.find_run(workflow_id, "").await?;
        principal.require(Right::Operate(&run.workflow_type))
    }

    pub(super) async fn find_run(
        &self,
        workflow_id: &str,
        run_id: &str,
    ) -> Result<RunRecord, Status> {
        let workflow_id = required("workflow_id", workflow_id)?;
        let run = if run_id.is_empty() {
            self.store.latest_run(workflow_id).await
        } else {
            self.store.run(run_id).await
        }
        .or_status()?;
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
        WorkflowApi::upload_module(self, request).await
    }

    async fn vet_module(
        &self,
        request: Request<proto::VetModuleRequest>,
    ) -> Result<Response<proto::VetModuleResponse>, Status> {
        WorkflowApi::vet_module(self, request).await
    }

    async fn migrate_runs(
        &self,
        request: Request<proto::MigrateRunsRequest>,
    ) -> Result<Response<proto::MigrateRunsResponse>, Status> {
        WorkflowApi::migrate_runs(self, request).await
    }

    async fn start_workflow(
        &self,
        request: Request<proto::StartWorkflowRequest>,
    ) -> Result<Response<proto::StartWorkflowResponse>, Status> {
        WorkflowApi::start_workflow(self, request).await
    }

    async fn get_workflow_result(
        &self,
        request: Request<proto::GetWorkflowResultRequest>,
    ) -> Result<Response<proto::GetWorkflowResultResponse>, Status> {
        WorkflowApi::get_workflow_result(self, request).await
    }

    async fn describe_workflow(
        &self,
        request: Request<proto::DescribeWorkflowRequest>,
    ) -> Result<Response<proto::DescribeWorkflowResponse>, Status> {
        WorkflowApi::describe_workflow(self, request).await
    }

    async fn list_workflows(
        &self,
        request: Request<proto::ListWorkflowsRequest>,
    ) -> Result<Response<proto::ListWorkflowsResponse>, Status> {
        WorkflowApi::list_workflows(self, request).await
    }

    async fn get_history(
        &self,
        request: Request<proto::GetHistoryRequest>,
    ) -> Result<Response<proto::GetHistoryResponse>, Status> {
        WorkflowApi::get_history(self, request).await
    }

    async fn signal_workflow(
        &self,
        request: Request<proto::SignalWorkflowRequest>,
    ) -> Result<Response<proto::SignalWorkflowResponse>, Status> {
        WorkflowApi::signal_workflow(self, request).await
    }

    async fn cancel_workflow(
        &self,
        request: Request<proto::CancelWorkflowRequest>,
    ) -> Result<Response<proto::CancelWorkflowResponse>, Status> {
        WorkflowApi::cancel_workflow(self, request).await
    }

    async fn terminate_workflow(
        &self,
        request: Request<proto::TerminateWorkflowRequest>,
    ) -> Result<Response<proto::TerminateWorkflowResponse>, Status> {
        WorkflowApi::terminate_workflow(self, request).await
    }

    async fn count_workflows(
        &self,
        request: Request<proto::CountWorkflowsRequest>,
    ) -> Result<Response<proto::CountWorkflowsResponse>, Status> {
        WorkflowApi::count_workflows(self, request).await
    }

    async fn list_modules(
        &self,
        request: Request<proto::ListModulesRequest>,
    ) -> Result<Response<proto::ListModulesResponse>, Status> {
        WorkflowApi::list_modules(self, request).await
    }

    async fn list_task_queues(
        &self,
        request: Request<proto::ListTaskQueuesRequest>,
    ) -> Result<Response<proto::ListTaskQueuesResponse>, Status> {
        WorkflowApi::list_task_queues(self, request).await
    }
}
