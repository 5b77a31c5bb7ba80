//! The database of a simulation: weft-store's real SQLite store, reached through a bridge
//! that makes each call atomic in simulated time, with a ledger of every commit and every
//! grant of a run to a node, which the invariants compare with what the store holds. Each
//! node process sees it through a [`NodeStore`], which injects the seed's faults.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use weft_history::{Event, History};
use weft_store::{
    AttemptFailure, AttemptRecord, AuditRecord, Batch, InboxItem, ModuleRecord, QueueStats,
    RunFilter, RunRecord, RunStatus, SqlStore, Store, StoreError, TaskRecord, TimerRecord,
    TokenRecord,
};

use crate::faults::{Chaos, Life};

/// A deliberate defect, for proving that the invariants catch a broken server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// Now and then a commit silently leaves out the last event of one step, while the
    /// server believes it was written.
    DropEvent,
}

/// What the database was asked to make durable, as the simulation saw it succeed.
#[derive(Default)]
pub struct Ledger {
    /// Every committed event, by run, in commit order.
    pub events: BTreeMap<String, Vec<Event>>,
    /// The node each run belongs to, as creations and adoptions granted it.
    pub owners: BTreeMap<String, String>,
    /// Broken rules seen as they happened (a step committed by a node not owning its run).
    pub violations: Vec<String>,
}

/// The real store, on a runtime of its own.
pub struct Database {
    store: Arc<SqlStore>,
    runtime: tokio::runtime::Handle,
    ledger: Mutex<Ledger>,
    sabotage: Option<Sabotage>,
    chaos: Arc<Chaos>,
}

impl Database {
    /// Opens the SQLite file at `path` with the store's own `open` (migrations included),
    /// on `runtime`.
    pub fn open(
        path: &Path,
        runtime: tokio::runtime::Handle,
        chaos: Arc<Chaos>,
        sabotage: Option<Sabotage>,
    ) -> Result<Database, StoreError> {
        let url = format!("sqlite:{}", path.display());
        let store = block(
            &runtime,
            async move { weft_store::sqlite::open(&url).await },
        )?;
        Ok(Database {
            store: Arc::new(store),
            runtime,
            ledger: Mutex::default(),
            sabotage,
            chaos,
        })
    }

    /// Runs one store call to its end while the simulation waits: no simulated time passes
    /// and no other simulated task runs meanwhile, so the order of calls is the seed's.
    pub fn call<T, Fut>(&self, f: impl FnOnce(Arc<SqlStore>) -> Fut) -> T
    where
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        block(&self.runtime, f(self.store.clone()))
    }

    /// Closes the store's connections (once the world has stopped).
    pub fn close(&self) {
        let store = self.store.clone();
        block(&self.runtime, async move { store.close().await });
    }

    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut written = batch.clone();
        if self.sabotage == Some(Sabotage::DropEvent)
            && self.chaos.rng().chance(0.05)
            && let Some(step) = written
                .steps
                .iter_mut()
                .find(|s| s.create.is_none() && s.events.len() > 1)
        {
            step.events.pop();
        }
        let result = self.call(move |s| async move { s.commit(&written).await });
        if result.is_ok() {
            let mut ledger = self.ledger();
            for step in &batch.steps {
                if step.create.is_some() {
                    ledger
                        .owners
                        .insert(step.run_id.clone(), batch.node.clone());
                } else if ledger.owners.get(&step.run_id) != Some(&batch.node) {
                    let owner = ledger.owners.get(&step.run_id).cloned().unwrap_or_default();
                    ledger.violations.push(format!(
                        "node {} committed a step of run {} that belongs to node {owner}",
                        batch.node, step.run_id
                    ));
                }
                ledger
                    .events
                    .entry(step.run_id.clone())
                    .or_default()
                    .extend(step.events.iter().cloned());
            }
        }
        result
    }

    /// Notes the runs `node` owns now, after it adopted some.
    fn adopted(&self, node: &str) {
        let runs = self.call(|s| async move { s.running_runs().await });
        if let Ok(runs) = runs {
            let mut ledger = self.ledger();
            for run in runs {
                if run.owner.as_deref() == Some(node) {
                    ledger.owners.insert(run.run_id, node.to_owned());
                }
            }
        }
    }
}

