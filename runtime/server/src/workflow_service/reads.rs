//! Reads: a run's result (waiting for it), its description, lists and counts of runs, its
//! history (with the guest's log lines, replayed), the task queues.

use super::*;

pub(super) const DEFAULT_RESULT_WAIT_MS: u64 = 60_000;

/// How often a waiting `GetWorkflowResult` looks at the store, for runs closed by other nodes.
pub(super) const RESULT_RECHECK: Duration = Duration::from_secs(1);

/// How many compiled modules [`WorkflowApi`] keeps for log replays.
pub(super) const REPLAY_MODULES_KEPT: usize = 16;

/// A run's result as `GetWorkflowResult` answers it.
pub(super) fn result_response(
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

pub(super) fn status_to_proto(s: RunStatus) -> proto::RunStatus {
    match s {
        RunStatus::Running => proto::RunStatus::Running,
        RunStatus::Completed => proto::RunStatus::Completed,
        RunStatus::Failed => proto::RunStatus::Failed,
        RunStatus::ContinuedAsNew => proto::RunStatus::ContinuedAsNew,
        RunStatus::Terminated => proto::RunStatus::Terminated,
        RunStatus::Cancelled => proto::RunStatus::Cancelled,
    }
}

pub(crate) fn run_to_proto(r: &RunRecord) -> proto::WorkflowRun {
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
    pub(super) async fn replay_logs(
        &self,
        history: &History,
    ) -> Result<Vec<proto::LogLine>, String> {
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
    pub(super) async fn describe_details(
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
                .or_status()?
                .ok_or_else(|| Status::not_found(format!("no history for run {}", run.run_id)))?;
            let tasks = store.run_tasks(&run.run_id).await.or_status()?;
            let timers = store.run_timers(&run.run_id).await.or_status()?;
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
            .or_status()?
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
            if let Some(parent) = store.run(parent_run_id).await.or_status()? {
                response.parent_workflow_id = parent.workflow_id;
            }
            response.parent_run_id = parent_run_id.clone();
        }
        let children = store.child_runs(&run.run_id).await.or_status()?;
        if !children.is_empty() {
            // Each child's policy is recorded with its start, in this run's history.
            let history = store.history(&run.run_id).await.or_status()?;
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
                .or_status()?
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
                .or_status()?
                .into_iter()
                .rfind(|r| r.started_at_ms >= run.started_at_ms)
                .map(|r| r.run_id)
                .unwrap_or_default();
        }
        Ok(response)
    }

    pub(super) async fn get_workflow_result(
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
        let waiters = &self.registries.close_waiters;
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
                                .or_status()?
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

    pub(super) async fn describe_workflow(
        &self,
        request: Request<proto::DescribeWorkflowRequest>,
    ) -> Result<Response<proto::DescribeWorkflowResponse>, Status> {
        self.auth.require(&request, Right::Read).await?;
        let req = request.into_inner();
        let run = self.find_run(&req.workflow_id, &req.run_id).await?;
        Ok(Response::new(self.describe_details(&run).await?))
    }

    pub(super) async fn list_workflows(
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
            .or_status()?;
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

    pub(super) async fn get_history(
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
            .or_status()?
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

    pub(super) async fn count_workflows(
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
        let mut counts = self.store.count_runs(&filter).await.or_status()?;
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

    pub(super) async fn list_task_queues(
        &self,
        request: Request<proto::ListTaskQueuesRequest>,
    ) -> Result<Response<proto::ListTaskQueuesResponse>, Status> {
        self.auth.require(&request, Right::Read).await?;
        let now = self.clock.now_ms();
        let stored = self.store.queue_stats(now).await.or_status()?;
        let mut seen = self.registries.queue_activity.snapshot(now);
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
pub(super) fn queue_info(
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
