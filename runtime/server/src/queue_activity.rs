//! What this node saw of its task queues: which workers polled when, and the outcome of each
//! activity attempt per activity name. Kept in memory (it is for watching, not for recovery),
//! so with several nodes each one reports the workers and outcomes it served itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// How long a worker that stopped polling is still listed.
pub const WORKER_SEEN_WINDOW_MS: u64 = 60_000;

/// Counts of one activity name's attempt outcomes on one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub completed: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub last_at_ms: u64,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed,
    TimedOut,
}

/// One queue as this node saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueView {
    /// Worker id -> its last poll, for workers seen within [`WORKER_SEEN_WINDOW_MS`].
    pub workers: BTreeMap<String, u64>,
    /// Activity name -> outcomes.
    pub activities: BTreeMap<String, Outcomes>,
}

#[derive(Default)]
pub struct QueueActivity {
    queues: Mutex<HashMap<String, QueueView>>,
}

impl QueueActivity {
    /// A worker polled `queue` at `now_ms`.
    pub fn polled(&self, queue: &str, worker_id: &str, now_ms: u64) {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let view = queues.entry(queue.to_owned()).or_default();
        // Polls are frequent: only allocate for a worker not seen before.
        match view.workers.get_mut(worker_id) {
            Some(last) => *last = now_ms,
            None => {
                view.workers.insert(worker_id.to_owned(), now_ms);
            }
        }
    }

    /// An attempt of `activity` on `queue` ended.
    pub fn attempt_ended(&self, queue: &str, activity: &str, outcome: Outcome, now_ms: u64) {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let view = queues.entry(queue.to_owned()).or_default();
        let counts = match view.activities.get_mut(activity) {
            Some(c) => c,
            None => view.activities.entry(activity.to_owned()).or_default(),
        };
        match outcome {
            Outcome::Completed => counts.completed += 1,
            Outcome::Failed => counts.failed += 1,
            Outcome::TimedOut => counts.timed_out += 1,
        }
        counts.last_at_ms = now_ms;
    }

    /// Every queue seen, with workers that polled within the window before `now_ms`.
    pub fn snapshot(&self, now_ms: u64) -> BTreeMap<String, QueueView> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues
            .iter_mut()
            .map(|(name, view)| {
                view.workers
                    .retain(|_, last| now_ms.saturating_sub(*last) <= WORKER_SEEN_WINDOW_MS);
                (name.clone(), view.clone())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_age_out_and_outcomes_add_up() {
        let seen = QueueActivity::default();
        seen.polled("q", "w1", 1_000);
        seen.polled("q", "w2", 50_000);
        seen.attempt_ended("q", "greet", Outcome::Completed, 2_000);
        seen.attempt_ended("q", "greet", Outcome::Failed, 3_000);
        seen.attempt_ended("q", "greet", Outcome::TimedOut, 4_000);
        let view = &seen.snapshot(70_000)["q"];
        assert_eq!(view.workers.keys().collect::<Vec<_>>(), ["w2"]);
        assert_eq!(
            view.activities["greet"],
            Outcomes {
                completed: 1,
                failed: 1,
                timed_out: 1,
                last_at_ms: 4_000
            }
        );
    }
}
