//! After an activation: the run's new events become rows of the batch (tasks, timers, the
//! close) and follow-up commands (children to start, cancel or terminate, deliveries to the
//! run itself), as `weft_history::Effects` says each event means.

use weft_engine::weft_history::{Completion, Effect, ErrorInfo, Event, EventKind, Failure};
use weft_engine::{Activation, RunOutcome};
use weft_store::{NewTask, RunClose, RunStatus, StepWrite, TimerRecord};

use super::*;
use crate::ServerError;

/// Turns a terminal outcome into the run's close.
fn close_of(outcome: &RunOutcome, now_ms: u64) -> RunClose {
    let (status, output, error) = match outcome {
        RunOutcome::Completed(p) => (RunStatus::Completed, Some(p.clone()), None),
        RunOutcome::Failed(e) => (RunStatus::Failed, None, Some(e.clone())),
        RunOutcome::ContinuedAsNew(_) => (RunStatus::ContinuedAsNew, None, None),
        // The reason is the error, so that results and descriptions say why the run ended.
        RunOutcome::Terminated { reason } => (
            RunStatus::Terminated,
            None,
            Some(ErrorInfo::new("Terminated", reason.clone())),
        ),
    };
    RunClose {
        status,
        output,
        error,
        closed_at_ms: now_ms,
    }
}

impl State {
    /// Activates the run and turns its new events into side effects.
    pub(super) fn activate(
        &mut self,
        cached: &mut CachedRun,
        step: &mut StepWrite,
        follow_ups: &mut Vec<Command>,
    ) -> Result<(), ServerError> {
        let (wall, started) = (std::time::SystemTime::now(), std::time::Instant::now());
        let activation = cached.run.activate();
        let elapsed = started.elapsed();
        let activation = match activation {
            Ok(activation) => activation,
            Err(e) => {
                let error = format!("run {}: {e}", cached.record.run_id);
                crate::telemetry::activated(&cached.record, wall, elapsed, 0, Some(error.clone()));
                return Err(ServerError::Internal(error));
            }
        };
        let events: Vec<Event> = cached
            .run
            .with_history(|h| h.events[cached.seen..].to_vec());
        crate::telemetry::activated(&cached.record, wall, elapsed, events.len(), None);
        cached.seen += events.len();
        let (deliveries, to_children) = self.follow_effects(cached, &events, step, follow_ups);
        if let Activation::Finished(outcome) = activation {
            self.close_run(cached, &outcome, step, follow_ups);
        }
        // Handles that only the outside can complete (cancelled activities and children)
        // complete in this batch, after the step that cancelled them.
        if cached.record.status == RunStatus::Running {
            for delivery in deliveries {
                follow_ups.push(Command::Deliver {
                    run_id: cached.record.run_id.clone(),
                    delivery,
                    done_task: None,
                    done_timer: None,
                    reply: None,
                });
            }
        }
        // A child asked to cancel may close in this same batch: its result must find the
        // handle completed as cancelled already.
        follow_ups.extend(to_children);
        step.events.extend(events);
        Ok(())
    }

