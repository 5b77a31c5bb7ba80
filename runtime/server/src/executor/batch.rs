//! One batch: take each command in turn, apply it (its follow-ups go next, in the same batch),
//! commit everything in one transaction, and only then answer the callers and hand tasks over.

use std::collections::VecDeque;

use weft_store::{Batch, StoreError};

use super::*;
use crate::ServerError;
use ownership::{Routed, routed_command};

/// The answer to one command, sent once the batch is durable.
pub(super) enum Reply {
    Start(Answer<Started>, Result<Started, ServerError>),
    Deliver(Answer<()>, Result<(), ServerError>),
    Cancel(Answer<Cancelled>, Result<Cancelled, ServerError>),
    Migrate(Answer<Migration>, Result<Migration, ServerError>),
    None,
}

/// Sends `result` to the caller, if the command has one.
fn answer<T>(tx: Answer<T>, result: Result<T, ServerError>) {
    if let Some(tx) = tx {
        // A caller that went away is fine: the command was carried out all the same.
        let _ = tx.send(result);
    }
}

impl Reply {
    /// Answers the caller with what its command came to (the batch is durable).
    fn send(self) {
        match self {
            Reply::Start(tx, result) => answer(tx, result),
            Reply::Deliver(tx, result) => answer(tx, result),
            Reply::Cancel(tx, result) => answer(tx, result),
            Reply::Migrate(tx, result) => answer(tx, result),
            Reply::None => {}
        }
    }

    /// Answers the caller that its command was not carried out: the batch failed.
    fn fail(self, error: &BatchFailed, message: &str) {
        let storage = || ServerError::Storage(message.to_owned());
        match self {
            Reply::Start(tx, _) => answer(tx, Err(commit_error(error, message))),
            Reply::Deliver(tx, _) => answer(tx, Err(storage())),
            Reply::Cancel(tx, _) => answer(tx, Err(storage())),
            Reply::Migrate(tx, _) => answer(tx, Err(storage())),
            Reply::None => {}
        }
    }

    /// A failure for want of the database that no caller will see: the command came from
    /// the inbox or from another run's step (a child's result), and nobody would try it
    /// again. The batch must fail instead, so that the inbox keeps it and the step that
    /// caused it is redone (an inbox cancel was lost this way; the simulation found it).
    fn unseen_failure(&self) -> Option<ServerError> {
        let (internal, error) = match self {
            Reply::Start(tx, Err(e)) => (tx.is_none(), e),
            Reply::Deliver(tx, Err(e)) => (tx.is_none(), e),
            Reply::Cancel(tx, Err(e)) => (tx.is_none(), e),
            Reply::Migrate(tx, Err(e)) => (tx.is_none(), e),
            _ => return None,
        };
        match error {
            ServerError::Storage(message) if internal => {
                Some(ServerError::Storage(message.clone()))
            }
            _ => None,
        }
    }
}

