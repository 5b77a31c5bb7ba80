//! The executor: the one owner of this node's workflow runs.
//!
//! Every change to a run goes through here as a [`Command`]. The executor takes all commands
//! waiting in its queue as a batch, applies each one to its run in memory (starting it,
//! delivering a completion, activating the guest), turns the new events into a [`StepWrite`]
//! (tasks and timers to create or finish, the close), commits the whole batch in one
//! transaction (group commit), and only then answers the callers. A run that is not cached is
//! rebuilt by replaying its stored history; a failed commit evicts the runs it touched, so
//! memory never runs ahead of the database.
//!
//! Nodes sharing a database each own some runs (see `weft_store`). A command for a run this
//! node does not own is put in the owner's inbox, in the same transaction as the batch; the
//! owner's sweeper feeds its inbox back in here. A run whose owner's lease ran out is
//! adopted on the spot. Only owned runs are cached.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};
use weft_engine::weft_history::{
    Completion, Effect, Effects, ErrorInfo, Event, EventKind, Failure, Payload,
};
use weft_engine::{
    Activation, Clock, Engine, NewRun, RunOptions, RunOutcome, WorkflowModule, WorkflowRun,
};
use weft_store::{
    Batch, InboxItem, NewTask, RoutedCommand, RunClose, RunRecord, RunStatus, StepWrite, Store,
    StoreError, TaskClaim, TaskRecord, TimerRecord, attempt_lease_ms,
};

use crate::ServerError;
use crate::issued_claims::IssuedClaims;
use crate::run_cache::RunCache;
use crate::start_checks::StartChecks;

/// Largest batch committed in one transaction.
const MAX_BATCH: usize = 512;

/// What to start.
#[derive(Clone, Debug)]
pub struct StartRequest {
    pub workflow_type: String,
    pub workflow_id: String,
    pub input: Payload,
    pub task_queue: String,
    pub return_existing: bool,
    /// W3C `traceparent` of the starter's span; the run's span becomes its child.
    pub trace_context: Option<String>,
}

/// What was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    pub run_id: String,
    pub existing: bool,
}

/// A change to a run.
enum Command {
    /// A start checked by the caller: `module_id` is the type's newest module, and the
    /// store had no running run of the workflow id.
    Start {
        request: StartRequest,
        module_id: String,
        reply: oneshot::Sender<Result<Started, ServerError>>,
    },
    Deliver {
        run_id: String,
        delivery: EventKind,
        /// Task or timer rows this delivery finishes.
        done_task: Option<String>,
        done_timer: Option<u32>,
        reply: oneshot::Sender<Result<(), ServerError>>,
    },
    /// Internal follow-ups: a child to start, continue-as-new.
    StartInternal(Box<InternalStart>),
    Terminate {
        target: RunRef,
        reason: String,
        reply: oneshot::Sender<Result<(), ServerError>>,
    },
    Cancel {
        target: RunRef,
        reason: String,
        reply: oneshot::Sender<Result<Cancelled, ServerError>>,
    },
    /// Re-pins a run to `to` if it is still on `from` with exactly `vetted_events` events.
    Migrate {
        run_id: String,
        from: String,
        to: String,
        vetted_events: u64,
        reply: oneshot::Sender<Result<Migration, ServerError>>,
    },
    /// A command another node routed here.
    FromInbox {
        item: InboxItem,
        reply: oneshot::Sender<Result<(), ServerError>>,
    },
    /// This node lost its runs to others (its lease lapsed): drop every cached run.
    ForgetRuns,
}

/// Which run a command is for.
#[derive(Clone, Debug)]
enum RunRef {
    /// The running run of a workflow id.
    Workflow(String),
    Run(String),
    /// The running run of a child's workflow id, if it is still the child that `parent_run`
    /// started with `handle` (or a run it continued as), not another run that took the id.
    Child {
        workflow_id: String,
        parent_run: String,
        handle: u32,
    },
}

/// A command for a run owned by another node, as it travels through that node's inbox.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command")]
enum Routed {
    Deliver {
        delivery: EventKind,
        done_task: Option<String>,
        done_timer: Option<u32>,
    },
    Cancel {
        reason: String,
    },
    Terminate {
        reason: String,
    },
    Migrate {
        from: String,
        to: String,
        vetted_events: u64,
    },
}

/// What a migration of one run came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Migration {
    /// Re-pinned; `RunMigrated` is event `seq` of its history.
    Migrated { seq: u64 },
    /// Another live node owns the run: the command is in its inbox.
    Routed { owner: String },
    /// The history has `events` events now, not the ones that were vetted: vet it again.
    HistoryGrew { events: u64 },
    /// The run is on `module_id` now (the target, or another module since it was vetted).
    Moved { module_id: String },
}

/// Where a run's commands are carried out.
enum Claim {
    Mine(Box<CachedRun>),
    /// The live node that owns the run.
    Elsewhere(String),
}

/// What `CancelWorkflow` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled {
    pub run_id: String,
    /// False when the run had already been asked to cancel.
    pub newly_requested: bool,
}

struct InternalStart {
    request: StartRequest,
    run_number: u32,
    parent: Option<(String, u32)>,
}

/// Cloneable handle to the executor task.
#[derive(Clone)]
pub struct Executor {
    tx: mpsc::Sender<Command>,
    store: Arc<dyn Store>,
    types: Arc<TypeCache>,
    waiters: Arc<CloseWaiters>,
    queues: Arc<QueueNotify>,
    claims: Arc<IssuedClaims>,
    checks: Arc<StartChecks>,
    activity: Arc<crate::queue_activity::QueueActivity>,
    node: Arc<str>,
}

/// Workflow type -> newest module, remembered briefly: a start needs it, and an upload on
/// another node sharing the database is seen within [`TYPE_CACHE_TTL`].
#[derive(Default)]
struct TypeCache {
    // tokio's clock (not std's) so that a simulation's paused clock decides when it expires.
    types: std::sync::Mutex<HashMap<String, (String, tokio::time::Instant)>>,
}

const TYPE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl TypeCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, tokio::time::Instant)>> {
        self.types.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn newest_module(
        &self,
        store: &dyn Store,
        workflow_type: &str,
    ) -> Result<String, ServerError> {
        if let Some((module_id, at)) = self.lock().get(workflow_type)
            && at.elapsed() < TYPE_CACHE_TTL
        {
            return Ok(module_id.clone());
        }
        let module_id = store
            .newest_module(workflow_type)
            .await?
            .ok_or_else(|| ServerError::UnknownWorkflowType(workflow_type.to_owned()))?;
        self.set(workflow_type, &module_id);
        Ok(module_id)
    }

    fn set(&self, workflow_type: &str, module_id: &str) {
        self.lock().insert(
            workflow_type.to_owned(),
            (module_id.to_owned(), tokio::time::Instant::now()),
        );
    }
}

/// A run that closed, as its waiters are told.
#[derive(Clone, Debug)]
pub struct ClosedRun {
    pub run_id: String,
    pub close: RunClose,
}

type CloseWatch = tokio::sync::watch::Sender<Option<Arc<ClosedRun>>>;

