//! The node's background duties: keep its lease, adopt the runs of dead nodes, carry out
//! the commands other nodes routed to it, fire due timers, and end activity attempts whose
//! lease ran out (retry or time out).

use std::sync::Arc;
use std::time::Duration;

use weft_engine::Clock;
use weft_engine::weft_history::{EventKind, Failure};
use weft_store::Store;

use crate::Registries;
use crate::activity_policy::lease_ms;
use crate::executor::Executor;
use crate::worker_service::{AttemptFailed, fail_attempt};

const BATCH: u32 = 256;

/// How long a node's lease lasts; it is renewed every [`RENEW_EVERY`].
pub(crate) const NODE_LEASE: Duration = Duration::from_secs(5);
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// The error kind of an attempt that no worker took in time (retry policies may name it).
const SCHEDULE_TO_START_TIMEOUT: &str = "ScheduleToStartTimeout";

pub(crate) async fn run(
    store: Arc<dyn Store>,
    executor: Executor,
    registries: Registries,
    clock: Arc<dyn Clock>,
    every: Duration,
) {
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        if last_renewal.elapsed() >= RENEW_EVERY {
            last_renewal = tokio::time::Instant::now();
            if let Err(error) = keep_lease(store.as_ref(), &executor, clock.as_ref(), false).await {
                tracing::warn!(%error, "cannot renew this node's lease; trying again");
            }
        }
        if let Err(error) = sweep(store.as_ref(), &executor, &registries, clock.as_ref()).await {
            tracing::warn!(%error, "sweep failed; trying again");
        }
        tokio::time::sleep(every).await;
    }
}

/// Renews the node's lease (registering it on the `first` call) and adopts the runs of nodes
/// whose lease ran out.
pub(crate) async fn keep_lease(
    store: &dyn Store,
    executor: &Executor,
    clock: &dyn Clock,
    first: bool,
) -> Result<(), crate::ServerError> {
    let node = executor.node();
    let now = clock.now_ms();
    let renewed = store
        .renew_node(node, now + NODE_LEASE.as_millis() as u64)
        .await?;
    if first {
        tracing::info!(node, "node registered");
    } else if !renewed {
        // Presumed dead while we were away: our runs may belong to others now.
        tracing::warn!(node, "this node's lease had lapsed; re-registered");
        executor.forget_runs().await?;
    }
    if store.single_node() {
        // Nobody else can own runs here; everything was adopted at start.
        return Ok(());
    }
    let adopted = store.adopt_orphans(node, now).await?;
    if adopted > 0 {
        tracing::info!(node, adopted, "adopted the runs of nodes that stopped");
    }
    Ok(())
}

async fn sweep(
    store: &dyn Store,
    executor: &Executor,
    registries: &Registries,
    clock: &dyn Clock,
) -> Result<(), crate::ServerError> {
    let now = clock.now_ms();
    // Each item is deleted in the batch that carries it out; wait for those batches so the
    // next sweep does not see the same items again.
    let mut routed = tokio::task::JoinSet::new();
    for item in store.inbox(executor.node(), BATCH).await? {
        let executor = executor.clone();
        routed.spawn(async move { executor.from_inbox(item).await });
    }
    while let Some(done) = routed.join_next().await {
        if let Ok(Err(error)) = done {
            tracing::warn!(%error, "a routed command failed; it stays in the inbox");
        }
    }
    // Delivered concurrently so the executor group-commits them.
    let mut fired = tokio::task::JoinSet::new();
    for timer in store.due_timers(executor.node(), now, BATCH).await? {
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
        let failed = AttemptFailed {
            kind: "TimedOut",
            non_retryable: false,
            failure,
        };
        fail_attempt(store, executor, registries, &task, failed, now).await?;
    }
    for task in store.unstarted_tasks(now, BATCH).await? {
        let limit = task
            .options
            .schedule_to_start_timeout_ms
            .unwrap_or_default();
        tracing::info!(run_id = %task.run_id, task_id = %task.task_id, attempt = task.attempt,
            task_queue = %task.task_queue, "activity attempt not started in time");
        let failure = Failure::TimedOut(format!(
            "activity `{}` attempt {}: schedule-to-start timeout of {limit} ms: no worker of \
             task queue `{}` took it",
            task.activity_name, task.attempt, task.task_queue
        ));
        let failed = AttemptFailed {
            kind: SCHEDULE_TO_START_TIMEOUT,
            non_retryable: false,
            failure,
        };
        fail_attempt(store, executor, registries, &task, failed, now).await?;
    }
    Ok(())
}
