//! Applying one command to one run: start it, deliver to it, terminate, cancel or migrate it,
//! and rebuild it from its history when it is not cached.

use weft_engine::weft_history::{Effects, EventKind};
use weft_engine::{Activation, NewRun, RunOutcome, WorkflowRun};
use weft_store::{Batch, RunRecord, RunStatus, StepWrite};

use super::ownership::{Claim, Routed};
use super::*;
use crate::ServerError;

impl State {
    /// Starts a run. `checked_module` is set when the caller already resolved the module
    /// and found no running run in the store; internal starts (children) look here.
    pub(super) async fn start(
        &mut self,
        request: StartRequest,
        checked_module: Option<String>,
        run_number: u32,
        parent: Option<(String, u32)>,
        out: &mut Batch,
        follow_ups: &mut Vec<Command>,
    ) -> Result<Started, ServerError> {
        let checked = checked_module.is_some();
        let module_id = match checked_module {
            Some(module_id) => module_id,
            None => {
                self.types
                    .newest_module(self.store.as_ref(), &request.workflow_type)
                    .await?
            }
        };
        // A continued run replaces a running one; anything else must not overlap it.
        if run_number == 1 {
            let pending_in_batch = out.steps.iter().any(|s| {
                s.create
                    .as_ref()
                    .is_some_and(|r| r.workflow_id == request.workflow_id)
                    && s.close.is_none()
            });
            let running = match self.running_ids.get(&request.workflow_id) {
                Some(run_id) => Some(run_id.clone()),
                None if checked => None,
                None => match self.store.latest_run(&request.workflow_id).await? {
                    Some(r) if r.status == RunStatus::Running => Some(r.run_id),
                    _ => None,
                },
            };
            if let Some(run_id) = running {
                return already_running(request, run_id);
            }
            if pending_in_batch {
                return Err(ServerError::AlreadyRunning {
                    workflow_id: request.workflow_id,
                    run_id: String::new(),
                });
            }
        }
        let module = self.module(&module_id).await?;
        let now = self.clock.now_ms();
        let seed = crate::entropy::random_u64();
        let run_id = format!(
            "{:016x}{:016x}",
            crate::entropy::random_u64(),
            crate::entropy::random_u64()
        );
        let record = RunRecord {
            run_id: run_id.clone(),
            workflow_id: request.workflow_id.clone(),
            workflow_type: request.workflow_type.clone(),
            task_queue: request.task_queue.clone(),
            run_number,
            module_id,
            input: request.input.clone(),
            seed,
            status: RunStatus::Running,
            output: None,
            error: None,
            started_at_ms: now,
            closed_at_ms: None,
            history_length: 0,
            parent,
            owner: Some(self.node.clone()),
            trace_context: request.trace_context.clone(),
        };
        let run = WorkflowRun::start(
            &self.engine,
            &module,
            NewRun {
                workflow_id: request.workflow_id,
                run_id: run_id.clone(),
                workflow_type: request.workflow_type,
                task_queue: request.task_queue,
                run_number,
                input: request.input,
                seed,
            },
            self.options(),
        );
        let mut cached = CachedRun {
            run,
            record: record.clone(),
            seen: 0,
            effects: Effects::new(),
        };
        let mut step = StepWrite {
            run_id: run_id.clone(),
            create: Some(record),
            ..StepWrite::default()
        };
        self.activate(&mut cached, &mut step, follow_ups)?;
        out.steps.push(step);
        // A run that closed in its first activation is not kept: a late delivery to it must
        // find it closed, not step it again (that batch could never commit).
        if cached.record.status == RunStatus::Running {
            self.running_ids
                .insert(cached.record.workflow_id.clone(), run_id.clone());
            self.cache(run_id.clone(), cached);
        }
        Ok(Started {
            run_id,
            existing: false,
        })
    }