/// Tells the `GetWorkflowResult` calls waiting on a workflow id how its run closed: one
/// channel per watched id, so a close wakes only its own waiters, with the result in hand.
/// It also knows the runs this node started whose close it has not seen, so that a call
/// waiting on one needs no read to learn it is running.
#[derive(Default)]
pub struct CloseWaiters {
    watched: std::sync::Mutex<HashMap<String, CloseWatch>>,
    /// Workflow id -> run id, from the commit that created the run to the one that closes it
    /// (or until this node stops owning its runs).
    running: std::sync::Mutex<HashMap<String, String>>,
}

impl CloseWaiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CloseWatch>> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Receives the next close of a run of `workflow_id` (once it is durable).
    pub fn watch(&self, workflow_id: &str) -> tokio::sync::watch::Receiver<Option<Arc<ClosedRun>>> {
        self.lock()
            .entry(workflow_id.to_owned())
            .or_insert_with(|| tokio::sync::watch::channel(None).0)
            .subscribe()
    }

    /// Forgets `workflow_id` if nobody watches it any more.
    pub fn unwatch(&self, workflow_id: &str) {
        let mut watched = self.lock();
        if watched
            .get(workflow_id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            watched.remove(workflow_id);
        }
    }

    /// The run of `workflow_id` this node started and has not seen close, if any. Only a
    /// hint: the caller watches first, and reads the store now and then all the same (another
    /// node may have taken the run over).
    pub fn running_here(&self, workflow_id: &str) -> Option<String> {
        self.lock_running().get(workflow_id).cloned()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn started(&self, workflow_id: &str, run_id: &str) {
        self.lock_running()
            .insert(workflow_id.to_owned(), run_id.to_owned());
    }

    fn forget_running(&self) {
        self.lock_running().clear();
    }

    fn closed(&self, workflow_id: &str, closed: ClosedRun) {
        {
            let mut running = self.lock_running();
            if running.get(workflow_id) == Some(&closed.run_id) {
                running.remove(workflow_id);
            }
        }
        if let Some(tx) = self.lock().remove(workflow_id) {
            // No receivers left is fine.
            let _ = tx.send(Some(Arc::new(closed)));
        }
    }
}

/// The pollers of this node's task queues: woken when tasks are added, and those waiting
/// right now, to whom the executor hands new tasks straight from the batch that creates them
/// (sync match: no claim transaction, no second read).
#[derive(Default)]
pub struct QueueNotify {
    queues: std::sync::Mutex<HashMap<String, Arc<Notify>>>,
    waiting: std::sync::Mutex<HashMap<String, VecDeque<WaitingPoller>>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// A poll that found its queue empty and waits for the next task.
struct WaitingPoller {
    id: u64,
    max: usize,
    secret: String,
    tx: oneshot::Sender<Vec<TaskRecord>>,
}

/// Tasks of one batch promised to one waiting poller, sent once the batch commits.
struct Handoff {
    poller: WaitingPoller,
    queue: String,
    tasks: Vec<TaskRecord>,
}

impl QueueNotify {
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
    fn take_poller(&self, queue: &str) -> Option<WaitingPoller> {
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

struct CachedRun {
    run: WorkflowRun,
    record: RunRecord,
    /// Events already turned into side effects.
    seen: usize,
    /// What the run's events asked of the world, and the operations still open.
    effects: Effects,
}

struct State {
    node: String,
    types: Arc<TypeCache>,
    /// Workflow id -> run id of the runs this node started or stepped and that have not
    /// closed: a second start of a running id is refused here, before any commit.
    running_ids: HashMap<String, String>,
    engine: Engine,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    modules: HashMap<String, WorkflowModule>,
    runs: RunCache<CachedRun>,
    waiters: Arc<CloseWaiters>,
    /// Workflow ids whose runs close in the batch being built; announced once it commits.
    closed_in_batch: Vec<(String, ClosedRun)>,
    /// The same closes with their runs, for metrics and the runs' spans.
    closed_records: Vec<(RunRecord, RunClose)>,
    queues: Arc<QueueNotify>,
    /// Tasks of the batch being built, claimed for pollers that wait on their queues.
    handoffs: Vec<Handoff>,
    claims: Arc<IssuedClaims>,
}

/// The answer to one command, sent once the batch is durable.
enum Reply {
    Start(
        oneshot::Sender<Result<Started, ServerError>>,
        Result<Started, ServerError>,
    ),
    Deliver(
        oneshot::Sender<Result<(), ServerError>>,
        Result<(), ServerError>,
    ),
    Cancel(
        oneshot::Sender<Result<Cancelled, ServerError>>,
        Result<Cancelled, ServerError>,
    ),
    Migrate(
        oneshot::Sender<Result<Migration, ServerError>>,
        Result<Migration, ServerError>,
    ),
    None,
}

impl Reply {
    /// A failure for want of the database that no caller will see: the command came from
    /// the inbox or from another run's step (a child's result), and nobody would try it
    /// again. The batch must fail instead, so that the inbox keeps it and the step that
    /// caused it is redone (an inbox cancel was lost this way; the simulation found it).
    fn unseen_failure(&self) -> Option<ServerError> {
        let (closed, error) = match self {
            Reply::Start(tx, Err(e)) => (tx.is_closed(), e),
            Reply::Deliver(tx, Err(e)) => (tx.is_closed(), e),
            Reply::Cancel(tx, Err(e)) => (tx.is_closed(), e),
            Reply::Migrate(tx, Err(e)) => (tx.is_closed(), e),
            _ => return None,
        };
        match error {
            ServerError::Storage(message) if closed => Some(ServerError::Storage(message.clone())),
            _ => None,
        }
    }
}

impl Executor {
    /// Spawns the executor task.
    pub fn spawn(
        node: String,
        engine: Engine,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        max_cached: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let waiters = Arc::new(CloseWaiters::default());
        let queues = Arc::new(QueueNotify::default());
        let types = Arc::new(TypeCache::default());
        let claims = Arc::new(IssuedClaims::default());
        let checks = Arc::new(StartChecks::spawn(store.clone()));
        let state = State {
            node: node.clone(),
            types: types.clone(),
            running_ids: HashMap::new(),
            engine,
            store: store.clone(),
            clock,
            modules: HashMap::new(),
            runs: RunCache::new(max_cached),
            waiters: waiters.clone(),
            closed_in_batch: Vec::new(),
            closed_records: Vec::new(),
            queues: queues.clone(),
            handoffs: Vec::new(),
            claims: claims.clone(),
        };
        tokio::spawn(state.run(rx));
        Executor {
            tx,
            store,
            types,
            waiters,
            queues,
            claims,
            checks,
            activity: Arc::default(),
            node: Arc::from(node),
        }
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Carries out a command another node routed here; it is deleted from the inbox in the
    /// same transaction as its effect. Answers once that is durable.
    pub async fn from_inbox(&self, item: InboxItem) -> Result<(), ServerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::FromInbox { item, reply }).await?;
        rx.await.map_err(|_| ServerError::ShuttingDown)?
    }

    /// Drops every cached run: this node's lease lapsed and its runs may have new owners.
    pub async fn forget_runs(&self) -> Result<(), ServerError> {
        self.send(Command::ForgetRuns).await
    }

    /// Task-queue notifiers, for long polls.
    pub fn queues(&self) -> &Arc<QueueNotify> {
        &self.queues
    }

    /// What this node saw of its task queues' workers and attempts.
    pub fn queue_activity(&self) -> &Arc<crate::queue_activity::QueueActivity> {
        &self.activity
    }

    /// The task claims this node handed to its workers.
    pub fn claims(&self) -> &Arc<IssuedClaims> {
        &self.claims
    }

    /// Who waits for which run to close.
    pub fn close_waiters(&self) -> &Arc<CloseWaiters> {
        &self.waiters
    }

    /// Starts a run; answers once it is durable. The reads a start needs are made here, by
    /// the caller, so they do not queue behind the executor.
    pub async fn start(&self, request: StartRequest) -> Result<Started, ServerError> {
        let module_id = self
            .types
            .newest_module(self.store.as_ref(), &request.workflow_type)
            .await?;
        if let Some(run_id) = self.checks.running_run(&request.workflow_id).await? {
            return if request.return_existing {
                Ok(Started {
                    run_id,
                    existing: true,
                })
            } else {
                Err(ServerError::AlreadyRunning {
                    workflow_id: request.workflow_id,
                    run_id,
                })
            };
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Start {
            request,
            module_id,
            reply,
        })
        .await?;
        rx.await.map_err(|_| ServerError::ShuttingDown)?
    }

    /// `module_id` is now the newest module of `workflow_type`.
    pub fn module_uploaded(&self, workflow_type: &str, module_id: &str) {
        self.types.set(workflow_type, module_id);
    }

    /// Delivers an event to a run; answers once it (and what the run did next) is durable.
    pub async fn deliver(
        &self,
        run_id: &str,
        delivery: EventKind,
        done_task: Option<String>,
        done_timer: Option<u32>,
    ) -> Result<(), ServerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Deliver {
            run_id: run_id.to_owned(),
            delivery,
            done_task,
            done_timer,
            reply,
        })
        .await?;
        rx.await.map_err(|_| ServerError::ShuttingDown)?
    }

