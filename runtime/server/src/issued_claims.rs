//! The task claims this node handed to its workers, remembered until the attempt is
//! reported, ends otherwise, or comes near the end of its lease: a completion that brings one
//! of these tokens is checked here, without reading its task from the store.
//!
//! Why that is the same check as the read: a task row changes under a live claim only
//! through this node (a step of a run it owns finishes or cancels the task, a worker fails
//! or hands back the attempt, both of which come here) or when the lease runs out (the
//! sweeper retries the task). So an entry is dropped when a committed batch finishes its task
//! or closes its run, when its attempt fails, when the node stops owning its runs, and is not
//! trusted within [`LEASE_MARGIN_MS`] of its lease's end (the lease a heartbeat extends only
//! grows, so the one remembered is never later than the stored one). Anything else falls
//! back to the read.

use std::collections::HashMap;
use std::sync::Mutex;

use weft_store::{StepWrite, TaskRecord};

/// How close to the end of its lease a remembered claim stops being trusted: covers the
/// clocks of the nodes whose sweepers may retry the task.
pub const LEASE_MARGIN_MS: u64 = 1_000;

/// Entries kept at most; past that, those whose lease has run out go, then all.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct IssuedClaims {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Run id -> task id -> the task as it was handed out.
    by_run: HashMap<String, HashMap<String, TaskRecord>>,
    len: usize,
}

impl IssuedClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers the claims of `tasks`, just handed to a worker (each with its secret and
    /// lease; any without is left out). Their input may be gone: a completion needs only
    /// the task's identity, queue, attempt and claim.
    pub fn issued(&self, tasks: Vec<TaskRecord>, now_ms: u64) {
        let mut entries = self.lock();
        if entries.len + tasks.len() > MAX_ENTRIES {
            entries.prune(now_ms);
        }
        for task in tasks {
            if task.claim_secret.is_none() || task.lease_until_ms.is_none() {
                continue;
            }
            let previous = entries
                .by_run
                .entry(task.run_id.clone())
                .or_default()
                .insert(task.task_id.clone(), task);
            if previous.is_none() {
                entries.len += 1;
            }
        }
    }

    /// The task of a token's claim, if this node issued it, its attempt and secret match, and
    /// its lease has at least [`LEASE_MARGIN_MS`] to run; forgotten either way (a second
    /// report of the same attempt reads the store).
    pub fn take(
        &self,
        task_id: &str,
        attempt: u32,
        secret: &str,
        now_ms: u64,
    ) -> Option<TaskRecord> {
        let task = self.lock().remove(task_id)?;
        let live = task.attempt == attempt
            && task
                .claim_secret
                .as_deref()
                .is_some_and(|s| crate::auth::same_secret(s, secret))
            && task
                .lease_until_ms
                .is_some_and(|lease| now_ms.saturating_add(LEASE_MARGIN_MS) < lease);
        live.then_some(task)
    }

    /// Forgets the claim on `task_id`: its attempt ended some other way.
    pub fn forget(&self, task_id: &str) {
        self.lock().remove(task_id);
    }

    /// Forgets the claims on what committed `steps` finished: their done tasks and every task
    /// of the runs they closed.
    pub(crate) fn finished(&self, steps: &[StepWrite]) {
        let mut entries = self.lock();
        if entries.len == 0 {
            return;
        }
        for step in steps {
            if step.close.is_some() {
                if let Some(tasks) = entries.by_run.remove(&step.run_id) {
                    entries.len -= tasks.len();
                }
                continue;
            }
            for task_id in &step.done_tasks {
                entries.remove(task_id);
            }
        }
    }

    /// Forgets every claim (this node no longer owns the runs it had).
    pub fn clear(&self) {
        *self.lock() = Entries::default();
    }
}