/// Runs `future` on `runtime` and blocks this thread for its result.
fn block<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    future: impl Future<Output = T> + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv()
        .expect("the database runtime outlives every simulation that uses it")
}

/// The error of a database connection that dropped.
fn dropped() -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "simulated: the database connection dropped",
    )))
}

/// What becomes of one call, decided before it runs.
enum Fate {
    Pass,
    /// The write takes effect; the caller gets an error.
    LoseReply,
    /// The write takes effect; the process dies before it sees the reply.
    CrashAfter,
}

/// The store as one node process sees it.
pub struct NodeStore {
    db: Arc<Database>,
    chaos: Arc<Chaos>,
    life: Arc<Life>,
    node: String,
    single_node: bool,
}

impl NodeStore {
    pub fn new(
        db: Arc<Database>,
        chaos: Arc<Chaos>,
        life: Arc<Life>,
        node: String,
        single_node: bool,
    ) -> Self {
        NodeStore {
            db,
            chaos,
            life,
            node,
            single_node,
        }
    }

    /// Waits out a stall; never returns for a dead process; draws the call's fate.
    async fn enter(&self, what: &str, write: bool) -> Result<Fate, StoreError> {
        loop {
            if self.life.is_dead() {
                std::future::pending::<()>().await;
            }
            match self.life.stalled_until() {
                Some(until) if until > tokio::time::Instant::now() => {
                    tokio::time::sleep_until(until).await;
                }
                _ => break,
            }
        }
        self.chaos.note(&format!("{} {what}", self.node));
        if !self.chaos.on() {
            return Ok(Fate::Pass);
        }
        let rates = &self.chaos.rates;
        let fate = {
            let mut rng = self.chaos.rng();
            if rng.chance(rates.crash) {
                if write && rng.chance(0.5) {
                    Some(Fate::CrashAfter)
                } else {
                    None
                }
            } else if rng.chance(rates.drop) {
                return Err(dropped());
            } else if write && rng.chance(rates.lose_reply) {
                Some(Fate::LoseReply)
            } else {
                Some(Fate::Pass)
            }
        };
        match fate {
            Some(fate) => Ok(fate),
            None => {
                self.chaos
                    .note(&format!("{} crashes before {what}", self.node));
                self.life.kill();
                std::future::pending().await
            }
        }
    }

    async fn leave<T>(&self, fate: Fate, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match fate {
            Fate::Pass => result,
            Fate::LoseReply => Err(dropped()),
            Fate::CrashAfter => {
                self.chaos
                    .note(&format!("{} crashes after a write", self.node));
                self.life.kill();
                std::future::pending().await
            }
        }
    }
}

/// One store call through the faults: `$write` says whether it changes anything.
macro_rules! through {
    ($self:ident, $what:literal, $write:expr, |$s:ident| $body:expr) => {{
        let fate = $self.enter($what, $write).await?;
        let result = $self.db.call(move |$s| async move { $body });
        $self.leave(fate, result).await
    }};
}