    pub(super) async fn deliver(
        &mut self,
        run_id: &str,
        delivery: EventKind,
        done_task: Option<String>,
        done_timer: Option<u32>,
        out: &mut Batch,
        follow_ups: &mut Vec<Command>,
    ) -> Result<(), ServerError> {
        let mut cached = match self.claim(run_id).await? {
            Claim::Mine(cached) => *cached,
            Claim::Elsewhere(owner) => {
                let routed = Routed::Deliver {
                    delivery,
                    done_task,
                    done_timer,
                };
                self.route(out, owner, run_id, &routed);
                return Ok(());
            }
        };
        let mut step = StepWrite {
            run_id: run_id.to_owned(),
            done_tasks: done_task.into_iter().collect(),
            done_timers: done_timer.into_iter().collect(),
            ..StepWrite::default()
        };
        let delivered = cached.run.deliver(delivery);
        let result = match delivered {
            Ok(_) => self.activate(&mut cached, &mut step, follow_ups),
            // A late or duplicate delivery changes nothing but still finishes its row.
            Err(e) => Err(ServerError::Delivery(e.to_string())),
        };
        out.steps.push(step);
        if cached.record.status == RunStatus::Running {
            self.cache(run_id.to_owned(), cached);
        }
        result
    }

    /// Rebuilds a running run from its stored history (the crash path).
    pub(super) async fn rebuild(&mut self, record: RunRecord) -> Result<CachedRun, ServerError> {
        let run_id = record.run_id.as_str();
        let history = self
            .store
            .history(run_id)
            .await?
            .ok_or_else(|| ServerError::UnknownRun(run_id.to_owned()))?;
        let module = self.module(&record.module_id).await?;
        let seen = history.events.len();
        let effects = Effects::after(&history.events);
        let (wall, started) = (std::time::SystemTime::now(), std::time::Instant::now());
        let mut run = WorkflowRun::resume(&self.engine, &module, history, self.options())
            .map_err(|e| ServerError::Internal(e.to_string()))?;
        match run.activate() {
            Ok(Activation::Suspended) => {}
            other => {
                return Err(ServerError::Internal(format!(
                    "run {run_id} did not replay to a wait: {other:?}"
                )));
            }
        }
        crate::telemetry::replayed(&record, wall, started.elapsed(), seen);
        tracing::debug!(run_id, events = seen, "rebuilt run from history");
        Ok(CachedRun {
            run,
            record,
            seen,
            effects,
        })
    }

    /// Ends a running run from outside.
    pub(super) async fn terminate(
        &mut self,
        target: RunRef,
        reason: String,
        out: &mut Batch,
        follow_ups: &mut Vec<Command>,
    ) -> Result<(), ServerError> {
        let (run_id, parent) = self.resolve(target).await?;
        let mut cached = match self.claim(&run_id).await? {
            Claim::Mine(cached) => *cached,
            Claim::Elsewhere(owner) => {
                self.route(out, owner, &run_id, &Routed::Terminate { reason });
                return Ok(());
            }
        };
        if let Some(parent) = parent
            && cached.record.parent.as_ref() != Some(&parent)
        {
            self.cache(run_id.clone(), cached);
            return Err(ServerError::RunClosed(run_id));
        }
        let seen = cached.seen;
        cached
            .run
            .terminate(reason.clone())
            .map_err(|e| ServerError::Delivery(e.to_string()))?;
        let events = cached.run.with_history(|h| h.events[seen..].to_vec());
        cached.seen += events.len();
        let mut step = StepWrite {
            run_id: run_id.clone(),
            ..StepWrite::default()
        };
        // Its children follow their policies; nothing is delivered to a closed run.
        let (_, to_children) = self.follow_effects(&mut cached, &events, &mut step, follow_ups);
        step.events = events;
        let outcome = RunOutcome::Terminated { reason };
        self.close_run(&mut cached, &outcome, &mut step, follow_ups);
        follow_ups.extend(to_children);
        out.steps.push(step);
        Ok(())
    }

