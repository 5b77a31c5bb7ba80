//! Sync match: a task created for a queue whose poller waits right now is claimed for that
//! poller in the batch that creates it, and handed over once the batch commits.

use weft_store::{Batch, NewTask, TaskClaim, TaskRecord};

use super::*;
use crate::pollers::WaitingPoller;

/// Tasks of one batch promised to one waiting poller, sent once the batch commits.
pub(super) struct Handoff {
    pub(super) poller: WaitingPoller,
    pub(super) queue: String,
    pub(super) tasks: Vec<TaskRecord>,
}

impl State {
    /// Claims `task` for a poller of its queue that is waiting now, if there is one: the
    /// claim is written with the task, and the task handed over when the batch commits.
    pub(super) fn match_task(&mut self, task: &NewTask, run_id: &str) -> Option<TaskClaim> {
        let index = match self
            .handoffs
            .iter()
            .position(|h| h.queue == task.task_queue && h.tasks.len() < h.poller.max)
        {
            Some(index) => index,
            None => {
                let poller = self.queues.take_poller(&task.task_queue)?;
                self.handoffs.push(Handoff {
                    poller,
                    queue: task.task_queue.clone(),
                    tasks: Vec::new(),
                });
                self.handoffs.len() - 1
            }
        };
        let now = self.clock.now_ms();
        let lease = crate::activity_policy::attempt_lease(&task.options);
        let handoff = &mut self.handoffs[index];
        let claim = TaskClaim {
            secret: handoff.poller.secret.clone(),
            claimed_at_ms: now,
            lease_until_ms: now.saturating_add(lease),
        };
        handoff.tasks.push(TaskRecord {
            task_id: crate::activity_policy::task_id(run_id, task.handle),
            run_id: run_id.to_owned(),
            workflow_id: task.workflow_id.clone(),
            handle: task.handle,
            task_queue: task.task_queue.clone(),
            activity_name: task.activity_name.clone(),
            input: task.input.clone(),
            options: task.options.clone(),
            attempt: 1,
            scheduled_at_ms: task.scheduled_at_ms,
            lease_until_ms: Some(claim.lease_until_ms),
            heartbeat_details: None,
            claimed_at_ms: Some(now),
            last_heartbeat_ms: None,
            last_error: None,
            trace_context: task.trace_context.clone(),
            claim_secret: Some(claim.secret.clone()),
        });
        Some(claim)
    }

    /// Gives back in-memory claims (attempt 1, `secret`) that no worker will see; where the
    /// row was never written this changes nothing.
    pub(super) async fn release_claims(store: &dyn Store, tasks: &[TaskRecord], secret: &str) {
        for task in tasks {
            if let Err(error) = store.release_task(&task.task_id, 1, secret).await {
                tracing::warn!(task_id = %task.task_id, %error,
                    "cannot release a claim; the task goes back when its lease runs out");
            }
        }
    }

    /// Sends the committed batch's claimed tasks to their pollers. A task the same batch
    /// finished (cancelled) is left out; one whose poller went away meanwhile is released
    /// to the queue, attempt unchanged.
    pub(super) async fn hand_over(&mut self, out: &Batch) {
        if self.handoffs.is_empty() {
            return;
        }
        let done: std::collections::HashSet<&str> = out
            .steps
            .iter()
            .flat_map(|s| s.done_tasks.iter().map(String::as_str))
            .collect();
        // A run closed in this batch took its tasks' rows with it.
        let closed: std::collections::HashSet<&str> = out
            .steps
            .iter()
            .filter(|s| s.close.is_some())
            .map(|s| s.run_id.as_str())
            .collect();
        // Only what was written: a step dropped after its tasks were matched wrote none.
        let written: std::collections::HashSet<String> = out
            .steps
            .iter()
            .flat_map(|s| {
                s.new_tasks
                    .iter()
                    .filter(|t| t.claim.is_some())
                    .map(|t| crate::activity_policy::task_id(&s.run_id, t.handle))
            })
            .collect();
        for mut handoff in std::mem::take(&mut self.handoffs) {
            handoff.tasks.retain(|t| {
                written.contains(&t.task_id)
                    && !done.contains(t.task_id.as_str())
                    && !closed.contains(t.run_id.as_str())
            });
            let secret = handoff.poller.secret.clone();
            let n = handoff.tasks.len();
            match handoff.poller.tx.send(handoff.tasks) {
                Ok(()) => crate::telemetry::matched_in_memory(&handoff.queue, n),
                Err(tasks) => {
                    tracing::debug!(tasks = tasks.len(), "poller gone; releasing its claims");
                    let store = self.store.clone();
                    Self::release_claims(store.as_ref(), &tasks, &secret).await;
                    self.queues.get(&handoff.queue).notify_waiters();
                }
            }
        }
    }
}
