//! Durable storage for weft, behind one trait with two backends.
//!
//! - [`model`]: the rows (runs, tasks, timers) and [`StepWrite`], one step of a run;
//! - [`sqlite`] and [`postgres`]: connecting and migrating each backend;
//! - `sql`: the queries, shared by both through sqlx's `Any` driver.
//!
//! Every step of a run (the events it appends, the tasks and timers it creates or finishes,
//! and its close) is written in one transaction: after a crash a step is either all there or
//! not at all. [`Store::commit_steps`] takes many steps at once so callers can group-commit.

pub mod model;
pub mod postgres;
mod sql;
pub mod sqlite;

use async_trait::async_trait;
use weft_history::History;

pub use model::{
    NewTask, RunClose, RunFilter, RunRecord, RunStatus, StepWrite, TaskRecord, TimerRecord,
};
pub use sql::SqlStore;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("workflow `{workflow_id}` already has a running run ({run_id})")]
    AlreadyRunning { workflow_id: String, run_id: String },
    #[error(
        "history of run {run_id} would not be contiguous: stored up to {stored}, step starts at {first}"
    )]
    NotContiguous {
        run_id: String,
        stored: u64,
        first: u64,
    },
    #[error("stored data is unreadable ({what}): {reason}")]
    Corrupt { what: String, reason: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Everything the server keeps durable.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a component (idempotent by id) and makes it the newest module of its type.
    async fn put_module(
        &self,
        workflow_type: &str,
        module_id: &str,
        component: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError>;
    /// A stored component's bytes.
    async fn module(&self, module_id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The newest module of a workflow type.
    async fn newest_module(&self, workflow_type: &str) -> Result<Option<String>, StoreError>;
    /// Creates a run with its first step. Fails with [`StoreError::AlreadyRunning`] if the
    /// workflow id has a running run.
    async fn create_run(&self, run: &RunRecord, first: &StepWrite) -> Result<(), StoreError>;
    /// Commits the steps in one transaction.
    async fn commit_steps(&self, steps: &[StepWrite]) -> Result<(), StoreError>;
    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError>;
    /// The most recently started run of a workflow id.
    async fn latest_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StoreError>;
    /// Runs newest first, after the `(started_at_ms, run_id)` cursor.
    async fn list_runs(
        &self,
        filter: &RunFilter,
        before: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError>;
    /// A run's full history.
    async fn history(&self, run_id: &str) -> Result<Option<History>, StoreError>;
    /// Runs not closed yet (to resume after a restart).
    async fn running_runs(&self) -> Result<Vec<RunRecord>, StoreError>;
    /// Leases up to `max` visible tasks of `task_queue` until `lease_until_ms`.
    async fn claim_tasks(
        &self,
        task_queue: &str,
        max: u32,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Vec<TaskRecord>, StoreError>;
    async fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError>;
    /// Leased tasks whose lease ran out before `now_ms`.
    async fn expired_tasks(&self, now_ms: u64, limit: u32) -> Result<Vec<TaskRecord>, StoreError>;
    /// Puts a task back for its next attempt, visible from `visible_at_ms`.
    async fn retry_task(
        &self,
        task_id: &str,
        attempt: u32,
        visible_at_ms: u64,
    ) -> Result<bool, StoreError>;
    /// Extends a lease and records heartbeat details; false if the attempt is no longer leased.
    async fn heartbeat(
        &self,
        task_id: &str,
        attempt: u32,
        details: &[u8],
        lease_until_ms: u64,
    ) -> Result<bool, StoreError>;
    /// Timers due at `now_ms`.
    async fn due_timers(&self, now_ms: u64, limit: u32) -> Result<Vec<TimerRecord>, StoreError>;
}

/// Opens the store at `url`: `sqlite:path` (created if missing) or `postgres://...`.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        postgres::open(url).await
    } else {
        sqlite::open(url).await
    }
}