    /// Carries out what `events` (the run's new events, in order) ask of the world: tasks,
    /// timers and child starts into `step` and `follow_ups`. Returned, to follow the step in
    /// that order: the deliveries to the run itself, then the cancels and terminations of
    /// its children.
    pub(super) fn follow_effects(
        &mut self,
        cached: &mut CachedRun,
        events: &[Event],
        step: &mut StepWrite,
        follow_ups: &mut Vec<Command>,
    ) -> (Vec<EventKind>, Vec<Command>) {
        let record = &cached.record;
        let mut deliveries = Vec::new();
        let mut to_children = Vec::new();
        for event in events {
            for effect in cached.effects.next(event) {
                match effect {
                    Effect::ScheduleActivity {
                        handle,
                        name,
                        input,
                        options,
                        scheduled_at_ms,
                    } => {
                        let mut task = NewTask {
                            handle,
                            workflow_id: record.workflow_id.clone(),
                            task_queue: options
                                .task_queue
                                .clone()
                                .unwrap_or_else(|| record.task_queue.clone()),
                            activity_name: name,
                            input,
                            options,
                            scheduled_at_ms,
                            trace_context: crate::telemetry::child_trace_context(record),
                            claim: None,
                        };
                        task.claim = self.match_task(&task, &record.run_id);
                        step.new_tasks.push(task);
                    }
                    // Rows are inserted before deletes, so a task of this same step goes too.
                    Effect::DropTask { handle } => step
                        .done_tasks
                        .push(crate::activity_policy::task_id(&record.run_id, handle)),
                    Effect::StartTimer { handle, fire_at_ms } => {
                        step.new_timers.push(TimerRecord {
                            run_id: record.run_id.clone(),
                            handle,
                            fire_at_ms,
                        })
                    }
                    Effect::DropTimer { handle } => step.done_timers.push(handle),
                    Effect::StartChild {
                        handle,
                        workflow_type,
                        workflow_id,
                        task_queue,
                        input,
                    } => follow_ups.push(Command::StartInternal(Box::new(InternalStart {
                        request: StartRequest {
                            workflow_type,
                            workflow_id,
                            input,
                            task_queue: task_queue.unwrap_or_else(|| record.task_queue.clone()),
                            return_existing: false,
                            trace_context: crate::telemetry::child_trace_context(record),
                        },
                        run_number: 1,
                        parent: Some((record.run_id.clone(), handle)),
                    }))),
                    Effect::CancelChild {
                        handle,
                        workflow_id,
                        why,
                    } => to_children.push(Command::Cancel {
                        target: RunRef::Child {
                            workflow_id,
                            parent_run: record.run_id.clone(),
                            handle,
                        },
                        reason: why.reason(&record.workflow_id),
                        reply: None,
                    }),
                    Effect::TerminateChild {
                        handle,
                        workflow_id,
                    } => to_children.push(Command::Terminate {
                        target: RunRef::Child {
                            workflow_id,
                            parent_run: record.run_id.clone(),
                            handle,
                        },
                        reason: weft_engine::weft_history::terminated_by_parent(
                            &record.workflow_id,
                        ),
                        reply: None,
                    }),
                    Effect::Deliver { delivery } => deliveries.push(delivery),
                }
            }
        }
        (deliveries, to_children)
    }

    /// Records a run's close in `step` and what follows from it: the next run of a
    /// continue-as-new, the parent's completion of a child.
    pub(super) fn close_run(
        &mut self,
        cached: &mut CachedRun,
        outcome: &RunOutcome,
        step: &mut StepWrite,
        follow_ups: &mut Vec<Command>,
    ) {
        let record = cached.record.clone();
        let mut close = close_of(outcome, self.clock.now_ms());
        if close.status == RunStatus::Failed
            && close.error.as_ref().is_some_and(|e| e.kind == "Cancelled")
            && cached.run.cancel_requested()
        {
            close.status = RunStatus::Cancelled;
        }
        cached.record.status = close.status;
        self.closed_in_batch.push((
            record.workflow_id.clone(),
            ClosedRun {
                run_id: record.run_id.clone(),
                close: close.clone(),
            },
        ));
        if self.running_ids.get(&record.workflow_id) == Some(&record.run_id) {
            self.running_ids.remove(&record.workflow_id);
        }
        self.closed_records.push((record.clone(), close.clone()));
        step.close = Some(close);
        let completion = match outcome {
            RunOutcome::ContinuedAsNew(input) => {
                follow_ups.push(Command::StartInternal(Box::new(InternalStart {
                    request: StartRequest {
                        workflow_type: record.workflow_type.clone(),
                        workflow_id: record.workflow_id.clone(),
                        input: input.clone(),
                        task_queue: record.task_queue.clone(),
                        return_existing: false,
                        trace_context: crate::telemetry::child_trace_context(&record),
                    },
                    run_number: record.run_number + 1,
                    parent: record.parent.clone(),
                })));
                return;
            }
            RunOutcome::Completed(p) => Completion::Ok(p.clone()),
            RunOutcome::Failed(e) => Completion::Err(Failure::ChildFailed(ErrorInfo {
                attempts: 1,
                ..e.clone()
            })),
            RunOutcome::Terminated { .. } => Completion::Err(Failure::ChildFailed(ErrorInfo::new(
                "Terminated",
                format!("child workflow `{}` was terminated", record.workflow_id),
            ))),
        };
        if let Some((parent_run, handle)) = &record.parent {
            follow_ups.push(Command::Deliver {
                run_id: parent_run.clone(),
                delivery: EventKind::ChildWorkflowCompleted {
                    handle: *handle,
                    completion,
                },
                done_task: None,
                done_timer: None,
                reply: None,
            });
        }
    }
}
