//! The rules of one activity attempt, pure and in one place: how long its lease lasts, how
//! long to wait before the next attempt, the retry policy when the workflow names none, and
//! the ids of its task and its claim's token.

use weft_engine::weft_history::{ActivityOptions, RetryPolicy};
use weft_store::{TaskRecord, attempt_lease_ms};

/// An attempt's lease when the activity sets no timeout.
pub(crate) const DEFAULT_START_TO_CLOSE_MS: u64 = 300_000;

/// How long one attempt with `options` may hold its lease before a heartbeat or the result.
pub(crate) fn attempt_lease(options: &ActivityOptions) -> u64 {
    attempt_lease_ms(options).unwrap_or(DEFAULT_START_TO_CLOSE_MS)
}

/// [`attempt_lease`] of `task`'s options.
pub(crate) fn lease_ms(task: &TaskRecord) -> u64 {
    attempt_lease(&task.options)
}

/// The start-to-close timeout a worker is told for `task`.
pub(crate) fn start_to_close_ms(task: &TaskRecord) -> u64 {
    task.options
        .start_to_close_timeout_ms
        .unwrap_or(DEFAULT_START_TO_CLOSE_MS)
}

/// Milliseconds of retry backoff before attempt `attempt + 1`.
pub(crate) fn backoff_ms(policy: &RetryPolicy, attempt: u32) -> u64 {
    let exp = policy
        .backoff_coefficient
        .max(1.0)
        .powi(attempt.saturating_sub(1) as i32);
    let ms = (policy.initial_interval_ms as f64 * exp).min(policy.maximum_interval_ms as f64);
    ms.max(0.0) as u64
}

/// The retry policy when an activity names none.
pub(crate) fn default_retry() -> RetryPolicy {
    RetryPolicy {
        initial_interval_ms: 1_000,
        backoff_coefficient: 2.0,
        maximum_interval_ms: 100_000,
        maximum_attempts: 0,
        non_retryable_errors: Vec::new(),
    }
}

/// The id of the task of activity `handle` of run `run_id` (the store writes the same).
pub(crate) fn task_id(run_id: &str, handle: u32) -> String {
    weft_store::task_id(run_id, handle)
}

/// The token a worker reports attempt `attempt` of task `task_id` with.
pub(crate) fn task_token(task_id: &str, attempt: u32, secret: &str) -> String {
    format!("{task_id}#{attempt}#{secret}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_its_coefficient_up_to_the_maximum() {
        let policy = default_retry();
        let waits: Vec<u64> = (1..=9).map(|a| backoff_ms(&policy, a)).collect();
        assert_eq!(
            waits,
            [
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 100_000, 100_000
            ]
        );
        assert_eq!(task_token(&task_id("r", 3), 2, "s"), "r/3#2#s");
    }
}