#[async_trait]
impl Store for NodeStore {
    async fn put_module(
        &self,
        workflow_type: &str,
        module_id: &str,
        component: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let (t, m, c) = (
            workflow_type.to_owned(),
            module_id.to_owned(),
            component.to_vec(),
        );
        through!(self, "put_module", true, |s| s
            .put_module(&t, &m, &c, now_ms)
            .await)
    }
    async fn module(&self, module_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let m = module_id.to_owned();
        through!(self, "module", false, |s| s.module(&m).await)
    }
    async fn newest_module(&self, workflow_type: &str) -> Result<Option<String>, StoreError> {
        let t = workflow_type.to_owned();
        through!(self, "newest_module", false, |s| s.newest_module(&t).await)
    }
    async fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let fate = self.enter("commit", true).await?;
        let result = self.db.commit(batch);
        self.leave(fate, result).await
    }
    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let r = run_id.to_owned();
        through!(self, "run", false, |s| s.run(&r).await)
    }
    async fn latest_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StoreError> {
        let w = workflow_id.to_owned();
        through!(self, "latest_run", false, |s| s.latest_run(&w).await)
    }
    async fn running_runs_of(&self, workflow_ids: &[String]) -> Result<Vec<RunRecord>, StoreError> {
        let ids = workflow_ids.to_vec();
        through!(self, "running_runs_of", false, |s| s
            .running_runs_of(&ids)
            .await)
    }
    async fn list_runs(
        &self,
        filter: &RunFilter,
        before: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let f = filter.clone();
        through!(self, "list_runs", false, |s| s
            .list_runs(&f, before, limit)
            .await)
    }
    async fn history(&self, run_id: &str) -> Result<Option<History>, StoreError> {
        let r = run_id.to_owned();
        through!(self, "history", false, |s| s.history(&r).await)
    }
    async fn running_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        through!(self, "running_runs", false, |s| s.running_runs().await)
    }
    async fn claim_tasks(
        &self,
        task_queue: &str,
        max: u32,
        now_ms: u64,
        default_lease_ms: u64,
        claim_secret: &str,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let (q, secret) = (task_queue.to_owned(), claim_secret.to_owned());
        through!(self, "claim_tasks", true, |s| s
            .claim_tasks(&q, max, now_ms, default_lease_ms, &secret)
            .await)
    }
    async fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let t = task_id.to_owned();
        through!(self, "task", false, |s| s.task(&t).await)
    }
    async fn expired_tasks(&self, now_ms: u64, limit: u32) -> Result<Vec<TaskRecord>, StoreError> {
        through!(self, "expired_tasks", false, |s| s
            .expired_tasks(now_ms, limit)
            .await)
    }
    async fn unstarted_tasks(
        &self,
        now_ms: u64,
        limit: u32,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        through!(self, "unstarted_tasks", false, |s| s
            .unstarted_tasks(now_ms, limit)
            .await)
    }
    async fn release_task(
        &self,
        task_id: &str,
        attempt: u32,
        claim_secret: &str,
    ) -> Result<bool, StoreError> {
        let (t, secret) = (task_id.to_owned(), claim_secret.to_owned());
        through!(self, "release_task", true, |s| s
            .release_task(&t, attempt, &secret)
            .await)
    }
    async fn retry_task(
        &self,
        task_id: &str,
        attempt: u32,
        claim_secret: Option<&str>,
        visible_at_ms: u64,
        failure: &AttemptFailure,
    ) -> Result<bool, StoreError> {
        let (t, secret, f) = (
            task_id.to_owned(),
            claim_secret.map(str::to_owned),
            failure.clone(),
        );
        through!(self, "retry_task", true, |s| s
            .retry_task(&t, attempt, secret.as_deref(), visible_at_ms, &f)
            .await)
    }
    async fn heartbeat(
        &self,
        task_id: &str,
        attempt: u32,
        details: &[u8],
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<bool, StoreError> {
        let (t, d) = (task_id.to_owned(), details.to_vec());
        through!(self, "heartbeat", true, |s| s
            .heartbeat(&t, attempt, &d, now_ms, lease_until_ms)
            .await)
    }
    async fn count_runs(&self, filter: &RunFilter) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        let f = filter.clone();
        through!(self, "count_runs", false, |s| s.count_runs(&f).await)
    }
    async fn run_tasks(&self, run_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let r = run_id.to_owned();
        through!(self, "run_tasks", false, |s| s.run_tasks(&r).await)
    }
    async fn run_timers(&self, run_id: &str) -> Result<Vec<TimerRecord>, StoreError> {
        let r = run_id.to_owned();
        through!(self, "run_timers", false, |s| s.run_timers(&r).await)
    }
    async fn run_attempts(&self, run_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        let r = run_id.to_owned();
        through!(self, "run_attempts", false, |s| s.run_attempts(&r).await)
    }
    async fn child_runs(&self, run_id: &str) -> Result<Vec<RunRecord>, StoreError> {
        let r = run_id.to_owned();
        through!(self, "child_runs", false, |s| s.child_runs(&r).await)
    }
    async fn runs_numbered(
        &self,
        workflow_id: &str,
        run_number: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let w = workflow_id.to_owned();
        through!(self, "runs_numbered", false, |s| s
            .runs_numbered(&w, run_number)
            .await)
    }
    async fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        through!(self, "modules", false, |s| s.modules().await)
    }
    async fn queue_stats(&self, now_ms: u64) -> Result<Vec<QueueStats>, StoreError> {
        through!(self, "queue_stats", false, |s| s.queue_stats(now_ms).await)
    }
    async fn due_timers(
        &self,
        node: &str,
        now_ms: u64,
        limit: u32,
    ) -> Result<Vec<TimerRecord>, StoreError> {
        let n = node.to_owned();
        through!(self, "due_timers", false, |s| s
            .due_timers(&n, now_ms, limit)
            .await)
    }
    fn single_node(&self) -> bool {
        self.single_node
    }
    async fn renew_node(&self, node: &str, lease_until_ms: u64) -> Result<bool, StoreError> {
        let n = node.to_owned();
        through!(self, "renew_node", true, |s| s
            .renew_node(&n, lease_until_ms)
            .await)
    }
    async fn node_alive(&self, node: &str, now_ms: u64) -> Result<bool, StoreError> {
        let n = node.to_owned();
        through!(self, "node_alive", false, |s| s
            .node_alive(&n, now_ms)
            .await)
    }
    async fn adopt_orphans(&self, node: &str, now_ms: u64) -> Result<u64, StoreError> {
        let fate = self.enter("adopt_orphans", true).await?;
        let n = node.to_owned();
        let result = self
            .db
            .call(move |s| async move { s.adopt_orphans(&n, now_ms).await });
        if matches!(result, Ok(adopted) if adopted > 0) {
            self.db.adopted(node);
        }
        self.leave(fate, result).await
    }
    async fn adopt_run(&self, run_id: &str, node: &str, now_ms: u64) -> Result<bool, StoreError> {
        let fate = self.enter("adopt_run", true).await?;
        let (r, n) = (run_id.to_owned(), node.to_owned());
        let result = self
            .db
            .call(move |s| async move { s.adopt_run(&r, &n, now_ms).await });
        if matches!(result, Ok(true)) {
            self.db
                .ledger()
                .owners
                .insert(run_id.to_owned(), node.to_owned());
        }
        self.leave(fate, result).await
    }
    async fn inbox(&self, node: &str, limit: u32) -> Result<Vec<InboxItem>, StoreError> {
        let n = node.to_owned();
        through!(self, "inbox", false, |s| s.inbox(&n, limit).await)
    }
    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let t = token.clone();
        through!(self, "create_token", true, |s| s.create_token(&t).await)
    }
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let h = hash.to_owned();
        through!(self, "token_by_hash", false, |s| s.token_by_hash(&h).await)
    }
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        through!(self, "tokens", false, |s| s.tokens().await)
    }
    async fn revoke_token(&self, name: &str, now_ms: u64) -> Result<bool, StoreError> {
        let n = name.to_owned();
        through!(self, "revoke_token", true, |s| s
            .revoke_token(&n, now_ms)
            .await)
    }
    async fn touch_token(&self, name: &str, now_ms: u64) -> Result<(), StoreError> {
        let n = name.to_owned();
        through!(self, "touch_token", true, |s| s
            .touch_token(&n, now_ms)
            .await)
    }
    async fn append_audit(&self, entry: &AuditRecord) -> Result<(), StoreError> {
        let e = entry.clone();
        through!(self, "append_audit", true, |s| s.append_audit(&e).await)
    }
    async fn audit_since(&self, since_ms: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        through!(self, "audit_since", false, |s| s
            .audit_since(since_ms, limit)
            .await)
    }
}