impl State {
    pub(super) async fn process_batch(&mut self, mut queue: VecDeque<Command>) {
        let mut out = Batch {
            node: self.node.clone(),
            ..Batch::default()
        };
        let mut replies = Vec::new();
        // Set when the batch must not commit: a child or continued run that could not be
        // started for want of the database, whose parent's step is in this batch.
        let mut abort: Option<ServerError> = None;
        while let Some(command) = queue.pop_front() {
            let mut follow_ups = Vec::new();
            let reply = match command {
                Command::Start {
                    request,
                    module_id,
                    reply,
                } => {
                    let result = self
                        .start(request, Some(module_id), 1, None, &mut out, &mut follow_ups)
                        .await;
                    Reply::Start(reply, result)
                }
                Command::StartInternal(internal) => {
                    let InternalStart {
                        request,
                        run_number,
                        parent,
                    } = *internal;
                    match self
                        .start(request, None, run_number, parent, &mut out, &mut follow_ups)
                        .await
                    {
                        Ok(_) => {}
                        // The step that asked for it must not commit without it (the parent
                        // would wait for a child that never starts; the simulation found
                        // it): the whole batch fails and its commands are tried again.
                        Err(e @ ServerError::Storage(_)) => abort = Some(e),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start a child or continued run");
                        }
                    }
                    Reply::None
                }
                Command::Deliver {
                    run_id,
                    delivery,
                    done_task,
                    done_timer,
                    reply,
                } => {
                    let result = self
                        .deliver(
                            &run_id,
                            delivery,
                            done_task,
                            done_timer,
                            &mut out,
                            &mut follow_ups,
                        )
                        .await;
                    Reply::Deliver(reply, result)
                }
                Command::Terminate {
                    target,
                    reason,
                    reply,
                } => {
                    let result = self
                        .terminate(target, reason, &mut out, &mut follow_ups)
                        .await;
                    Reply::Deliver(reply, result)
                }
                Command::Cancel {
                    target,
                    reason,
                    reply,
                } => {
                    let result = self.cancel(target, reason, &mut out, &mut follow_ups).await;
                    Reply::Cancel(reply, result)
                }
                Command::Migrate {
                    run_id,
                    from,
                    to,
                    vetted_events,
                    reply,
                } => {
                    let result = self
                        .migrate(run_id, from, to, vetted_events, &mut out, &mut follow_ups)
                        .await;
                    if let Err(error) = &result {
                        tracing::warn!(%error, "migration refused");
                    }
                    Reply::Migrate(reply, result)
                }
                Command::FromInbox { item, reply } => {
                    // Consumed whatever comes of it: a delivery the run refuses (late,
                    // duplicate) would be refused again.
                    out.inbox_done.push(item.id);
                    match serde_json::from_str::<Routed>(&item.command) {
                        Ok(routed) => follow_ups.push(routed_command(item.run_id, routed)),
                        Err(error) => {
                            tracing::error!(run_id = %item.run_id, inbox_id = item.id, %error,
                                "unreadable inbox command dropped");
                        }
                    }
                    Reply::Deliver(reply, Ok(()))
                }
                Command::ForgetRuns => {
                    tracing::warn!(node = %self.node, cached = self.runs.len(),
                        "this node's lease lapsed; dropping its cached runs");
                    self.runs.clear();
                    self.running_ids.clear();
                    self.claims.clear();
                    self.waiters.forget_running();
                    Reply::None
                }
            };
            if abort.is_none()
                && let Some(error) = reply.unseen_failure()
            {
                abort = Some(error);
            }
            replies.push(reply);
            // Follow-ups go next, in this same batch and transaction.
            for f in follow_ups.into_iter().rev() {
                queue.push_front(f);
            }
        }
        self.evict();
        let committed = if let Some(error) = abort {
            Err(BatchFailed::Aborted(error))
        } else if out.is_empty() {
            Ok(())
        } else {
            let started = std::time::Instant::now();
            let committed = self.store.commit(&out).await;
            crate::telemetry::committed(out.steps.len(), started.elapsed());
            committed.map_err(BatchFailed::Commit)
        };
        match committed {
            Ok(()) => {
                // Starts before closes: a run created and closed in one batch is not left
                // running.
                for step in &out.steps {
                    if let Some(created) = &step.create {
                        self.waiters.started(&created.workflow_id, &created.run_id);
                        crate::telemetry::run_started(created);
                    }
                }
                for (workflow_id, closed) in self.closed_in_batch.drain(..) {
                    self.waiters.closed(&workflow_id, closed);
                }
                for (record, close) in self.closed_records.drain(..) {
                    crate::telemetry::run_closed(&record, &close);
                }
                // Tasks no waiting poller took: wake the pollers to claim them from the store.
                for step in &out.steps {
                    for task in step.new_tasks.iter().filter(|t| t.claim.is_none()) {
                        self.queues.get(&task.task_queue).notify_waiters();
                    }
                }
                self.claims.finished(&out.steps);
                self.hand_over(&out).await;
                for reply in replies {
                    reply.send();
                }
            }
            Err(error) => {
                tracing::error!(%error, steps = out.steps.len(), "batch commit failed; evicting its runs");
                // Their pollers see the channel close and look in the store again. A commit
                // that failed in its reply may still have written the claimed tasks: release
                // those claims (a no-op where nothing was written) so that they do not wait
                // out their leases.
                for handoff in std::mem::take(&mut self.handoffs) {
                    let store = self.store.clone();
                    Self::release_claims(store.as_ref(), &handoff.tasks, &handoff.poller.secret)
                        .await;
                }
                self.closed_in_batch.clear();
                self.closed_records.clear();
                if matches!(error, BatchFailed::Commit(StoreError::NotOwner { .. })) {
                    // Other runs of this node may have been adopted too.
                    self.runs.clear();
                    self.running_ids.clear();
                    self.claims.clear();
                    self.waiters.forget_running();
                }
                for step in &out.steps {
                    self.runs.take(&step.run_id);
                    if let Some(created) = &step.create
                        && self.running_ids.get(&created.workflow_id) == Some(&created.run_id)
                    {
                        self.running_ids.remove(&created.workflow_id);
                    }
                }
                let message = error.to_string();
                for reply in replies {
                    reply.fail(&error, &message);
                }
            }
        }
    }
}

/// Why a batch did not commit.
#[derive(Debug, thiserror::Error)]
enum BatchFailed {
    #[error(transparent)]
    Commit(StoreError),
    #[error("not committed: {0}")]
    Aborted(ServerError),
}

fn commit_error(error: &BatchFailed, message: &str) -> ServerError {
    match error {
        BatchFailed::Commit(StoreError::AlreadyRunning {
            workflow_id,
            run_id,
        }) => ServerError::AlreadyRunning {
            workflow_id: workflow_id.clone(),
            run_id: run_id.clone(),
        },
        _ => ServerError::Storage(message.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_command_without_a_caller_fails_its_batch_for_want_of_the_database() {
        let storage = || ServerError::Storage("disk on fire".into());
        assert!(
            Reply::Deliver(None, Err(storage()))
                .unseen_failure()
                .is_some()
        );
        // A caller that hung up is still a caller: it is told, and may try again.
        let (tx, rx) = tokio::sync::oneshot::channel();
        drop(rx);
        assert!(
            Reply::Deliver(Some(tx), Err(storage()))
                .unseen_failure()
                .is_none()
        );
        let (tx, _rx) = tokio::sync::oneshot::channel();
        assert!(
            Reply::Cancel(Some(tx), Err(storage()))
                .unseen_failure()
                .is_none()
        );
        assert!(
            Reply::Deliver(None, Err(ServerError::RunClosed("r".into())))
                .unseen_failure()
                .is_none()
        );
    }
}
