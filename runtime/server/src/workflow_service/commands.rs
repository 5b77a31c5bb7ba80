//! Commands: start a run, signal, cancel or terminate it. Each goes through the executor and
//! is answered once it is durable.

use super::*;

impl WorkflowApi {
    pub(super) async fn start_workflow(
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

    pub(super) async fn signal_workflow(
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

    pub(super) async fn cancel_workflow(
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

    pub(super) async fn terminate_workflow(
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
}
