//! Where a run's commands are carried out: on this node (cached, rebuilt from its history, or
//! adopted from a node whose lease ran out) or on its live owner, through that node's inbox in
//! the same transaction as the batch. The store's fence keeps one owner per run.

use serde::{Deserialize, Serialize};
use weft_store::{Batch, RoutedCommand, RunStatus};

use super::*;
use crate::ServerError;

/// A command for a run owned by another node, as it travels through that node's inbox.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command")]
pub(super) enum Routed {
    Deliver {
        delivery: EventKind,
        done_task: Option<String>,
        done_timer: Option<u32>,
    },
    Cancel {
        reason: String,
    },
    Terminate {
        reason: String,
    },
    Migrate {
        from: String,
        to: String,
        vetted_events: u64,
    },
}

/// Where a run's commands are carried out.
pub(super) enum Claim {
    Mine(Box<CachedRun>),
    /// The live node that owns the run.
    Elsewhere(String),
}

/// The command that carries out a routed one here.
pub(super) fn routed_command(run_id: String, routed: Routed) -> Command {
    match routed {
        Routed::Deliver {
            delivery,
            done_task,
            done_timer,
        } => Command::Deliver {
            run_id,
            delivery,
            done_task,
            done_timer,
            reply: None,
        },
        Routed::Cancel { reason } => Command::Cancel {
            target: RunRef::Run(run_id),
            reason,
            reply: None,
        },
        Routed::Terminate { reason } => Command::Terminate {
            target: RunRef::Run(run_id),
            reason,
            reply: None,
        },
        Routed::Migrate {
            from,
            to,
            vetted_events,
        } => Command::Migrate {
            run_id,
            from,
            to,
            vetted_events,
            reply: None,
        },
    }
}

impl State {
    /// Where `run_id`'s commands are carried out: here (cached, or rebuilt from history,
    /// adopting it first if its owner is gone) or on its live owner.
    pub(super) async fn claim(&mut self, run_id: &str) -> Result<Claim, ServerError> {
        if let Some(cached) = self.runs.take(run_id) {
            return Ok(Claim::Mine(Box::new(cached)));
        }
        // Closed by the batch being built: the store still says running, and a run rebuilt
        // from it would step again from before the close (a duplicate result routed twice
        // did that, and its batch could never commit; the simulation found it).
        if self.closed_in_batch.iter().any(|(_, c)| c.run_id == run_id) {
            return Err(ServerError::RunClosed(run_id.to_owned()));
        }
        let record = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| ServerError::UnknownRun(run_id.to_owned()))?;
        if record.status != RunStatus::Running {
            return Err(ServerError::RunClosed(run_id.to_owned()));
        }
        let now = self.clock.now_ms();
        match record.owner.as_deref() {
            Some(owner) if owner == self.node => {}
            Some(owner) if self.store.node_alive(owner, now).await? => {
                return Ok(Claim::Elsewhere(owner.to_owned()));
            }
            _ => {
                if !self.store.adopt_run(run_id, &self.node, now).await? {
                    // Another node adopted it first.
                    let owner = self
                        .store
                        .run(run_id)
                        .await?
                        .and_then(|r| r.owner)
                        .ok_or_else(|| ServerError::RunClosed(run_id.to_owned()))?;
                    return Ok(Claim::Elsewhere(owner));
                }
                tracing::info!(run_id, node = %self.node, "adopted a run whose owner is gone");
            }
        }
        Ok(Claim::Mine(Box::new(self.rebuild(record).await?)))
    }

    /// Puts `command` for `run_id` in `owner`'s inbox, with this batch.
    pub(super) fn route(&self, out: &mut Batch, owner: String, run_id: &str, command: &Routed) {
        tracing::debug!(run_id, owner = %owner, "routing a command to the run's owner");
        out.routed.push(RoutedCommand {
            owner,
            run_id: run_id.to_owned(),
            // Serializing these plain enums cannot fail.
            command: serde_json::to_string(command).unwrap_or_default(),
            created_at_ms: self.clock.now_ms(),
        });
    }

    /// The run a command is for (a run id as given, a workflow id's running run), and for a
    /// child the parent link its run must have, checked once the run is claimed.
    pub(super) async fn resolve(
        &mut self,
        target: RunRef,
    ) -> Result<(String, Option<(String, u32)>), ServerError> {
        match target {
            RunRef::Run(run_id) => Ok((run_id, None)),
            RunRef::Workflow(workflow_id) => match self.store.latest_run(&workflow_id).await? {
                Some(r) if r.status == RunStatus::Running => Ok((r.run_id, None)),
                Some(r) => Err(ServerError::RunClosed(r.run_id)),
                None => Err(ServerError::UnknownWorkflow(workflow_id)),
            },
            RunRef::Child {
                workflow_id,
                parent_run,
                handle,
            } => {
                let parent = Some((parent_run, handle));
                // A child started in the batch being built is not in the store yet.
                if let Some(run_id) = self.running_ids.get(&workflow_id) {
                    return Ok((run_id.clone(), parent));
                }
                match self.store.latest_run(&workflow_id).await? {
                    Some(r) if r.status == RunStatus::Running && r.parent == parent => {
                        Ok((r.run_id, parent))
                    }
                    Some(r) => Err(ServerError::RunClosed(r.run_id)),
                    None => Err(ServerError::UnknownWorkflow(workflow_id)),
                }
            }
        }
    }
}