    /// Asks a running run to cancel: `RunCancelRequested` completes what it waits on as
    /// cancelled; its activity tasks and timers go, its children are cancelled.
    pub(super) async fn cancel(
        &mut self,
        target: RunRef,
        reason: String,
        out: &mut Batch,
        follow_ups: &mut Vec<Command>,
    ) -> Result<Cancelled, ServerError> {
        let (run_id, parent) = self.resolve(target).await?;
        let mut cached = match self.claim(&run_id).await? {
            Claim::Mine(cached) => *cached,
            Claim::Elsewhere(owner) => {
                self.route(out, owner, &run_id, &Routed::Cancel { reason });
                // The owner decides; from here the request is accepted.
                return Ok(Cancelled {
                    run_id,
                    newly_requested: true,
                });
            }
        };
        if let Some(parent) = parent
            && cached.record.parent.as_ref() != Some(&parent)
        {
            self.cache(run_id.clone(), cached);
            return Err(ServerError::RunClosed(run_id));
        }
        if cached.run.cancel_requested() {
            self.cache(run_id.clone(), cached);
            return Ok(Cancelled {
                run_id,
                newly_requested: false,
            });
        }
        // What it waits on lets go (tasks, timers, children) as the effects of the request.
        let mut step = StepWrite {
            run_id: run_id.clone(),
            ..StepWrite::default()
        };
        let result = match cached.run.deliver(EventKind::RunCancelRequested { reason }) {
            Ok(_) => self.activate(&mut cached, &mut step, follow_ups),
            Err(e) => Err(ServerError::Delivery(e.to_string())),
        };
        out.steps.push(step);
        if cached.record.status == RunStatus::Running {
            self.cache(run_id.clone(), cached);
        }
        result.map(|()| Cancelled {
            run_id,
            newly_requested: true,
        })
    }

    /// Re-pins a run to module `to`: `RunMigrated` is appended, and the run is rebuilt on the
    /// new module from that history at once (so that a later command in this batch steps the
    /// new code), going on live where the new code goes past the recorded history.
    pub(super) async fn migrate(
        &mut self,
        run_id: String,
        from: String,
        to: String,
        vetted_events: u64,
        out: &mut Batch,
        follow_ups: &mut Vec<Command>,
    ) -> Result<Migration, ServerError> {
        let cached = match self.claim(&run_id).await? {
            Claim::Mine(cached) => *cached,
            Claim::Elsewhere(owner) => {
                let routed = Routed::Migrate {
                    from,
                    to,
                    vetted_events,
                };
                self.route(out, owner.clone(), &run_id, &routed);
                return Ok(Migration::Routed { owner });
            }
        };
        let module_id = cached.record.module_id.clone();
        let events = cached.run.with_history(|h| h.events.len() as u64);
        let refused = if module_id != from {
            Some(Migration::Moved { module_id })
        } else if events != vetted_events {
            Some(Migration::HistoryGrew { events })
        } else {
            None
        };
        if let Some(refused) = refused {
            self.cache(run_id, cached);
            return Ok(refused);
        }
        let module = match self.module(&to).await {
            Ok(module) => module,
            Err(e) => {
                self.cache(run_id, cached);
                return Err(e);
            }
        };
        let CachedRun {
            mut run,
            mut record,
            seen,
            effects,
        } = cached;
        let seq = run
            .deliver(EventKind::RunMigrated {
                from,
                to: to.clone(),
            })
            .map_err(|e| ServerError::Delivery(e.to_string()))?;
        let mut history = run.into_history();
        // The stored header names the module the run is pinned to.
        history.header.module_sha256 = to.clone();
        record.module_id = to.clone();
        let run = WorkflowRun::resume(&self.engine, &module, history, self.options())
            .map_err(|e| ServerError::Internal(e.to_string()))?;
        let mut migrated = CachedRun {
            run,
            record,
            seen,
            effects,
        };
        let mut step = StepWrite {
            run_id: run_id.clone(),
            pin_module: Some(to),
            ..StepWrite::default()
        };
        // On failure nothing is cached: the next command rebuilds the run from the store.
        self.activate(&mut migrated, &mut step, follow_ups)?;
        tracing::info!(run_id, module_id = %migrated.record.module_id, event_seq = seq,
            "run migrated");
        out.steps.push(step);
        if migrated.record.status == RunStatus::Running {
            self.cache(run_id, migrated);
        }
        Ok(Migration::Migrated { seq })
    }
}