impl Entries {
    fn remove(&mut self, task_id: &str) -> Option<TaskRecord> {
        // Task ids are `<run id>/<handle>`.
        let (run_id, _) = task_id.rsplit_once('/')?;
        let tasks = self.by_run.get_mut(run_id)?;
        let task = tasks.remove(task_id)?;
        if tasks.is_empty() {
            self.by_run.remove(run_id);
        }
        self.len -= 1;
        Some(task)
    }

    fn prune(&mut self, now_ms: u64) {
        for tasks in self.by_run.values_mut() {
            tasks.retain(|_, t| t.lease_until_ms.is_some_and(|lease| lease > now_ms));
        }
        self.by_run.retain(|_, tasks| !tasks.is_empty());
        self.len = self.by_run.values().map(HashMap::len).sum();
        if self.len + 1_000 > MAX_ENTRIES {
            *self = Entries::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(run_id: &str, handle: u32, attempt: u32, lease_until_ms: u64) -> TaskRecord {
        TaskRecord {
            task_id: crate::activity_policy::task_id(run_id, handle),
            run_id: run_id.to_owned(),
            workflow_id: "wf".into(),
            handle,
            task_queue: "q".into(),
            activity_name: "a".into(),
            input: weft_history::Payload::null(),
            options: Default::default(),
            attempt,
            scheduled_at_ms: 0,
            lease_until_ms: Some(lease_until_ms),
            heartbeat_details: None,
            claimed_at_ms: Some(0),
            last_heartbeat_ms: None,
            last_error: None,
            trace_context: None,
            claim_secret: Some("s3cret".into()),
        }
    }

    #[test]
    fn a_claim_is_trusted_once_for_its_own_attempt_and_secret_within_its_lease() {
        let claims = IssuedClaims::default();
        claims.issued(vec![task("r1", 1, 1, 10_000)], 0);
        assert!(claims.take("r1/1", 1, "s3cret", 5_000).is_some());
        assert!(
            claims.take("r1/1", 1, "s3cret", 5_000).is_none(),
            "taken once"
        );

        claims.issued(vec![task("r1", 1, 1, 10_000)], 0);
        assert!(
            claims.take("r1/1", 2, "s3cret", 5_000).is_none(),
            "other attempt"
        );
        claims.issued(vec![task("r1", 1, 1, 10_000)], 0);
        assert!(
            claims.take("r1/1", 1, "guess", 5_000).is_none(),
            "other secret"
        );
        claims.issued(vec![task("r1", 1, 1, 10_000)], 0);
        assert!(
            claims
                .take("r1/1", 1, "s3cret", 10_000 - LEASE_MARGIN_MS)
                .is_none(),
            "too near the end of the lease"
        );
        assert!(
            claims.take("r9/1", 1, "s3cret", 0).is_none(),
            "never issued"
        );
    }

    #[test]
    fn claims_go_when_their_attempt_fails_their_task_finishes_or_their_run_closes() {
        let claims = IssuedClaims::default();
        claims.issued(
            vec![
                task("r1", 1, 1, 10_000),
                task("r1", 2, 1, 10_000),
                task("r2", 1, 1, 10_000),
            ],
            0,
        );
        claims.forget("r1/1");
        assert!(claims.take("r1/1", 1, "s3cret", 0).is_none());

        let closes = StepWrite {
            run_id: "r1".into(),
            close: Some(weft_store::RunClose {
                status: weft_store::RunStatus::Completed,
                output: None,
                error: None,
                closed_at_ms: 1,
            }),
            ..StepWrite::default()
        };
        let finishes = StepWrite {
            run_id: "r2".into(),
            done_tasks: vec!["r2/1".into()],
            ..StepWrite::default()
        };
        claims.finished(&[closes, finishes]);
        assert!(
            claims.take("r1/2", 1, "s3cret", 0).is_none(),
            "its run closed"
        );
        assert!(
            claims.take("r2/1", 1, "s3cret", 0).is_none(),
            "its task finished"
        );
        assert_eq!(claims.lock().len, 0);
    }
}
