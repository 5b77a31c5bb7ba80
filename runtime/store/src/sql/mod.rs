//! The store's queries, written once for both backends through sqlx's `Any` driver. Where
//! the dialects differ (claiming tasks) [`Dialect`] says how.
//!
//! The rooms: `statement.rs` (the kit statements are built with), `rows.rs` (reading rows),
//! `batch.rs` (the commit plan), and one file per table family: `runs.rs` (runs, modules,
//! histories), `tasks.rs` (tasks, timers, attempts), `cluster.rs` (nodes, adoption, the
//! inbox), `console.rs` (lists and counts), `access.rs` (tokens, audit). This file holds the
//! store itself, its write gate, the one way rows are read and single writes made outside a
//! transaction (`fetch`, `execute`; inside one, `Transact`), and the `Store` impl, which only
//! routes each call to its file. `Store` stays one trait: the server holds one `Arc<dyn
//! Store>`, and the simulation wraps one to inject faults.

mod access;
mod batch;
mod cluster;
mod console;
mod rows;
mod runs;
mod statement;
mod tasks;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, AssertSqlSafe, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};
use weft_history::{ErrorInfo, Event, History, Payload, RunHeader};

use crate::model::*;
use crate::sqlite_thread::SqliteThreads;
use crate::{Store, StoreError};

pub(crate) use batch::*;
pub(crate) use rows::*;
pub(crate) use runs::*;
pub(crate) use statement::*;

/// Which database the pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The store on a SQL database (SQLite or PostgreSQL).
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite writers queue here rather than on SQLite's lock, whose busy handler sleeps
    /// up to 100 ms between tries.
    write_gate: Arc<Mutex<()>>,
    /// SQLite: the per-workflow calls' own connections (`None` on PostgreSQL).
    threads: Option<Arc<SqliteThreads>>,
}

impl SqlStore {
    pub(crate) fn new(pool: AnyPool, dialect: Dialect, threads: Option<SqliteThreads>) -> Self {
        SqlStore {
            pool,
            dialect,
            write_gate: Arc::default(),
            threads: threads.map(Arc::new),
        }
    }

    /// Closes every connection, after the calls in flight end.
    pub async fn close(&self) {
        if let Some(threads) = &self.threads {
            threads.close().await;
        }
        self.pool.close().await;
    }

    /// Held by every write on SQLite (one writer at a time); nothing on PostgreSQL.
    async fn gate(&self) -> Option<OwnedMutexGuard<()>> {
        match self.dialect {
            Dialect::Sqlite => Some(self.write_gate.clone().lock_owned().await),
            Dialect::Postgres => None,
        }
    }

    /// A transaction that will write. On SQLite it takes the write lock up front: a
    /// transaction that reads first and upgrades later fails with SQLITE_BUSY when another
    /// connection wrote in between, where waiting for the lock succeeds.
    async fn begin_write(
        &self,
    ) -> Result<(Option<OwnedMutexGuard<()>>, Transaction<'static, Any>), StoreError> {
        let gate = self.gate().await;
        let tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        };
        Ok((gate, tx))
    }

    /// The rows a `SELECT` finds, each read by `read`. On SQLite a [`Lane::Step`] read runs
    /// on the store's read thread, whose plans do not depend on a bound `LIMIT` (sqlx's
    /// connections prepared such a statement again on every call).
    async fn fetch<T: Send + 'static>(
        &self,
        lane: Lane,
        select: Statement,
        read: Read<T>,
    ) -> Result<Vec<T>, StoreError> {
        if let (Lane::Step, Some(threads)) = (lane, &self.threads) {
            return threads.select(select, read).await;
        }
        let rows = select.query().fetch_all(&self.pool).await?;
        rows.iter().map(|row| read(row)).collect()
    }

    /// The first row a `SELECT` finds (see [`SqlStore::fetch`]).
    async fn fetch_first<T: Send + 'static>(
        &self,
        lane: Lane,
        select: Statement,
        read: Read<T>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.fetch(lane, select, read).await?.into_iter().next())
    }

    /// One write outside a transaction, under the write gate; the rows it changed.
    async fn execute(&self, statement: Statement) -> Result<u64, StoreError> {
        let _gate = self.gate().await;
        Ok(statement.query().execute(&self.pool).await?.rows_affected())
    }
}

/// Which connection a read takes on SQLite (PostgreSQL has its pool only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// The reads each workflow step makes (a run, a task, timers coming due, the inbox):
    /// SQLite's read thread.
    Step,
    /// The rest (histories, console lists and counts, tokens): sqlx's pool, so a long list
    /// does not hold up the steps behind it.
    Pool,
}

#[async_trait]
impl Store for SqlStore {
    async fn put_module(
        &self,
        workflow_type: &str,
        module_id: &str,
        component: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        SqlStore::put_module(self, workflow_type, module_id, component, now_ms).await
    }

    async fn module(&self, module_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        SqlStore::module(self, module_id).await
    }

    async fn newest_module(&self, workflow_type: &str) -> Result<Option<String>, StoreError> {
        SqlStore::newest_module(self, workflow_type).await
    }