    /// Ends the running run of `workflow_id` now, recording `RunTerminated`.
    pub async fn terminate(&self, workflow_id: &str, reason: String) -> Result<(), ServerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Terminate {
            target: RunRef::Workflow(workflow_id.to_owned()),
            reason,
            reply,
        })
        .await?;
        rx.await.map_err(|_| ServerError::ShuttingDown)?
    }

    /// Asks the running run of `workflow_id` to cancel (`RunCancelRequested`).
    pub async fn cancel(
        &self,
        workflow_id: &str,
        reason: String,
    ) -> Result<Cancelled, ServerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Cancel {
            target: RunRef::Workflow(workflow_id.to_owned()),
            reason,
            reply,
        })
        .await?;
        rx.await.map_err(|_| ServerError::ShuttingDown)?
    }

    /// Moves the running run `run_id` from module `from` to `to`, if its history is still the
    /// `vetted_events` events that replayed clean on `to`; answers once that is durable (or,
    /// for a run another node owns, once the command is in that node's inbox).
    pub async fn migrate(
        &self,
        run_id: &str,
        from: &str,
        to: &str,
        vetted_events: u64,
    ) -> Result<Migration, ServerError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Migrate {
            run_id: run_id.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            vetted_events,
            reply,
        })
        .await?;
        rx.await.map_err(|_| ServerError::ShuttingDown)?
    }

    async fn send(&self, command: Command) -> Result<(), ServerError> {
        self.tx
            .send(command)
            .await
            .map_err(|_| ServerError::ShuttingDown)
    }
}

/// The command that carries out a routed one here.
fn routed_command(run_id: String, routed: Routed) -> Command {
    match routed {
        Routed::Deliver {
            delivery,
            done_task,
            done_timer,
        } => Command::Deliver {
            run_id,
            delivery,
            done_task,
            done_timer,
            reply: oneshot::channel().0,
        },
        Routed::Cancel { reason } => Command::Cancel {
            target: RunRef::Run(run_id),
            reason,
            reply: oneshot::channel().0,
        },
        Routed::Terminate { reason } => Command::Terminate {
            target: RunRef::Run(run_id),
            reason,
            reply: oneshot::channel().0,
        },
        Routed::Migrate {
            from,
            to,
            vetted_events,
        } => Command::Migrate {
            run_id,
            from,
            to,
            vetted_events,
            reply: oneshot::channel().0,
        },
    }
}

/// Turns a terminal outcome into the run's close.
fn close_of(outcome: &RunOutcome, now_ms: u64) -> RunClose {
    let (status, output, error) = match outcome {
        RunOutcome::Completed(p) => (RunStatus::Completed, Some(p.clone()), None),
        RunOutcome::Failed(e) => (RunStatus::Failed, None, Some(e.clone())),
        RunOutcome::ContinuedAsNew(_) => (RunStatus::ContinuedAsNew, None, None),
        // The reason is the error, so that results and descriptions say why the run ended.
        RunOutcome::Terminated { reason } => (
            RunStatus::Terminated,
            None,
            Some(ErrorInfo::new("Terminated", reason.clone())),
        ),
    };
    RunClose {
        status,
        output,
        error,
        closed_at_ms: now_ms,
    }
}

