//! [`WorkflowRun`]: one run of a workflow, driven one activation at a time.
//!
//! The guest runs on a wasmtime fiber. When it waits for something not yet known, the fiber
//! suspends and [`WorkflowRun::activate`] returns [`Activation::Suspended`]; the run keeps the
//! suspended instance (the fast path) until [`WorkflowRun::deliver`] brings a completion and
//! `activate` resumes it. A run can also be dropped at any point and rebuilt later from its
//! history with [`WorkflowRun::resume`] (the crash path); both give the same history.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use wasmtime::Store;
use weft_history::{
    DeliveryError, ErrorInfo, EventKind, History, Machine, MachineError, NonDeterminism, Payload,
    PendingOp, RunHeader,
};

use crate::clock::{Clock, SystemClock};
use crate::engine::{Engine, WorkflowModule};
use crate::host::{self, HostState, MemoryCap, RunShared, Stop, lock, wit};
use crate::log::{LogSink, tracing_sink};
use crate::stack::Probe;

/// Who a new run is and what it starts with.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    pub run_number: u32,
    pub input: Payload,
    /// Seed of the run's random generator; recorded in the history.
    pub seed: u64,
}

/// How a run meets the outside world.
#[derive(Clone)]
pub struct RunOptions {
    /// Live time for `now()` and event timestamps.
    pub clock: Arc<dyn Clock>,
    /// Where guest log lines go; `None` drops them.
    pub log_sink: Option<LogSink>,
    /// Also pass lines of the replayed part of the run to the sink (for debugging).
    pub logs_during_replay: bool,
    /// The replay debugger: called at the host calls that issue or consume chosen events.
    pub probe: Option<Probe>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            clock: Arc::new(SystemClock),
            log_sink: Some(tracing_sink()),
            logs_during_replay: false,
            probe: None,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Completed(Payload),
    Failed(ErrorInfo),
    ContinuedAsNew(Payload),
    /// Ended from outside, for this reason.
    Terminated {
        reason: String,
    },
}

/// What one activation ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Activation {
    /// The run waits for a delivery; its new commands are at the end of the history.
    Suspended,
    /// The run is closed.
    Finished(RunOutcome),
    /// Replay-only runs: the recorded history is used up and the run would go on.
    ReplayEnded,
}