    async fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        SqlStore::commit(self, batch).await
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        SqlStore::run(self, run_id).await
    }

    async fn latest_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StoreError> {
        SqlStore::latest_run(self, workflow_id).await
    }

    async fn running_runs_of(&self, workflow_ids: &[String]) -> Result<Vec<RunRecord>, StoreError> {
        SqlStore::running_runs_of(self, workflow_ids).await
    }

    async fn list_runs(
        &self,
        filter: &RunFilter,
        before: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        SqlStore::list_runs(self, filter, before, limit).await
    }

    async fn history(&self, run_id: &str) -> Result<Option<History>, StoreError> {
        SqlStore::history(self, run_id).await
    }

    async fn running_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        SqlStore::running_runs(self).await
    }

    async fn claim_tasks(
        &self,
        task_queue: &str,
        max: u32,
        now_ms: u64,
        default_lease_ms: u64,
        claim_secret: &str,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        SqlStore::claim_tasks(
            self,
            task_queue,
            max,
            now_ms,
            default_lease_ms,
            claim_secret,
        )
        .await
    }

    async fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        SqlStore::task(self, task_id).await
    }

    async fn expired_tasks(&self, now_ms: u64, limit: u32) -> Result<Vec<TaskRecord>, StoreError> {
        SqlStore::expired_tasks(self, now_ms, limit).await
    }

    async fn release_task(
        &self,
        task_id: &str,
        attempt: u32,
        claim_secret: &str,
    ) -> Result<bool, StoreError> {
        SqlStore::release_task(self, task_id, attempt, claim_secret).await
    }

    async fn unstarted_tasks(
        &self,
        now_ms: u64,
        limit: u32,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        SqlStore::unstarted_tasks(self, now_ms, limit).await
    }

    async fn retry_task(
        &self,
        task_id: &str,
        attempt: u32,
        claim_secret: Option<&str>,
        visible_at_ms: u64,
        failure: &AttemptFailure,
    ) -> Result<bool, StoreError> {
        SqlStore::retry_task(self, task_id, attempt, claim_secret, visible_at_ms, failure).await
    }

    async fn heartbeat(
        &self,
        task_id: &str,
        attempt: u32,
        details: &[u8],
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<bool, StoreError> {
        SqlStore::heartbeat(self, task_id, attempt, details, now_ms, lease_until_ms).await
    }

    async fn due_timers(
        &self,
        node: &str,
        now_ms: u64,
        limit: u32,
    ) -> Result<Vec<TimerRecord>, StoreError> {
        SqlStore::due_timers(self, node, now_ms, limit).await
    }

    fn single_node(&self) -> bool {
        SqlStore::single_node(self)
    }

    async fn renew_node(&self, node: &str, lease_until_ms: u64) -> Result<bool, StoreError> {
        SqlStore::renew_node(self, node, lease_until_ms).await
    }

    async fn node_alive(&self, node: &str, now_ms: u64) -> Result<bool, StoreError> {
        SqlStore::node_alive(self, node, now_ms).await
    }

    async fn adopt_orphans(&self, node: &str, now_ms: u64) -> Result<u64, StoreError> {
        SqlStore::adopt_orphans(self, node, now_ms).await
    }

    async fn adopt_run(&self, run_id: &str, node: &str, now_ms: u64) -> Result<bool, StoreError> {
        SqlStore::adopt_run(self, run_id, node, now_ms).await
    }

    async fn count_runs(&self, filter: &RunFilter) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        SqlStore::count_runs(self, filter).await
    }

    async fn run_tasks(&self, run_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        SqlStore::run_tasks(self, run_id).await
    }

    async fn run_timers(&self, run_id: &str) -> Result<Vec<TimerRecord>, StoreError> {
        SqlStore::run_timers(self, run_id).await
    }

    async fn run_attempts(&self, run_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        SqlStore::run_attempts(self, run_id).await
    }

    async fn child_runs(&self, run_id: &str) -> Result<Vec<RunRecord>, StoreError> {
        SqlStore::child_runs(self, run_id).await
    }

    async fn runs_numbered(
        &self,
        workflow_id: &str,
        run_number: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        SqlStore::runs_numbered(self, workflow_id, run_number).await
    }

    async fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        SqlStore::modules(self).await
    }

    async fn queue_stats(&self, now_ms: u64) -> Result<Vec<QueueStats>, StoreError> {
        SqlStore::queue_stats(self, now_ms).await
    }

    async fn inbox(&self, node: &str, limit: u32) -> Result<Vec<InboxItem>, StoreError> {
        SqlStore::inbox(self, node, limit).await
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        SqlStore::create_token(self, token).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        SqlStore::token_by_hash(self, hash).await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        SqlStore::tokens(self).await
    }

    async fn revoke_token(&self, name: &str, now_ms: u64) -> Result<bool, StoreError> {
        SqlStore::revoke_token(self, name, now_ms).await
    }

    async fn touch_token(&self, name: &str, now_ms: u64) -> Result<(), StoreError> {
        SqlStore::touch_token(self, name, now_ms).await
    }

    async fn append_audit(&self, entry: &AuditRecord) -> Result<(), StoreError> {
        SqlStore::append_audit(self, entry).await
    }

    async fn audit_since(&self, since_ms: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        SqlStore::audit_since(self, since_ms, limit).await
    }
}