impl State {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(first) = rx.recv().await {
            let mut batch: VecDeque<Command> = VecDeque::from([first]);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(command) => batch.push_back(command),
                    Err(_) => break,
                }
            }
            self.process_batch(batch).await;
        }
    }

    async fn process_batch(&mut self, mut queue: VecDeque<Command>) {
        let mut out = Batch {
            node: self.node.clone(),
            ..Batch::default()
        };
        let mut replies = Vec::new();
        // Set when the batch must not commit: a child or continued run that could not be
        // started for want of the database, whose parent's step is in this batch.
        let mut abort: Option<ServerError> = None;
        while let Some(command) = queue.pop_front() {
            let mut follow_ups = Vec::new();
            let reply = match command {
                Command::Start {
                    request,
                    module_id,
                    reply,
                } => {
                    let result = self
                        .start(request, Some(module_id), 1, None, &mut out, &mut follow_ups)
                        .await;
                    Reply::Start(reply, result)
                }
                Command::StartInternal(internal) => {
                    let InternalStart {
                        request,
                        run_number,
                        parent,
                    } = *internal;
                    match self
                        .start(request, None, run_number, parent, &mut out, &mut follow_ups)
                        .await
                    {
                        Ok(_) => {}
                        // The step that asked for it must not commit without it (the parent
                        // would wait for a child that never starts; the simulation found
                        // it): the whole batch fails and its commands are tried again.
                        Err(e @ ServerError::Storage(_)) => abort = Some(e),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start a child or continued run");
                        }
                    }
                    Reply::None
                }
                Command::Deliver {
                    run_id,
                    delivery,
                    done_task,
                    done_timer,
                    reply,
                } => {
                    let result = self
                        .deliver(
                            &run_id,
                            delivery,
                            done_task,
                            done_timer,
                            &mut out,
                            &mut follow_ups,
                        )
                        .await;
                    Reply::Deliver(reply, result)
                }
                Command::Terminate {
                    target,
                    reason,
                    reply,
                } => {
                    let result = self
                        .terminate(target, reason, &mut out, &mut follow_ups)
                        .await;
                    Reply::Deliver(reply, result)
                }
                Command::Cancel {
                    target,
                    reason,
                    reply,
                } => {
                    let result = self.cancel(target, reason, &mut out, &mut follow_ups).await;
                    Reply::Cancel(reply, result)
                }
                Command::Migrate {
                    run_id,
                    from,
                    to,
                    vetted_events,
                    reply,
                } => {
                    let result = self
                        .migrate(run_id, from, to, vetted_events, &mut out, &mut follow_ups)
                        .await;
                    if let Err(error) = &result {
                        tracing::warn!(%error, "migration refused");
                    }
                    Reply::Migrate(reply, result)
                }
                Command::FromInbox { item, reply } => {
                    // Consumed whatever comes of it: a delivery the run refuses (late,
                    // duplicate) would be refused again.
                    out.inbox_done.push(item.id);
                    match serde_json::from_str::<Routed>(&item.command) {
                        Ok(routed) => follow_ups.push(routed_command(item.run_id, routed)),
                        Err(error) => {
                            tracing::error!(run_id = %item.run_id, inbox_id = item.id, %error,
                                "unreadable inbox command dropped");
                        }
                    }
                    Reply::Deliver(reply, Ok(()))
                }
                Command::ForgetRuns => {
                    tracing::warn!(node = %self.node, cached = self.runs.len(),
                        "this node's lease lapsed; dropping its cached runs");
                    self.runs.clear();
                    self.running_ids.clear();
                    self.claims.clear();
                    self.waiters.forget_running();
                    Reply::None
                }
            };
            if abort.is_none()
                && let Some(error) = reply.unseen_failure()
            {
                abort = Some(error);
            }
            replies.push(reply);
            // Follow-ups go next, in this same batch and transaction.
            for f in follow_ups.into_iter().rev() {
                queue.push_front(f);
            }
        }
        self.evict();
        let committed = if let Some(error) = abort {
            Err(BatchFailed::Aborted(error))
        } else if out.is_empty() {
            Ok(())
        } else {
            let started = std::time::Instant::now();
            let committed = self.store.commit(&out).await;
            crate::telemetry::committed(out.steps.len(), started.elapsed());
            committed.map_err(BatchFailed::Commit)
        };
        match committed {
            Ok(()) => {
                // Starts before closes: a run created and closed in one batch is not left
                // running.
                for step in &out.steps {
                    if let Some(created) = &step.create {
                        self.waiters.started(&created.workflow_id, &created.run_id);
                        crate::telemetry::run_started(created);
                    }
                }
                for (workflow_id, closed) in self.closed_in_batch.drain(..) {
                    self.waiters.closed(&workflow_id, closed);
                }
                for (record, close) in self.closed_records.drain(..) {
                    crate::telemetry::run_closed(&record, &close);
                }
                // Tasks no waiting poller took: wake the pollers to claim them from the store.
                for step in &out.steps {
                    for task in step.new_tasks.iter().filter(|t| t.claim.is_none()) {
                        self.queues.get(&task.task_queue).notify_waiters();
                    }
                }
                self.claims.finished(&out.steps);
                self.hand_over(&out).await;
                for reply in replies {
                    match reply {
                        Reply::Start(tx, result) => {
                            let _ = tx.send(result);
                        }
                        Reply::Deliver(tx, result) => {
                            let _ = tx.send(result);
                        }
                        Reply::Cancel(tx, result) => {
                            let _ = tx.send(result);
                        }
                        Reply::Migrate(tx, result) => {
                            let _ = tx.send(result);
                        }
                        Reply::None => {}
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, steps = out.steps.len(), "batch commit failed; evicting its runs");
                // Their pollers see the channel close and look in the store again. A commit
                // that failed in its reply may still have written the claimed tasks: release
                // those claims (a no-op where nothing was written) so that they do not wait
                // out their leases.
                for handoff in std::mem::take(&mut self.handoffs) {
                    let store = self.store.clone();
                    Self::release_claims(store.as_ref(), &handoff.tasks, &handoff.poller.secret)
                        .await;
                }
                self.closed_in_batch.clear();
                self.closed_records.clear();
                if matches!(error, BatchFailed::Commit(StoreError::NotOwner { .. })) {
                    // Other runs of this node may have been adopted too.
                    self.runs.clear();
                    self.running_ids.clear();
                    self.claims.clear();
                    self.waiters.forget_running();
                }
                for step in &out.steps {
                    self.runs.take(&step.run_id);
                    if let Some(created) = &step.create
                        && self.running_ids.get(&created.workflow_id) == Some(&created.run_id)
                    {
                        self.running_ids.remove(&created.workflow_id);
                    }
                }
                let message = error.to_string();
                for reply in replies {
                    match reply {
                        Reply::Start(tx, _) => {
                            let _ = tx.send(Err(commit_error(&error, &message)));
                        }
                        Reply::Deliver(tx, _) => {
                            let _ = tx.send(Err(ServerError::Storage(message.clone())));
                        }
                        Reply::Cancel(tx, _) => {
                            let _ = tx.send(Err(ServerError::Storage(message.clone())));
                        }
                        Reply::Migrate(tx, _) => {
                            let _ = tx.send(Err(ServerError::Storage(message.clone())));
                        }
                        Reply::None => {}
                    }
                }
            }
        }
    }

    /// Claims `task` for a poller of its queue that is waiting now, if there is one: the
    /// claim is written with the task, and the task handed over when the batch commits.
    fn match_task(&mut self, task: &NewTask, run_id: &str) -> Option<TaskClaim> {
        let index = match self
            .handoffs
            .iter()
            .position(|h| h.queue == task.task_queue && h.tasks.len() < h.poller.max)
        {
            Some(index) => index,
            None => {
                let poller = self.queues.take_poller(&task.task_queue)?;
                self.handoffs.push(Handoff {
                    poller,
                    queue: task.task_queue.clone(),
                    tasks: Vec::new(),
                });
                self.handoffs.len() - 1
            }
        };
        let now = self.clock.now_ms();
        let lease = attempt_lease_ms(&task.options)
            .unwrap_or(crate::worker_service::DEFAULT_START_TO_CLOSE_MS);
        let handoff = &mut self.handoffs[index];
        let claim = TaskClaim {
            secret: handoff.poller.secret.clone(),
            claimed_at_ms: now,
            lease_until_ms: now.saturating_add(lease),
        };
        handoff.tasks.push(TaskRecord {
            task_id: format!("{run_id}/{}", task.handle),
            run_id: run_id.to_owned(),
            workflow_id: task.workflow_id.clone(),
            handle: task.handle,
            task_queue: task.task_queue.clone(),
            activity_name: task.activity_name.clone(),
            input: task.input.clone(),
            options: task.options.clone(),
            attempt: 1,
            scheduled_at_ms: task.scheduled_at_ms,
            lease_until_ms: Some(claim.lease_until_ms),
            heartbeat_details: None,
            claimed_at_ms: Some(now),
            last_heartbeat_ms: None,
            last_error: None,
            trace_context: task.trace_context.clone(),
            claim_secret: Some(claim.secret.clone()),
        });
        Some(claim)
    }

    /// Gives back in-memory claims (attempt 1, `secret`) that no worker will see; where the
    /// row was never written this changes nothing.
    async fn release_claims(store: &dyn Store, tasks: &[TaskRecord], secret: &str) {
        for task in tasks {
            if let Err(error) = store.release_task(&task.task_id, 1, secret).await {
                tracing::warn!(task_id = %task.task_id, %error,
                    "cannot release a claim; the task goes back when its lease runs out");
            }
        }
    }

    /// Sends the committed batch's claimed tasks to their pollers. A task the same batch
    /// finished (cancelled) is left out; one whose poller went away meanwhile is released
    /// to the queue, attempt unchanged.
    async fn hand_over(&mut self, out: &Batch) {
        if self.handoffs.is_empty() {
            return;
        }
        let done: std::collections::HashSet<&str> = out
            .steps
            .iter()
            .flat_map(|s| s.done_tasks.iter().map(String::as_str))
            .collect();
        // A run closed in this batch took its tasks' rows with it.
        let closed: std::collections::HashSet<&str> = out
            .steps
            .iter()
            .filter(|s| s.close.is_some())
            .map(|s| s.run_id.as_str())
            .collect();
        // Only what was written: a step dropped after its tasks were matched wrote none.
        let written: std::collections::HashSet<String> = out
            .steps
            .iter()
            .flat_map(|s| {
                s.new_tasks
                    .iter()
                    .filter(|t| t.claim.is_some())
                    .map(|t| format!("{}/{}", s.run_id, t.handle))
            })
            .collect();
        for mut handoff in std::mem::take(&mut self.handoffs) {
            handoff.tasks.retain(|t| {
                written.contains(&t.task_id)
                    && !done.contains(t.task_id.as_str())
                    && !closed.contains(t.run_id.as_str())
            });
            let secret = handoff.poller.secret.clone();
            let n = handoff.tasks.len();
            match handoff.poller.tx.send(handoff.tasks) {
                Ok(()) => crate::telemetry::matched_in_memory(&handoff.queue, n),
                Err(tasks) => {
                    tracing::debug!(tasks = tasks.len(), "poller gone; releasing its claims");
                    let store = self.store.clone();
                    Self::release_claims(store.as_ref(), &tasks, &secret).await;
                    self.queues.get(&handoff.queue).notify_waiters();
                }
            }
        }
    }

    /// Where `run_id`'s commands are carried out: here (cached, or rebuilt from history,
    /// adopting it first if its owner is gone) or on its live owner.
    async fn claim(&mut self, run_id: &str) -> Result<Claim, ServerError> {
        if let Some(cached) = self.runs.take(run_id) {
            return Ok(Claim::Mine(Box::new(cached)));
        }
        // Closed by the batch being built: the store still says running, and a run rebuilt
        // from it would step again from before the close (a duplicate result routed twice
        // did that, and its batch could never commit; the simulation found it).
        if self.closed_in_batch.iter().any(|(_, c)| c.run_id == run_id) {
            return Err(ServerError::RunClosed(run_id.to_owned()));
        }
        let record = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| ServerError::UnknownRun(run_id.to_owned()))?;
        if record.status != RunStatus::Running {
            return Err(ServerError::RunClosed(run_id.to_owned()));
        }
        let now = self.clock.now_ms();
        match record.owner.as_deref() {
            Some(owner) if owner == self.node => {}
            Some(owner) if self.store.node_alive(owner, now).await? => {
                return Ok(Claim::Elsewhere(owner.to_owned()));
            }
            _ => {
                if !self.store.adopt_run(run_id, &self.node, now).await? {
                    // Another node adopted it first.
                    let owner = self
                        .store
                        .run(run_id)
                        .await?
                        .and_then(|r| r.owner)
                        .ok_or_else(|| ServerError::RunClosed(run_id.to_owned()))?;
                    return Ok(Claim::Elsewhere(owner));
                }
                tracing::info!(run_id, node = %self.node, "adopted a run whose owner is gone");
            }
        }
        Ok(Claim::Mine(Box::new(self.rebuild(record).await?)))
    }

    /// Puts `command` for `run_id` in `owner`'s inbox, with this batch.
    fn route(&self, out: &mut Batch, owner: String, run_id: &str, command: &Routed) {
        tracing::debug!(run_id, owner = %owner, "routing a command to the run's owner");
        out.routed.push(RoutedCommand {
            owner,
            run_id: run_id.to_owned(),
            // Serializing these plain enums cannot fail.
            command: serde_json::to_string(command).unwrap_or_default(),
            created_at_ms: self.clock.now_ms(),
        });
    }

    /// The run a command is for (a run id as given, a workflow id's running run), and for a
    /// child the parent link its run must have, checked once the run is claimed.
    async fn resolve(
        &mut self,
        target: RunRef,
    ) -> Result<(String, Option<(String, u32)>), ServerError> {
        match target {
            RunRef::Run(run_id) => Ok((run_id, None)),
            RunRef::Workflow(workflow_id) => match self.store.latest_run(&workflow_id).await? {
                Some(r) if r.status == RunStatus::Running => Ok((r.run_id, None)),
                Some(r) => Err(ServerError::RunClosed(r.run_id)),
                None => Err(ServerError::UnknownWorkflow(workflow_id)),
            },
            RunRef::Child {
                workflow_id,
                parent_run,
                handle,
            } => {
                let parent = Some((parent_run, handle));
                // A child started in the batch being built is not in the store yet.
                if let Some(run_id) = self.running_ids.get(&workflow_id) {
                    return Ok((run_id.clone(), parent));
                }
                match self.store.latest_run(&workflow_id).await? {
                    Some(r) if r.status == RunStatus::Running && r.parent == parent => {
                        Ok((r.run_id, parent))
                    }
                    Some(r) => Err(ServerError::RunClosed(r.run_id)),
                    None => Err(ServerError::UnknownWorkflow(workflow_id)),
                }
            }
        }
    }

    async fn module(&mut self, module_id: &str) -> Result<WorkflowModule, ServerError> {
        if let Some(m) = self.modules.get(module_id) {
            return Ok(m.clone());
        }
        let bytes =
            self.store.module(module_id).await?.ok_or_else(|| {
                ServerError::Internal(format!("module {module_id} is not stored"))
            })?;
        let module = self
            .engine
            .load(&bytes)
            .map_err(|e| ServerError::Internal(format!("stored module {module_id}: {e}")))?;
        self.modules.insert(module_id.to_owned(), module.clone());
        Ok(module)
    }

    fn options(&self) -> RunOptions {
        RunOptions {
            clock: self.clock.clone(),
            ..RunOptions::default()
        }
    }

    /// Starts a run. `checked_module` is set when the caller already resolved the module
    /// and found no running run in the store; internal starts (children) look here.
    async fn start(
        &mut self,
        request: StartRequest,
        checked_module: Option<String>,
        run_number: u32,
        parent: Option<(String, u32)>,
        out: &mut Batch,
        follow_ups: &mut Vec<Command>,
    ) -> Result<Started, ServerError> {
        let checked = checked_module.is_some();
        let module_id = match checked_module {
            Some(module_id) => module_id,
            None => {
                self.types
                    .newest_module(self.store.as_ref(), &request.workflow_type)
                    .await?
            }
        };
        // A continued run replaces a running one; anything else must not overlap it.
        if run_number == 1 {
            let pending_in_batch = out.steps.iter().any(|s| {
                s.create
                    .as_ref()
                    .is_some_and(|r| r.workflow_id == request.workflow_id)
                    && s.close.is_none()
            });
            let running = match self.running_ids.get(&request.workflow_id) {
                Some(run_id) => Some(run_id.clone()),
                None if checked => None,
                None => match self.store.latest_run(&request.workflow_id).await? {
                    Some(r) if r.status == RunStatus::Running => Some(r.run_id),
                    _ => None,
                },
            };
            if let Some(run_id) = running {
                return if request.return_existing {
                    Ok(Started {
                        run_id,
                        existing: true,
                    })
                } else {
                    Err(ServerError::AlreadyRunning {
                        workflow_id: request.workflow_id,
                        run_id,
                    })
                };
            }
            if pending_in_batch {
                return Err(ServerError::AlreadyRunning {
                    workflow_id: request.workflow_id,
                    run_id: String::new(),
                });
            }
        }
        let module = self.module(&module_id).await?;
        let now = self.clock.now_ms();
        let seed = crate::entropy::random_u64();
        let run_id = format!(
            "{:016x}{:016x}",
            crate::entropy::random_u64(),
            crate::entropy::random_u64()
        );
        let record = RunRecord {
            run_id: run_id.clone(),
            workflow_id: request.workflow_id.clone(),
            workflow_type: request.workflow_type.clone(),
            task_queue: request.task_queue.clone(),
            run_number,
            module_id,
            input: request.input.clone(),
            seed,
            status: RunStatus::Running,
            output: None,
            error: None,
            started_at_ms: now,
            closed_at_ms: None,
            history_length: 0,
            parent,
            owner: Some(self.node.clone()),
            trace_context: request.trace_context.clone(),
        };
        let run = WorkflowRun::start(
            &self.engine,
            &module,
            NewRun {
                workflow_id: request.workflow_id,
                run_id: run_id.clone(),
                workflow_type: request.workflow_type,
                task_queue: request.task_queue,
                run_number,
                input: request.input,
                seed,
            },
            self.options(),
        );
        let mut cached = CachedRun {
            run,
            record: record.clone(),
            seen: 0,
            effects: Effects::new(),
        };
        let mut step = StepWrite {
            run_id: run_id.clone(),
            create: Some(record),
            ..StepWrite::default()
        };
        self.activate(&mut cached, &mut step, follow_ups)?;
        out.steps.push(step);
        // A run that closed in its first activation is not kept: a late delivery to it must
        // find it closed, not step it again (that batch could never commit).
        if cached.record.status == RunStatus::Running {
            self.running_ids
                .insert(cached.record.workflow_id.clone(), run_id.clone());
            self.cache(run_id.clone(), cached);
        }
        Ok(Started {
            run_id,
            existing: false,
        })
    }

    async fn deliver(
        &mut self,
        run_id: &str,
        delivery: EventKind,
        done_task: Option<String>,
        done_timer: Option<u32>,
        out: &mut Batch,
        follow_ups: &mut Vec<Command>,
    ) -> Result<(), ServerError> {
        let mut cached = match self.claim(run_id).await? {
            Claim::Mine(cached) => *cached,
            Claim::Elsewhere(owner) => {
                let routed = Routed::Deliver {
                    delivery,
                    done_task,
                    done_timer,
                };
                self.route(out, owner, run_id, &routed);
                return Ok(());
            }
        };
        let mut step = StepWrite {
            run_id: run_id.to_owned(),
            done_tasks: done_task.into_iter().collect(),
            done_timers: done_timer.into_iter().collect(),
            ..StepWrite::default()
        };
        let delivered = cached.run.deliver(delivery);
        let result = match delivered {
            Ok(_) => self.activate(&mut cached, &mut step, follow_ups),
            // A late or duplicate delivery changes nothing but still finishes its row.
            Err(e) => Err(ServerError::Delivery(e.to_string())),
        };
        out.steps.push(step);
        if cached.record.status == RunStatus::Running {
            self.cache(run_id.to_owned(), cached);
        }
        result
    }

    /// Rebuilds a running run from its stored history (the crash path).
    async fn rebuild(&mut self, record: RunRecord) -> Result<CachedRun, ServerError> {
        let run_id = record.run_id.as_str();
        let history = self
            .store
            .history(run_id)
            .await?
            .ok_or_else(|| ServerError::UnknownRun(run_id.to_owned()))?;
        let module = self.module(&record.module_id).await?;
        let seen = history.events.len();
        let effects = Effects::after(&history.events);
        let (wall, started) = (std::time::SystemTime::now(), std::time::Instant::now());
        let mut run = WorkflowRun::resume(&self.engine, &module, history, self.options())
            .map_err(|e| ServerError::Internal(e.to_string()))?;
        match run.activate() {
            Ok(Activation::Suspended) => {}
            other => {
                return Err(ServerError::Internal(format!(
                    "run {run_id} did not replay to a wait: {other:?}"
                )));
            }
        }
        crate::telemetry::replayed(&record, wall, started.elapsed(), seen);
        tracing::debug!(run_id, events = seen, "rebuilt run from history");
        Ok(CachedRun {
            run,
            record,
            seen,
            effects,
        })
    }

    /// Activates the run and turns its new events into side effects.
    fn activate(
        &mut self,
        cached: &mut CachedRun,
        step: &mut StepWrite,
        follow_ups: &mut Vec<Command>,
    ) -> Result<(), ServerError> {
        let (wall, started) = (std::time::SystemTime::now(), std::time::Instant::now());
        let activation = cached.run.activate();
        let elapsed = started.elapsed();
        let activation = match activation {
            Ok(activation) => activation,
            Err(e) => {
                let error = format!("run {}: {e}", cached.record.run_id);
                crate::telemetry::activated(&cached.record, wall, elapsed, 0, Some(error.clone()));
                return Err(ServerError::Internal(error));
            }
        };
        let events: Vec<Event> = cached
            .run
            .with_history(|h| h.events[cached.seen..].to_vec());
        crate::telemetry::activated(&cached.record, wall, elapsed, events.len(), None);
        cached.seen += events.len();
        let (deliveries, to_children) = self.follow_effects(cached, &events, step, follow_ups);
        if let Activation::Finished(outcome) = activation {
            self.close_run(cached, &outcome, step, follow_ups);
        }
        // Handles that only the outside can complete (cancelled activities and children)
        // complete in this batch, after the step that cancelled them.
        if cached.record.status == RunStatus::Running {
            for delivery in deliveries {
                let (reply, _) = oneshot::channel();
                follow_ups.push(Command::Deliver {
                    run_id: cached.record.run_id.clone(),
                    delivery,
                    done_task: None,
                    done_timer: None,
                    reply,
                });
            }
        }
        // A child asked to cancel may close in this same batch: its result must find the
        // handle completed as cancelled already.
        follow_ups.extend(to_children);
        step.events.extend(events);
        Ok(())
    }

    /// Carries out what `events` (the run's new events, in order) ask of the world: tasks,
    /// timers and child starts into `step` and `follow_ups`. Returned, to follow the step in
    /// that order: the deliveries to the run itself, then the cancels and terminations of
    /// its children.
    fn follow_effects(
        &mut self,
        cached: &mut CachedRun,
        events: &[Event],
        step: &mut StepWrite,
        follow_ups: &mut Vec<Command>,
    ) -> (Vec<EventKind>, Vec<Command>) {
        let record = &cached.record;
        let mut deliveries = Vec::new();
        let mut to_children = Vec::new();
        for event in events {
            for effect in cached.effects.next(event) {
                match effect {
                    Effect::ScheduleActivity {
                        handle,
                        name,
                        input,
                        options,
                        scheduled_at_ms,
                    } => {
                        let mut task = NewTask {
                            handle,
                            workflow_id: record.workflow_id.clone(),
                            task_queue: options
                                .task_queue
                                .clone()
                                .unwrap_or_else(|| record.task_queue.clone()),
                            activity_name: name,
                            input,
                            options,
                            scheduled_at_ms,
                            trace_context: crate::telemetry::child_trace_context(record),
                            claim: None,
                        };
                        task.claim = self.match_task(&task, &record.run_id);
                        step.new_tasks.push(task);
                    }
                    // Rows are inserted before deletes, so a task of this same step goes too.
                    Effect::DropTask { handle } => {
                        step.done_tasks.push(format!("{}/{handle}", record.run_id))
                    }
                    Effect::StartTimer { handle, fire_at_ms } => {
                        step.new_timers.push(TimerRecord {
                            run_id: record.run_id.clone(),
                            handle,
                            fire_at_ms,
                        })
                    }
                    Effect::DropTimer { handle } => step.done_timers.push(handle),
                    Effect::StartChild {
                        handle,
                        workflow_type,
                        workflow_id,
                        task_queue,
                        input,
                    } => follow_ups.push(Command::StartInternal(Box::new(InternalStart {
                        request: StartRequest {
                            workflow_type,
                            workflow_id,
                            input,
                            task_queue: task_queue.unwrap_or_else(|| record.task_queue.clone()),
                            return_existing: false,
                            trace_context: crate::telemetry::child_trace_context(record),
                        },
                        run_number: 1,
                        parent: Some((record.run_id.clone(), handle)),
                    }))),
                    Effect::CancelChild {
                        handle,
                        workflow_id,
                        why,
                    } => to_children.push(Command::Cancel {
                        target: RunRef::Child {
                            workflow_id,
                            parent_run: record.run_id.clone(),
                            handle,
                        },
                        reason: why.reason(&record.workflow_id),
                        reply: oneshot::channel().0,
                    }),
                    Effect::TerminateChild {
                        handle,
                        workflow_id,
                    } => to_children.push(Command::Terminate {
                        target: RunRef::Child {
                            workflow_id,
                            parent_run: record.run_id.clone(),
                            handle,
                        },
                        reason: format!(
                            "parent workflow `{}` closed (parent close policy: terminate)",
                            record.workflow_id
                        ),
                        reply: oneshot::channel().0,
                    }),
                    Effect::Deliver { delivery } => deliveries.push(delivery),
                }
            }
        }
        (deliveries, to_children)
    }

    /// Records a run's close in `step` and what follows from it: the next run of a
    /// continue-as-new, the parent's completion of a child.
    fn close_run(
        &mut self,
        cached: &mut CachedRun,
        outcome: &RunOutcome,
        step: &mut StepWrite,
        follow_ups: &mut Vec<Command>,
    ) {
        let record = cached.record.clone();
        let mut close = close_of(outcome, self.clock.now_ms());
        if close.status == RunStatus::Failed
            && close.error.as_ref().is_some_and(|e| e.kind == "Cancelled")
            && cached.run.cancel_requested()
        {
            close.status = RunStatus::Cancelled;
        }
        cached.record.status = close.status;
        self.closed_in_batch.push((
            record.workflow_id.clone(),
            ClosedRun {
                run_id: record.run_id.clone(),
                close: close.clone(),
            },
        ));
        if self.running_ids.get(&record.workflow_id) == Some(&record.run_id) {
            self.running_ids.remove(&record.workflow_id);
        }
        self.closed_records.push((record.clone(), close.clone()));
        step.close = Some(close);
        let completion = match outcome {
            RunOutcome::ContinuedAsNew(input) => {
                follow_ups.push(Command::StartInternal(Box::new(InternalStart {
                    request: StartRequest {
                        workflow_type: record.workflow_type.clone(),
                        workflow_id: record.workflow_id.clone(),
                        input: input.clone(),
                        task_queue: record.task_queue.clone(),
                        return_existing: false,
                        trace_context: crate::telemetry::child_trace_context(&record),
                    },
                    run_number: record.run_number + 1,
                    parent: record.parent.clone(),
                })));
                return;
            }
            RunOutcome::Completed(p) => Completion::Ok(p.clone()),
            RunOutcome::Failed(e) => Completion::Err(Failure::ChildFailed(ErrorInfo {
                attempts: 1,
                ..e.clone()
            })),
            RunOutcome::Terminated { .. } => Completion::Err(Failure::ChildFailed(ErrorInfo::new(
                "Terminated",
                format!("child workflow `{}` was terminated", record.workflow_id),
            ))),
        };
        if let Some((parent_run, handle)) = &record.parent {
            let (reply, _) = oneshot::channel();
            follow_ups.push(Command::Deliver {
                run_id: parent_run.clone(),
                delivery: EventKind::ChildWorkflowCompleted {
                    handle: *handle,
                    completion,
                },
                done_task: None,
                done_timer: None,
                reply,
            });
        }
    }

    /// Ends a running run from outside.
    async fn terminate(
        &mut self,
        target: RunRef,
        reason: String,
        out: &mut Batch,
        follow_ups: &mut Vec<Command>,
    ) -> Result<(), ServerError> {
        let (run_id, parent) = self.resolve(target).await?;
        let mut cached = match self.claim(&run_id).await? {
            Claim::Mine(cached) => *cached,
            Claim::Elsewhere(owner) => {
                self.route(out, owner, &run_id, &Routed::Terminate { reason });
                return Ok(());
            }
        };
        if let Some(parent) = parent
            && cached.record.parent.as_ref() != Some(&parent)
        {
            self.cache(run_id.clone(), cached);
            return Err(ServerError::RunClosed(run_id));
        }
        let seen = cached.seen;
        cached
            .run
            .terminate(reason.clone())
            .map_err(|e| ServerError::Delivery(e.to_string()))?;
        let events = cached.run.with_history(|h| h.events[seen..].to_vec());
        cached.seen += events.len();
        let mut step = StepWrite {
            run_id: run_id.clone(),
            ..StepWrite::default()
        };
        // Its children follow their policies; nothing is delivered to a closed run.
        let (_, to_children) = self.follow_effects(&mut cached, &events, &mut step, follow_ups);
        step.events = events;
        let outcome = RunOutcome::Terminated { reason };
        self.close_run(&mut cached, &outcome, &mut step, follow_ups);
        follow_ups.extend(to_children);
        out.steps.push(step);
        Ok(())
    }

    /// Asks a running run to cancel: `RunCancelRequested` completes what it waits on as
    /// cancelled; its activity tasks and timers go, its children are cancelled.
    async fn cancel(
        &mut self,
        target: RunRef,
        reason: String,
        out: &mut Batch,
        follow_ups: &mut Vec<Command>,
    ) -> Result<Cancelled, ServerError> {
        let (run_id, parent) = self.resolve(target).await?;
        let mut cached = match self.claim(&run_id).await? {
            Claim::Mine(cached) => *cached,
            Claim::Elsewhere(owner) => {
                self.route(out, owner, &run_id, &Routed::Cancel { reason });
                // The owner decides; from here the request is accepted.
                return Ok(Cancelled {
                    run_id,
                    newly_requested: true,
                });
            }
        };
        if let Some(parent) = parent
            && cached.record.parent.as_ref() != Some(&parent)
        {
            self.cache(run_id.clone(), cached);
            return Err(ServerError::RunClosed(run_id));
        }
        if cached.run.cancel_requested() {
            self.cache(run_id.clone(), cached);
            return Ok(Cancelled {
                run_id,
                newly_requested: false,
            });
        }
        // What it waits on lets go (tasks, timers, children) as the effects of the request.
        let mut step = StepWrite {
            run_id: run_id.clone(),
            ..StepWrite::default()
        };
        let result = match cached.run.deliver(EventKind::RunCancelRequested { reason }) {
            Ok(_) => self.activate(&mut cached, &mut step, follow_ups),
            Err(e) => Err(ServerError::Delivery(e.to_string())),
        };
        out.steps.push(step);
        if cached.record.status == RunStatus::Running {
            self.cache(run_id.clone(), cached);
        }
        result.map(|()| Cancelled {
            run_id,
            newly_requested: true,
        })
    }

    /// Re-pins a run to module `to`: `RunMigrated` is appended, and the run is rebuilt on the
    /// new module from that history at once (so that a later command in this batch steps the
    /// new code), going on live where the new code goes past the recorded history.
    async fn migrate(
        &mut self,
        run_id: String,
        from: String,
        to: String,
        vetted_events: u64,
        out: &mut Batch,
        follow_ups: &mut Vec<Command>,
    ) -> Result<Migration, ServerError> {
        let cached = match self.claim(&run_id).await? {
            Claim::Mine(cached) => *cached,
            Claim::Elsewhere(owner) => {
                let routed = Routed::Migrate {
                    from,
                    to,
                    vetted_events,
                };
                self.route(out, owner.clone(), &run_id, &routed);
                return Ok(Migration::Routed { owner });
            }
        };
        let module_id = cached.record.module_id.clone();
        let events = cached.run.with_history(|h| h.events.len() as u64);
        let refused = if module_id != from {
            Some(Migration::Moved { module_id })
        } else if events != vetted_events {
            Some(Migration::HistoryGrew { events })
        } else {
            None
        };
        if let Some(refused) = refused {
            self.cache(run_id, cached);
            return Ok(refused);
        }
        let module = match self.module(&to).await {
            Ok(module) => module,
            Err(e) => {
                self.cache(run_id, cached);
                return Err(e);
            }
        };
        let CachedRun {
            mut run,
            mut record,
            seen,
            effects,
        } = cached;
        let seq = run
            .deliver(EventKind::RunMigrated {
                from,
                to: to.clone(),
            })
            .map_err(|e| ServerError::Delivery(e.to_string()))?;
        let mut history = run.into_history();
        // The stored header names the module the run is pinned to.
        history.header.module_sha256 = to.clone();
        record.module_id = to.clone();
        let run = WorkflowRun::resume(&self.engine, &module, history, self.options())
            .map_err(|e| ServerError::Internal(e.to_string()))?;
        let mut migrated = CachedRun {
            run,
            record,
            seen,
            effects,
        };
        let mut step = StepWrite {
            run_id: run_id.clone(),
            pin_module: Some(to),
            ..StepWrite::default()
        };
        // On failure nothing is cached: the next command rebuilds the run from the store.
        self.activate(&mut migrated, &mut step, follow_ups)?;
        tracing::info!(run_id, module_id = %migrated.record.module_id, event_seq = seq,
            "run migrated");
        out.steps.push(step);
        if migrated.record.status == RunStatus::Running {
            self.cache(run_id, migrated);
        }
        Ok(Migration::Migrated { seq })
    }

    fn cache(&mut self, run_id: String, cached: CachedRun) {
        self.runs.put(run_id, cached);
    }

    /// Trims the cache to its size, least recently used first. Only between batches: a run
    /// stepped by the batch being built must stay cached until the batch commits, since
    /// rebuilding it from the store would miss its uncommitted steps (a child's result
    /// delivered in the batch that started the child was lost that way; the simulation found
    /// it).
    fn evict(&mut self) {
        self.runs.trim();
    }
}

