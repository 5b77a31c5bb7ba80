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
//!
//! The rooms: this file holds the handle and the loop; `batch.rs` collects a batch, applies
//! it, commits it and answers; `step.rs` applies one command to one run; `activation.rs` turns
//! a run's new events into the batch's rows and follow-up commands (through
//! `weft_history::Effects`); `ownership.rs` finds where a run's commands are carried out
//! (here, adopted, or routed to the owner's inbox); `sync_match.rs` hands new tasks to waiting
//! pollers; `modules.rs` keeps the compiled modules and each type's newest one.

mod activation;
mod batch;
mod modules;
mod ownership;
mod step;
mod sync_match;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use weft_engine::weft_history::{Effects, EventKind, Payload};
use weft_engine::{Clock, Engine, WorkflowModule, WorkflowRun};
use weft_store::{InboxItem, RunClose, RunRecord, Store};

use crate::ServerError;
use crate::close_waiters::{CloseWaiters, ClosedRun};
use crate::issued_claims::IssuedClaims;
use crate::pollers::Pollers;
use crate::run_cache::RunCache;
use crate::start_checks::StartChecks;
use modules::TypeCache;
use sync_match::Handoff;

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

/// The answer to a start of a workflow id whose run `run_id` is running: that run, if the
/// start asked for it, else `AlreadyRunning`.
fn already_running(request: StartRequest, run_id: String) -> Result<Started, ServerError> {
    if request.return_existing {
        Ok(Started {
            run_id,
            existing: true,
        })
    } else {
        Err(ServerError::AlreadyRunning {
            workflow_id: request.workflow_id,
            run_id,
        })
    }
}

/// What was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    pub run_id: String,
    pub existing: bool,
}

/// Where a command's answer goes: the caller's channel, or nowhere for a command the
/// executor made itself (a child to start, a cancel to deliver, an inbox item carried out).
/// Only those have no caller to try again, so a storage failure in one fails its batch.
type Answer<T> = Option<oneshot::Sender<Result<T, ServerError>>>;

/// A change to a run.
enum Command {
    /// A start checked by the caller: `module_id` is the type's newest module, and the
    /// store had no running run of the workflow id.
    Start {
        request: StartRequest,
        module_id: String,
        reply: Answer<Started>,
    },
    Deliver {
        run_id: String,
        delivery: EventKind,
        /// Task or timer rows this delivery finishes.
        done_task: Option<String>,
        done_timer: Option<u32>,
        reply: Answer<()>,
    },
    /// Internal follow-ups: a child to start, continue-as-new.
    StartInternal(Box<InternalStart>),
    Terminate {
        target: RunRef,
        reason: String,
        reply: Answer<()>,
    },
    Cancel {
        target: RunRef,
        reason: String,
        reply: Answer<Cancelled>,
    },
    /// Re-pins a run to `to` if it is still on `from` with exactly `vetted_events` events.
    Migrate {
        run_id: String,
        from: String,
        to: String,
        vetted_events: u64,
        reply: Answer<Migration>,
    },
    /// A command another node routed here.
    FromInbox { item: InboxItem, reply: Answer<()> },
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
    checks: Arc<StartChecks>,
    node: Arc<str>,
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
    queues: Arc<Pollers>,
    /// Tasks of the batch being built, claimed for pollers that wait on their queues.
    handoffs: Vec<Handoff>,
    claims: Arc<IssuedClaims>,
}

impl Executor {
    /// Spawns the executor task.
    pub(crate) fn spawn(
        node: String,
        engine: Engine,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        max_cached: usize,
        registries: &crate::Registries,
    ) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let types = Arc::new(TypeCache::default());
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
            waiters: registries.close_waiters.clone(),
            closed_in_batch: Vec::new(),
            closed_records: Vec::new(),
            queues: registries.pollers.clone(),
            handoffs: Vec::new(),
            claims: registries.claims.clone(),
        };
        tokio::spawn(state.run(rx));
        Executor {
            tx,
            store,
            types,
            checks,
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
        self.ask(|reply| Command::FromInbox { item, reply }).await
    }

    /// Drops every cached run: this node's lease lapsed and its runs may have new owners.
    pub async fn forget_runs(&self) -> Result<(), ServerError> {
        self.send(Command::ForgetRuns).await
    }

    /// Starts a run; answers once it is durable. The reads a start needs are made here, by
    /// the caller, so they do not queue behind the executor.
    pub async fn start(&self, request: StartRequest) -> Result<Started, ServerError> {
        let module_id = self
            .types
            .newest_module(self.store.as_ref(), &request.workflow_type)
            .await?;
        if let Some(run_id) = self.checks.running_run(&request.workflow_id).await? {
            return already_running(request, run_id);
        }
        self.ask(|reply| Command::Start {
            request,
            module_id,
            reply,
        })
        .await
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
        self.ask(|reply| Command::Deliver {
            run_id: run_id.to_owned(),
            delivery,
            done_task,
            done_timer,
            reply,
        })
        .await
    }

    /// Ends the running run of `workflow_id` now, recording `RunTerminated`.
    pub async fn terminate(&self, workflow_id: &str, reason: String) -> Result<(), ServerError> {
        self.ask(|reply| Command::Terminate {
            target: RunRef::Workflow(workflow_id.to_owned()),
            reason,
            reply,
        })
        .await
    }

    /// Asks the running run of `workflow_id` to cancel (`RunCancelRequested`).
    pub async fn cancel(
        &self,
        workflow_id: &str,
        reason: String,
    ) -> Result<Cancelled, ServerError> {
        self.ask(|reply| Command::Cancel {
            target: RunRef::Workflow(workflow_id.to_owned()),
            reason,
            reply,
        })
        .await
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
        self.ask(|reply| Command::Migrate {
            run_id: run_id.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            vetted_events,
            reply,
        })
        .await
    }

    /// Sends the command `make` builds around a reply channel, and waits for its answer.
    async fn ask<T>(&self, make: impl FnOnce(Answer<T>) -> Command) -> Result<T, ServerError> {
        let (reply, rx) = oneshot::channel();
        self.send(make(Some(reply))).await?;
        rx.await.map_err(|_| ServerError::ShuttingDown)?
    }

    async fn send(&self, command: Command) -> Result<(), ServerError> {
        self.tx
            .send(command)
            .await
            .map_err(|_| ServerError::ShuttingDown)
    }
}

impl State {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
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

    pub(super) fn cache(&mut self, run_id: String, cached: CachedRun) {
        self.runs.put(run_id, cached);
    }

    /// Trims the cache to its size, least recently used first. Only between batches: a run
    /// stepped by the batch being built must stay cached until the batch commits, since
    /// rebuilding it from the store would miss its uncommitted steps (a child's result
    /// delivered in the batch that started the child was lost that way; the simulation found
    /// it).
    pub(super) fn evict(&mut self) {
        self.runs.trim();
    }
}
