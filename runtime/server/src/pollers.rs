//! The pollers of this node's task queues: woken when tasks are added, and those waiting right
//! now, to whom the executor hands new tasks straight from the batch that creates them (sync
//! match: no claim transaction, no second read).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::{Notify, oneshot};
use weft_store::TaskRecord;

/// The pollers of this node's task queues, by queue.
#[derive(Default)]
pub struct Pollers {
    queues: std::sync::Mutex<HashMap<String, Arc<Notify>>>,
    waiting: std::sync::Mutex<HashMap<String, VecDeque<WaitingPoller>>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// A poll that found its queue empty and waits for the next task.
pub(crate) struct WaitingPoller {
    pub(crate) id: u64,
    pub(crate) max: usize,
    pub(crate) secret: String,
    pub(crate) tx: oneshot::Sender<Vec<TaskRecord>>,
}

impl Pollers {
    /// The notifier of `queue`.
    pub fn get(&self, queue: &str) -> Arc<Notify> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.entry(queue.to_owned()).or_default().clone()
    }

    /// Registers a poll waiting on `queue` for up to `max` tasks, claimed with `secret`:
    /// its id, and where the tasks will come.
    pub fn wait_for_tasks(
        &self,
        queue: &str,
        max: usize,
        secret: String,
    ) -> (u64, oneshot::Receiver<Vec<TaskRecord>>) {
        let (tx, rx) = oneshot::channel();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock_waiting()
            .entry(queue.to_owned())
            .or_default()
            .push_back(WaitingPoller {
                id,
                max: max.max(1),
                secret,
                tx,
            });
        (id, rx)
    }

    /// Withdraws a waiting poll; false if the executor already took it (its tasks are on the
    /// way, or it will be dropped if their batch fails).
    pub fn stop_waiting(&self, queue: &str, id: u64) -> bool {
        let mut waiting = self.lock_waiting();
        let Some(pollers) = waiting.get_mut(queue) else {
            return false;
        };
        let before = pollers.len();
        pollers.retain(|p| p.id != id);
        let removed = pollers.len() < before;
        if pollers.is_empty() {
            waiting.remove(queue);
        }
        removed
    }

    /// The longest-waiting live poller of `queue`.
    pub(crate) fn take_poller(&self, queue: &str) -> Option<WaitingPoller> {
        let mut waiting = self.lock_waiting();
        let pollers = waiting.get_mut(queue)?;
        // A poll whose caller went away leaves a closed channel behind.
        let found = std::iter::from_fn(|| pollers.pop_front()).find(|p| !p.tx.is_closed());
        if pollers.is_empty() {
            waiting.remove(queue);
        }
        found
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<WaitingPoller>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}