/// Why a run could not go on. The history is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    NonDeterminism(#[from] NonDeterminism),
    #[error("history is inconsistent at event {seq}: {problem}")]
    CorruptHistory { seq: u64, problem: String },
    #[error(
        "history of run {run_id} is pinned to module {expected}, but module {actual} was given; \
         resume it on the module it started on (to vet a new version, use `weft replay`)"
    )]
    ModuleMismatch {
        run_id: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    History(#[from] weft_history::HistoryFileError),
    #[error("cannot instantiate the workflow ({0}); nothing was recorded, activate it again later")]
    Instantiate(String),
    #[error("engine failure: {0}")]
    Engine(String),
}

type GuestResult = wasmtime::Result<Result<Vec<u8>, wit::weft::workflow::types::ErrorInfo>>;
type GuestFuture = Pin<Box<dyn Future<Output = GuestResult> + Send>>;

/// One run of a workflow: its machine, and its guest instance while it has one.
pub struct WorkflowRun {
    shared: Arc<Mutex<RunShared>>,
    guest: Option<GuestFuture>,
    finished: Option<Activation>,
    fuel_per_activation: u64,
}

impl WorkflowRun {
    /// Starts a new run of `module`.
    pub fn start(
        engine: &Engine,
        module: &WorkflowModule,
        new: NewRun,
        options: RunOptions,
    ) -> Self {
        let header = RunHeader {
            workflow_id: new.workflow_id,
            run_id: new.run_id,
            workflow_type: new.workflow_type,
            task_queue: new.task_queue,
            run_number: new.run_number,
            module_sha256: module.sha256().to_owned(),
            input: new.input,
            seed: new.seed,
        };
        let history = History::start(header, options.clock.now_ms());
        Self::with_machine(engine, module, Machine::new(history), options)
    }

    /// Rebuilds a run from its history: the next [`activate`](Self::activate) replays it into
    /// a fresh instance, then goes on live. The module must be the one the run started on.
    pub fn resume(
        engine: &Engine,
        module: &WorkflowModule,
        history: History,
        options: RunOptions,
    ) -> Result<Self, RunError> {
        history.check()?;
        if history.header.module_sha256 != module.sha256() {
            return Err(RunError::ModuleMismatch {
                run_id: history.header.run_id,
                expected: history.header.module_sha256,
                actual: module.sha256().to_owned(),
            });
        }
        Ok(Self::with_machine(
            engine,
            module,
            Machine::new(history),
            options,
        ))
    }

    /// A run that only re-executes `history` on `module` (any version) to check it; it ends
    /// with [`Activation::ReplayEnded`] where the history ends.
    pub fn replay_only(
        engine: &Engine,
        module: &WorkflowModule,
        history: History,
        options: RunOptions,
    ) -> Result<Self, RunError> {
        history.check()?;
        Ok(Self::with_machine(
            engine,
            module,
            Machine::replay_only(history),
            options,
        ))
    }

    fn with_machine(
        engine: &Engine,
        module: &WorkflowModule,
        mut machine: Machine,
        options: RunOptions,
    ) -> Self {
        machine.set_limits(engine.config().limits);
        let input = machine.history().header.input.0.clone();
        let shared = new_shared(machine, options);
        let store = new_store(engine, shared.clone());
        let pre = module.pre().clone();
        let instantiate_failed = shared.clone();
        let guest: GuestFuture = Box::pin(async move {
            let mut store = store?;
            let instance = match pre.instantiate_async(&mut store).await {
                Ok(instance) => instance,
                Err(e) => {
                    // Not the workflow's doing (e.g. the instance pool is full): nothing is
                    // recorded, the run can be activated again later.
                    let message = format!("{e:#}");
                    lock(&instantiate_failed).stop = Some(Stop::Instantiate(message.clone()));
                    return Err(wasmtime::Error::msg(message));
                }
            };
            let run = instance.get_typed_func::<(Vec<u8>,), (Result<Vec<u8>, wit::weft::workflow::types::ErrorInfo>,)>(
                &mut store, "run",
            )?;
            let (result,) = run.call_async(&mut store, (input,)).await?;
            Ok(result)
        });
        WorkflowRun {
            shared,
            guest: Some(guest),
            finished: None,
            fuel_per_activation: engine.config().fuel_per_activation,
        }
    }

    /// Runs the guest until it waits for something not yet delivered, or ends.
    pub fn activate(&mut self) -> Result<Activation, RunError> {
        if let Some(done) = &self.finished {
            return Ok(done.clone());
        }
        let Some(guest) = self.guest.as_mut() else {
            return Err(RunError::Engine("the run has no guest instance".into()));
        };
        let result = match guest.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Pending => {
                self.trace("suspended");
                return Ok(Activation::Suspended);
            }
            Poll::Ready(result) => result,
        };
        // The guest is gone; the store (and its instance) is freed here.
        self.guest = None;
        let activation = self.close(result)?;
        self.trace("finished");
        self.finished = Some(activation.clone());
        Ok(activation)
    }

    fn trace(&self, what: &str) {
        let shared = lock(&self.shared);
        let history = shared.machine.history();
        tracing::debug!(
            workflow_id = %history.header.workflow_id,
            run_id = %history.header.run_id,
            event_seq = history.events.len(),
            "run {what}"
        );
    }

    /// Records how the guest ended, as the terminal event (or matches it on replay).
    fn close(&mut self, result: GuestResult) -> Result<Activation, RunError> {
        let mut shared = lock(&self.shared);
        crate::wasi::flush_output(&mut shared);
        let now = shared.clock.now_ms();
        let terminal = match (shared.stop.take(), result) {
            (Some(Stop::ContinueAsNew), _) => {
                let input = match shared.machine.history().terminal().map(|e| &e.kind) {
                    Some(EventKind::RunContinuedAsNew { input }) => input.clone(),
                    _ => return Err(RunError::Engine("continue-as-new left no event".into())),
                };
                return Ok(Activation::Finished(RunOutcome::ContinuedAsNew(input)));
            }
            (Some(Stop::Machine(MachineError::Misuse(message))), _) => {
                Err(ErrorInfo::new("HostCallMisuse", message))
            }
            (Some(Stop::Machine(MachineError::LimitExceeded(error))), _) => Err(error),
            (Some(Stop::Machine(error)), _) => return machine_error(error),
            (Some(Stop::CancelledInSleep), _) => Err(ErrorInfo::new(
                "Cancelled",
                "the run was cancelled during `sleep`; to clean up after a cancellation, wait on \
                 `ctx.timer(..)` instead, which returns the cancellation as an error",
            )),
            (Some(Stop::Instantiate(message)), _) => {
                return Err(RunError::Instantiate(message));
            }
            (Some(Stop::Forbidden(message)), _) => Err(ErrorInfo::new("ForbiddenCall", message)),
            (Some(Stop::Exit(message)), _) => Err(ErrorInfo::new("Exit", message)),
            (None, Ok(Ok(output))) => Ok(Payload(output)),
            (None, Ok(Err(error))) => Err(host::error_info_from_wit(error)),
            (None, Err(trap)) => Err(self.classify_trap(&shared, &trap)),
        };
        let recorded = match terminal {
            Ok(output) => shared
                .machine
                .complete(output.clone(), now)
                .map(|_| RunOutcome::Completed(output)),
            Err(error) => shared
                .machine
                .fail(error.clone(), now)
                .map(|_| RunOutcome::Failed(error)),
        };
        match recorded {
            Ok(outcome) => {
                // On replay the recorded terminal event is the truth (its message may differ).
                let outcome = match (
                    &outcome,
                    shared.machine.history().terminal().map(|e| &e.kind),
                ) {
                    (RunOutcome::Failed(_), Some(EventKind::RunFailed { error })) => {
                        RunOutcome::Failed(error.clone())
                    }
                    _ => outcome,
                };
                Ok(Activation::Finished(outcome))
            }
            Err(error) => machine_error(error),
        }
    }

    fn classify_trap(&self, shared: &RunShared, trap: &wasmtime::Error) -> ErrorInfo {
        if let Some((requested, cap)) = shared.memory_exceeded {
            return ErrorInfo::new(
                "MemoryLimitExceeded",
                format!(
                    "workflow exceeded its memory limit: it asked for {requested} bytes of linear memory, \
                     the limit is {cap} bytes (raise EngineConfig::max_memory_bytes, or keep less in workflow state)"
                ),
            );
        }
        if trap.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel) {
            return ErrorInfo::new(
                "CpuBudgetExceeded",
                format!(
                    "workflow exceeded its CPU budget of {} fuel units in one activation (between two waits); \
                     move heavy computation into an activity, or raise EngineConfig::fuel_per_activation",
                    self.fuel_per_activation
                ),
            );
        }
        if let Some(panic) = &shared.panic_message {
            // Where it panicked, when the module has DWARF (`weft build --debug`) to say so.
            let mut message = format!("workflow {panic}");
            for frame in shared.panic_stack.iter().filter(|f| f.line.is_some()) {
                message.push_str(&format!("\n    {frame}"));
            }
            return ErrorInfo::new("Panic", message);
        }
        if let Some((kind, message)) =
            crate::wasi::python_exception(&String::from_utf8_lossy(&shared.stderr_tail))
        {
            return ErrorInfo::new(kind, message);
        }
        let what = match trap.downcast_ref::<wasmtime::Trap>() {
            Some(t) => t.to_string(),
            None => format!("{trap:#}"),
        };
        ErrorInfo::new("Trap", format!("workflow trapped: {what}"))
    }

    /// Appends a delivery (a completion, a fired timer, a signal) to a live run. Call
    /// [`activate`](Self::activate) afterwards to let the guest see it.
    pub fn deliver(&mut self, delivery: EventKind) -> Result<u64, DeliveryError> {
        let mut shared = lock(&self.shared);
        let now = shared.clock.now_ms();
        shared.machine.deliver(delivery, now)
    }

    /// Ends the run from outside (the guest is dropped, not consulted) with `RunTerminated`.
    pub fn terminate(&mut self, reason: String) -> Result<u64, DeliveryError> {
        self.guest = None;
        let mut shared = lock(&self.shared);
        let now = shared.clock.now_ms();
        let seq = shared.machine.terminate(reason.clone(), now)?;
        drop(shared);
        self.finished = Some(Activation::Finished(RunOutcome::Terminated { reason }));
        Ok(seq)
    }

    /// The operations still waiting for a completion, by handle.
    pub fn pending(&self) -> Vec<(u32, PendingOp)> {
        lock(&self.shared).machine.pending()
    }

    /// True once the run has been asked to cancel (`RunCancelRequested` is in its history).
    pub fn cancel_requested(&self) -> bool {
        lock(&self.shared).machine.cancel_requested()
    }

    /// A copy of the history so far.
    pub fn history(&self) -> History {
        lock(&self.shared).machine.history().clone()
    }

    /// Calls `f` with the history so far, without copying it.
    pub fn with_history<R>(&self, f: impl FnOnce(&History) -> R) -> R {
        f(lock(&self.shared).machine.history())
    }

    /// Drops the guest instance (if any) and gives back the history: eviction.
    pub fn into_history(mut self) -> History {
        self.guest = None;
        match Arc::try_unwrap(self.shared) {
            Ok(mutex) => mutex
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .machine
                .into_history(),
            Err(shared) => lock(&shared).machine.history().clone(),
        }
    }

    /// How many recorded events replay has consumed so far.
    pub fn replayed_events(&self) -> usize {
        lock(&self.shared).machine.replayed_events()
    }
}