/// Why a batch did not commit.
#[derive(Debug, thiserror::Error)]
enum BatchFailed {
    #[error(transparent)]
    Commit(StoreError),
    #[error("not committed: {0}")]
    Aborted(ServerError),
}

fn commit_error(error: &BatchFailed, message: &str) -> ServerError {
    match error {
        BatchFailed::Commit(StoreError::AlreadyRunning {
            workflow_id,
            run_id,
        }) => ServerError::AlreadyRunning {
            workflow_id: workflow_id.clone(),
            run_id: run_id.clone(),
        },
        _ => ServerError::Storage(message.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(run_id: &str, status: RunStatus) -> ClosedRun {
        ClosedRun {
            run_id: run_id.into(),
            close: RunClose {
                status,
                output: None,
                error: None,
                closed_at_ms: 1,
            },
        }
    }

    #[test]
    fn a_run_is_running_here_from_its_start_to_its_own_close() {
        let waiters = CloseWaiters::default();
        assert_eq!(waiters.running_here("wf"), None);
        waiters.started("wf", "r1");
        assert_eq!(waiters.running_here("wf").as_deref(), Some("r1"));
        // Continued as new: the next run is announced first; the old one's close leaves it.
        waiters.started("wf", "r2");
        waiters.closed("wf", closed("r1", RunStatus::ContinuedAsNew));
        assert_eq!(waiters.running_here("wf").as_deref(), Some("r2"));
        let watch = waiters.watch("wf");
        waiters.closed("wf", closed("r2", RunStatus::Completed));
        assert_eq!(waiters.running_here("wf"), None);
        let heard = watch.borrow().as_ref().map(|c| c.run_id.clone());
        assert_eq!(heard.as_deref(), Some("r2"), "a watcher hears the close");
        waiters.started("other", "r3");
        waiters.forget_running();
        assert_eq!(waiters.running_here("other"), None);
    }
}
