//! Durable storage for weft, behind one trait with two backends.
//!
//! - [`model`]: the records (runs, tasks, timers, inbox items, tokens, audit entries),
//!   [`StepWrite`] (one step of a run) and [`Batch`] (the steps committed together);
//! - [`sqlite`] and [`postgres`]: connecting and migrating each backend;
//! - `sql/`: [`SqlStore`], the queries once for both through sqlx's `Any` driver: the
//!   statement kit, the row readers, the commit plan, and a file per table family;
//! - `sqlite_thread`: SQLite's per-workflow calls (commit, claim, run and task lookups) on a
//!   writer and a reader thread that each own a rusqlite connection and take a whole call per
//!   message, running the same statements, and a third thread that checkpoints the log.
//!
//! Every step of a run (the events it appends, the tasks and timers it creates or finishes,
//! and its close) is written in one transaction: after a crash a step is either all there or
//! not at all. [`Store::commit`] takes many steps at once so callers can group-commit.
//!
//! Several server nodes may share one (PostgreSQL) database. Each running run has one owner
//! node, and a step commits only if its node still owns the run (fencing): a node that was
//! presumed dead and whose runs were adopted cannot write to them any more. Commands for a
//! run owned by another node go through that node's inbox, in the same transaction.

pub mod model;
pub mod postgres;
mod sql;
pub mod sqlite;
mod sqlite_thread;

use async_trait::async_trait;
use weft_history::History;