fn machine_error(error: MachineError) -> Result<Activation, RunError> {
    match error {
        MachineError::NonDeterminism(nd) => Err(RunError::NonDeterminism(nd)),
        // A terminated run ends where it was terminated: replay has nothing more to check.
        MachineError::ReplayEnded | MachineError::Terminated => Ok(Activation::ReplayEnded),
        MachineError::CorruptHistory { seq, problem } => {
            Err(RunError::CorruptHistory { seq, problem })
        }
        other => Err(RunError::Engine(other.to_string())),
    }
}

/// See [`Engine::instantiate_only`].
pub(crate) fn instantiate_only(engine: &Engine, module: &WorkflowModule) -> Result<(), String> {
    let header = RunHeader {
        workflow_id: String::new(),
        run_id: String::new(),
        workflow_type: String::new(),
        task_queue: String::new(),
        run_number: 1,
        module_sha256: module.sha256().to_owned(),
        input: Payload::null(),
        seed: 0,
    };
    let shared = new_shared(
        Machine::new(History::start(header, 0)),
        RunOptions::default(),
    );
    let mut store = new_store(engine, shared).map_err(|e| format!("{e:#}"))?;
    let mut instantiate = Box::pin(module.pre().instantiate_async(&mut store));
    match instantiate
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Ok(_)) => Ok(()),
        Poll::Ready(Err(e)) => Err(format!("{e:#}")),
        Poll::Pending => Err("instantiation suspended".into()),
    }
}

fn new_shared(machine: Machine, options: RunOptions) -> Arc<Mutex<RunShared>> {
    Arc::new(Mutex::new(RunShared {
        machine,
        clock: options.clock,
        log_sink: options.log_sink,
        logs_during_replay: options.logs_during_replay,
        panic_message: None,
        panic_stack: Vec::new(),
        probe: options.probe,
        stop: None,
        memory_exceeded: None,
        last_command_ms: 0,
        stdout_line: Vec::new(),
        stderr_line: Vec::new(),
        stderr_tail: Vec::new(),
    }))
}

/// A store for one run, with the memory cap and a full fuel tank.
fn new_store(engine: &Engine, shared: Arc<Mutex<RunShared>>) -> wasmtime::Result<Store<HostState>> {
    let fuel = engine.config().fuel_per_activation;
    let mut store = Store::new(
        engine.wasmtime(),
        HostState {
            shared: shared.clone(),
            limiter: MemoryCap {
                max_bytes: engine.config().max_memory_bytes,
                shared,
            },
            fuel_per_activation: fuel,
        },
    );
    store.limiter(|state| &mut state.limiter);
    store.set_fuel(fuel)?;
    Ok(store)
}
