//! Fires due timers and ends activity attempts whose lease ran out (retry or time out).

use std::sync::Arc;
use std::time::Duration;

use weft_engine::Clock;
use weft_engine::weft_history::{EventKind, Failure};
use weft_store::Store;

use crate::executor::Executor;
use crate::worker_service::{fail_attempt, lease_ms};

const BATCH: u32 = 256;

pub(crate) async fn run(
    store: Arc<dyn Store>,
    executor: Executor,
    clock: Arc<dyn Clock>,
    every: Duration,
) {
    loop {
        if let Err(error) = sweep(store.as_ref(), &executor, clock.as_ref()).await {
            tracing::warn!(%error, "sweep failed; trying again");
        }
        tokio::time::sleep(every).await;
    }
}

async fn sweep(
    store: &dyn Store,
    executor: &Executor,
    clock: &dyn Clock,
) -> Result<(), crate::ServerError> {
    let now = clock.now_ms();
    // Delivered concurrently so the executor group-commits them.
    let mut fired = tokio::task::JoinSet::new();
    for timer in store.due_timers(now, BATCH).await? {
        let executor = executor.clone();
        fired.spawn(async move {
            let result = executor
                .deliver(&timer.run_id, EventKind::TimerFired { handle: timer.handle }, None, Some(timer.handle))
                .await;
            if let Err(error) = result {
                tracing::debug!(run_id = %timer.run_id, handle = timer.handle, %error, "timer not delivered");
            }
        });
    }
    while fired.join_next().await.is_some() {}
    for task in store.expired_tasks(now, BATCH).await? {
        let what = if task
            .options
            .heartbeat_timeout_ms
            .is_some_and(|hb| hb == lease_ms(&task))
        {
            "heartbeat"
        } else {
            "start-to-close"
        };
        tracing::info!(run_id = %task.run_id, task_id = %task.task_id, attempt = task.attempt, what, "activity attempt timed out");
        let failure = Failure::TimedOut(format!(
            "activity `{}` attempt {}: {what} timeout of {} ms",
            task.activity_name,
            task.attempt,
            lease_ms(&task)
        ));
        fail_attempt(store, executor, &task, "TimedOut", false, failure, now).await?;
    }
    Ok(())
}
