//! Who waits for which run to close: `GetWorkflowResult` calls, woken by the executor once a
//! close is durable.

use std::collections::HashMap;
use std::sync::Arc;

use weft_store::RunClose;

/// A run that closed, as its waiters are told.
#[derive(Clone, Debug)]
pub struct ClosedRun {
    pub run_id: String,
    pub close: RunClose,
}

type CloseWatch = tokio::sync::watch::Sender<Option<Arc<ClosedRun>>>;

/// Tells the `GetWorkflowResult` calls waiting on a workflow id how its run closed: one
/// channel per watched id, so a close wakes only its own waiters, with the result in hand.
/// It also knows the runs this node started whose close it has not seen, so that a call
/// waiting on one needs no read to learn it is running.
#[derive(Default)]
pub struct CloseWaiters {
    watched: std::sync::Mutex<HashMap<String, CloseWatch>>,
    /// Workflow id -> run id, from the commit that created the run to the one that closes it
    /// (or until this node stops owning its runs).
    running: std::sync::Mutex<HashMap<String, String>>,
}

impl CloseWaiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CloseWatch>> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Receives the next close of a run of `workflow_id` (once it is durable).
    pub fn watch(&self, workflow_id: &str) -> tokio::sync::watch::Receiver<Option<Arc<ClosedRun>>> {
        self.lock()
            .entry(workflow_id.to_owned())
            .or_insert_with(|| tokio::sync::watch::channel(None).0)
            .subscribe()
    }

    /// Forgets `workflow_id` if nobody watches it any more.
    pub fn unwatch(&self, workflow_id: &str) {
        let mut watched = self.lock();
        if watched
            .get(workflow_id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            watched.remove(workflow_id);
        }
    }

    /// The run of `workflow_id` this node started and has not seen close, if any. Only a
    /// hint: the caller watches first, and reads the store now and then all the same (another
    /// node may have taken the run over).
    pub fn running_here(&self, workflow_id: &str) -> Option<String> {
        self.lock_running().get(workflow_id).cloned()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn started(&self, workflow_id: &str, run_id: &str) {
        self.lock_running()
            .insert(workflow_id.to_owned(), run_id.to_owned());
    }

    pub(crate) fn forget_running(&self) {
        self.lock_running().clear();
    }

    pub(crate) fn closed(&self, workflow_id: &str, closed: ClosedRun) {
        {
            let mut running = self.lock_running();
            if running.get(workflow_id) == Some(&closed.run_id) {
                running.remove(workflow_id);
            }
        }
        if let Some(tx) = self.lock().remove(workflow_id) {
            // No receivers left is fine.
            let _ = tx.send(Some(Arc::new(closed)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_store::RunStatus;

    fn closed(run_id: &str, status: RunStatus) -> ClosedRun {
        ClosedRun {
            run_id: run_id.into(),
            close: RunClose {
                status,
                output: None,
                error: None,
                closed_at_ms: 1,
            },
        }
    }

    #[test]
    fn a_run_is_running_here_from_its_start_to_its_own_close() {
        let waiters = CloseWaiters::default();
        assert_eq!(waiters.running_here("wf"), None);
        waiters.started("wf", "r1");
        assert_eq!(waiters.running_here("wf").as_deref(), Some("r1"));
        // Continued as new: the next run is announced first; the old one's close leaves it.
        waiters.started("wf", "r2");
        waiters.closed("wf", closed("r1", RunStatus::ContinuedAsNew));
        assert_eq!(waiters.running_here("wf").as_deref(), Some("r2"));
        let watch = waiters.watch("wf");
        waiters.closed("wf", closed("r2", RunStatus::Completed));
        assert_eq!(waiters.running_here("wf"), None);
        let heard = watch.borrow().as_ref().map(|c| c.run_id.clone());
        assert_eq!(heard.as_deref(), Some("r2"), "a watcher hears the close");
        waiters.started("other", "r3");
        waiters.forget_running();
        assert_eq!(waiters.running_here("other"), None);
    }
}