pub use model::{
    AttemptFailure, AttemptRecord, AuditRecord, Batch, InboxItem, ModuleRecord, NewTask,
    QueueStats, RoutedCommand, RunClose, RunFilter, RunRecord, RunStatus, StepWrite, TaskClaim,
    TaskRecord, TimerRecord, TokenRecord, attempt_lease_ms, task_id,
};
pub use sql::SqlStore;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("workflow `{workflow_id}` already has a running run ({run_id})")]
    AlreadyRunning { workflow_id: String, run_id: String },
    #[error(
        "history of run {run_id} ({status}) would not be contiguous: stored up to {stored}, \
         step starts at {first}; nothing of this batch was written"
    )]
    NotContiguous {
        run_id: String,
        stored: u64,
        first: u64,
        /// The run's stored status: a closed run takes no more steps.
        status: String,
    },
    #[error(
        "node {node} does not own run {run_id} any more (its lease ran out and another node \
         adopted the run); nothing of this batch was written"
    )]
    NotOwner { run_id: String, node: String },
    #[error("stored data is unreadable ({what}): {reason}")]
    Corrupt { what: String, reason: String },
    #[error("a token named `{0}` exists already; pick another name or revoke it first")]
    TokenExists(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database cannot be reached from here any more (its connection thread stopped).
    #[error("database unavailable: {0}")]
    Unavailable(String),
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
    /// Commits a batch in one transaction. A step with `create` inserts its run first, owned
    /// by the batch's node ([`StoreError::AlreadyRunning`] if the workflow id has a running
    /// run); a step of a run the node does not own fails the batch with
    /// [`StoreError::NotOwner`].
    async fn commit(&self, batch: &Batch) -> Result<(), StoreError>;
    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError>;
    /// The most recently started run of a workflow id.
    async fn latest_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StoreError>;
    /// The running runs of these workflow ids (at most one each; ids without one are left
    /// out), in no particular order: one read for many starts' checks.
    async fn running_runs_of(&self, workflow_ids: &[String]) -> Result<Vec<RunRecord>, StoreError>;
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
    /// Leases up to `max` visible tasks of `task_queue`, each for its
    /// [`attempt_lease_ms`] (`default_lease_ms` when its options set no timeout), marking
    /// each with `claim_secret` (one per claim: the same poller gets them all).
    async fn claim_tasks(
        &self,
        task_queue: &str,
        max: u32,
        now_ms: u64,
        default_lease_ms: u64,
        claim_secret: &str,
    ) -> Result<Vec<TaskRecord>, StoreError>;
    async fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError>;
    /// Leased tasks whose lease ran out before `now_ms`.
    async fn expired_tasks(&self, now_ms: u64, limit: u32) -> Result<Vec<TaskRecord>, StoreError>;
    /// Tasks no worker took within their schedule-to-start timeout, as of `now_ms`.
    async fn unstarted_tasks(&self, now_ms: u64, limit: u32)
    -> Result<Vec<TaskRecord>, StoreError>;
    /// Gives up a claim that never reached its worker: the attempt goes back to the queue
    /// as it was (same attempt number). False if that claim is no longer the task's.
    async fn release_task(
        &self,
        task_id: &str,
        attempt: u32,
        claim_secret: &str,
    ) -> Result<bool, StoreError>;
    /// Puts a task back for its next attempt, visible from `visible_at_ms`, and records why
    /// `attempt` ended (an [`AttemptRecord`]) in the same transaction. Only if the task is
    /// still at `attempt` with the claim the caller saw (`claim_secret`, `None` when it saw no
    /// claim): false otherwise, and nothing changes.
    async fn retry_task(
        &self,
        task_id: &str,
        attempt: u32,
        claim_secret: Option<&str>,
        visible_at_ms: u64,
        failure: &AttemptFailure,
    ) -> Result<bool, StoreError>;
    /// Extends a lease and records heartbeat details at `now_ms`; false if the attempt is no
    /// longer leased.
    async fn heartbeat(
        &self,
        task_id: &str,
        attempt: u32,
        details: &[u8],
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<bool, StoreError>;

    // ---- what the console reads ----
    /// How many runs match `filter` (its `status` ignored), per status.
    async fn count_runs(&self, filter: &RunFilter) -> Result<Vec<(RunStatus, u64)>, StoreError>;
    /// A run's activity tasks not finished yet.
    async fn run_tasks(&self, run_id: &str) -> Result<Vec<TaskRecord>, StoreError>;
    /// A run's timers not fired yet.
    async fn run_timers(&self, run_id: &str) -> Result<Vec<TimerRecord>, StoreError>;
    /// A run's retried attempts, by handle and attempt.
    async fn run_attempts(&self, run_id: &str) -> Result<Vec<AttemptRecord>, StoreError>;
    /// The runs started as children of `run_id`.
    async fn child_runs(&self, run_id: &str) -> Result<Vec<RunRecord>, StoreError>;
    /// The runs of a workflow id with run number `run_number`, newest first.
    async fn runs_numbered(
        &self,
        workflow_id: &str,
        run_number: u32,
    ) -> Result<Vec<RunRecord>, StoreError>;
    /// Every stored module with its run counts, by type and upload time (newest first).
    async fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError>;
    /// Every task queue that has tasks, at `now_ms`.
    async fn queue_stats(&self, now_ms: u64) -> Result<Vec<QueueStats>, StoreError>;
    /// Timers of `node`'s runs due at `now_ms`.
    async fn due_timers(
        &self,
        node: &str,
        now_ms: u64,
        limit: u32,
    ) -> Result<Vec<TimerRecord>, StoreError>;

    /// True when only one node can use this database (SQLite): at start, that node adopts
    /// every run without waiting for the previous process's lease to run out.
    fn single_node(&self) -> bool;
    /// Extends `node`'s lease (registering it if needed). False when the node had no row:
    /// it is new, or it was presumed dead and its runs were adopted by others.
    async fn renew_node(&self, node: &str, lease_until_ms: u64) -> Result<bool, StoreError>;
    /// Whether `node` holds a lease at `now_ms`.
    async fn node_alive(&self, node: &str, now_ms: u64) -> Result<bool, StoreError>;
    /// Takes over the running runs (and inbox items) of nodes whose lease ended before
    /// `now_ms`, and of no node; forgets those nodes. Returns how many runs it took.
    async fn adopt_orphans(&self, node: &str, now_ms: u64) -> Result<u64, StoreError>;
    /// Takes one running run if it has no live owner. True when `node` owns it afterwards.
    async fn adopt_run(&self, run_id: &str, node: &str, now_ms: u64) -> Result<bool, StoreError>;
    /// The oldest commands in `node`'s inbox.
    async fn inbox(&self, node: &str, limit: u32) -> Result<Vec<InboxItem>, StoreError>;

    // ---- who may do what ----
    /// Stores a new token; [`StoreError::TokenExists`] if its name is taken.
    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Every token, revoked ones included, by name.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes token `name` at `now_ms`; false if there is no such live token.
    async fn revoke_token(&self, name: &str, now_ms: u64) -> Result<bool, StoreError>;
    async fn touch_token(&self, name: &str, now_ms: u64) -> Result<(), StoreError>;
    async fn append_audit(&self, entry: &AuditRecord) -> Result<(), StoreError>;
    /// Audit entries at or after `since_ms`, oldest first, at most `limit`.
    async fn audit_since(&self, since_ms: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;
}

/// Opens the store at `url`: `sqlite:path` (created if missing) or `postgres://...`.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        postgres::open(url).await
    } else {
        sqlite::open(url).await
    }
}
