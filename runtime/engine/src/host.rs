//! The `weft:workflow/host` functions: each one forwards to the run's [`Machine`].
//!
//! The store's data is a [`HostState`] whose [`RunShared`] is also held by the
//! [`WorkflowRun`](crate::WorkflowRun), so deliveries can reach a run whose guest is suspended
//! inside `wait-any` (the suspended guest owns the store, the driver owns the run).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use wasmtime::StoreContextMut;
use wasmtime::component::Linker;
use weft_history::{Machine, MachineError, ParentClosePolicy, Payload, Wait};

use crate::clock::Clock;
use crate::log::{LogRecord, LogSink};
use crate::stack::{self, GuestFrame, Probe, ProbeHit};

#[allow(dead_code, missing_docs, clippy::all)]
pub(crate) mod wit {
    wasmtime::component::bindgen!({ path: "../../wit", world: "workflow" });
}

use wit::weft::workflow::types as t;

/// The package and version of the host interface the engine provides.
pub const HOST_INTERFACE: &str = "weft:workflow/host@0.1.0";

/// Why the host stopped the guest with a trap.
#[derive(Debug)]
pub(crate) enum Stop {
    Machine(MachineError),
    ContinueAsNew,
    /// The run was cancelled while the guest was in `sleep`, which cannot return an error.
    CancelledInSleep,
    /// The instance could not be created; not the guest's doing.
    Instantiate(String),
    /// The guest made a call the sandbox refuses (a socket, `time.sleep`): the message says
    /// what to use instead.
    Forbidden(String),
    /// The guest called `wasi:cli/exit`.
    Exit(String),
}

/// State of one run, shared between the suspended guest and its driver.
pub(crate) struct RunShared {
    pub machine: Machine,
    pub clock: Arc<dyn Clock>,
    pub log_sink: Option<LogSink>,
    pub logs_during_replay: bool,
    /// The last "panicked at ..." line the guest logged, quoted if it then traps.
    pub panic_message: Option<String>,
    /// The guest's stack where it logged that line.
    pub panic_stack: Vec<GuestFrame>,
    /// The replay debugger's stops, if it is on.
    pub probe: Option<Probe>,
    pub stop: Option<Stop>,
    /// Set when the guest tried to grow memory past the cap: (requested, cap).
    pub memory_exceeded: Option<(usize, usize)>,
    /// The timestamp of the last command the guest issued: the guest clock (WASI monotonic
    /// time), the same live and on replay.
    pub last_command_ms: u64,
    /// Unterminated stdout and stderr lines (WASI guests), logged once complete.
    pub stdout_line: Vec<u8>,
    pub stderr_line: Vec<u8>,
    /// The last bytes the guest wrote to stderr, quoted if it then traps (a Python traceback).
    pub stderr_tail: Vec<u8>,
}

impl RunShared {
    /// The guest clock in ms: when the run started, then the time of each command the guest
    /// issues. Reading it records nothing.
    pub fn guest_time_ms(&self) -> u64 {
        let started = self
            .machine
            .history()
            .events
            .first()
            .map_or(0, |e| e.timestamp_ms);
        self.last_command_ms.max(started)
    }

    /// Turns a machine error into a trap, remembering why.
    fn stop(&mut self, error: MachineError) -> wasmtime::Error {
        let message = format!("weft host stopped the workflow: {error}");
        self.stop = Some(Stop::Machine(error));
        wasmtime::Error::msg(message)
    }
}

/// Caps linear memory; remembers an attempt to exceed the cap.
pub(crate) struct MemoryCap {
    pub max_bytes: usize,
    pub shared: Arc<Mutex<RunShared>>,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            lock(&self.shared).memory_exceeded = Some((desired, self.max_bytes));
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} bytes exceeded",
                self.max_bytes
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The data of a run's store.
pub(crate) struct HostState {
    pub shared: Arc<Mutex<RunShared>>,
    pub limiter: MemoryCap,
    pub fuel_per_activation: u64,
}

/// Locks the shared state. A poisoned lock means a host function panicked, which is a bug in
/// weft; the state is still the last consistent one, so go on with it.
pub(crate) fn lock(shared: &Mutex<RunShared>) -> MutexGuard<'_, RunShared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs one machine call for a host function, trapping the guest on a machine error.
pub(crate) fn with_machine<R>(
    store: &StoreContextMut<'_, HostState>,
    call: &'static str,
    f: impl FnOnce(&mut Machine, u64) -> Result<R, MachineError>,
) -> wasmtime::Result<R> {
    let mut shared = lock(&store.data().shared);
    let now = shared.clock.now_ms();
    let before = shared.machine.replayed_events();
    let result = f(&mut shared.machine, now);
    after_call(store, &mut shared, call, before, result)
}

/// What every machine call ends with: the debugger's stops for the events the call issued or
/// consumed, and on a divergence the guest's stack in the error.
fn after_call<R>(
    store: impl wasmtime::AsContext,
    shared: &mut RunShared,
    call: &'static str,
    before: usize,
    result: Result<R, MachineError>,
) -> wasmtime::Result<R> {
    let after = shared.machine.replayed_events();
    // The command just issued (live) or matched (replay): the same event either way. Only
    // commands count: a call may move the replay cursor over deliveries too (a `patched`
    // answered false, say), which the live run had not seen at this point.
    let issued = shared
        .machine
        .history()
        .events
        .get(before..after)
        .unwrap_or_default()
        .iter()
        .rev()
        .find(|e| e.kind.role() == weft_history::EventRole::Command)
        .map(|e| e.timestamp_ms);
    if let Some(ms) = issued {
        shared.last_command_ms = shared.last_command_ms.max(ms);
    }
    if let Some(probe) = &shared.probe {
        let events = &shared.machine.history().events;
        let picked: Vec<_> = events
            .get(before..after)
            .unwrap_or_default()
            .iter()
            .filter(|e| (probe.wants)(e))
            .cloned()
            .collect();
        if !picked.is_empty() {
            let frames = stack::capture(&store);
            for event in picked {
                (probe.hit)(ProbeHit {
                    event,
                    host_call: call,
                    stack: frames.clone(),
                });
            }
        }
    }
    match result {
        Ok(r) => Ok(r),
        Err(MachineError::NonDeterminism(mut nd)) => {
            nd.guest_stack = stack::capture(&store)
                .iter()
                .map(ToString::to_string)
                .collect();
            Err(shared.stop(MachineError::NonDeterminism(nd)))
        }
        Err(e) => Err(shared.stop(e)),
    }
}

/// Waits (durably) until one of `handles` completes. Suspends the guest while the machine
/// says it is blocked; a wait that had to be waited for starts a new activation, with a
/// fresh fuel budget.
fn wait_on<'a>(
    mut store: StoreContextMut<'a, HostState>,
    handles: Vec<u32>,
) -> impl Future<Output = wasmtime::Result<(u32, t::Completion)>> + Send + 'a {
    let mut suspended = false;
    std::future::poll_fn(move |_cx| {
        let shared = store.data().shared.clone();
        let mut shared = lock(&shared);
        let before = shared.machine.replayed_events();
        let waited = shared.machine.wait_any(&handles);
        let waited = after_call(&store, &mut shared, "wait-any", before, waited);
        match waited {
            Ok(Wait::Ready {
                index,
                completion,
                new_activation,
            }) => {
                drop(shared);
                if suspended || new_activation {
                    let fuel = store.data().fuel_per_activation;
                    store.set_fuel(fuel)?;
                }
                Poll::Ready(Ok((index, completion_to_wit(completion))))
            }
            Ok(Wait::Blocked) => {
                suspended = true;
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    })
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let mut host = linker.instance(HOST_INTERFACE)?;
    host.func_wrap("now", |store, (): ()| {
        with_machine(&store, "now", |m, now| m.now(now)).map(|t| (t,))
    })?;
    host.func_wrap("random-u64", |store, (): ()| {
        Ok((lock(&store.data().shared).machine.random_u64(),))
    })?;
    host.func_wrap_async("sleep", |store, (duration_ms,): (u64,)| {
        Box::new(async move {
            let timer = with_machine(&store, "sleep", |m, now| m.start_timer(duration_ms, now))?;
            let shared = store.data().shared.clone();
            match wait_on(store, vec![timer]).await? {
                (_, t::Completion::Err(t::Failure::Cancelled)) => {
                    lock(&shared).stop = Some(Stop::CancelledInSleep);
                    Err(wasmtime::Error::msg("the run was cancelled during sleep"))
                }
                _ => Ok(()),
            }
        })
    })?;
    host.func_wrap(
        "start-activity",
        |store, (name, input, options): (String, Vec<u8>, t::ActivityOptions)| {
            let options = activity_options_from_wit(options);
            with_machine(&store, "start-activity", |m, now| {
                m.start_activity(name, Payload(input), options, now)
            })
            .map(|h| (h,))
        },
    )?;
    host.func_wrap(
        "start-activity-ext",
        |store,
         (name, input, options, ext): (
            String,
            Vec<u8>,
            t::ActivityOptions,
            t::ActivityOptionsExt,
        )| {
            let mut options = activity_options_from_wit(options);
            options.schedule_to_start_timeout_ms = ext.schedule_to_start_timeout_ms;
            with_machine(&store, "start-activity", |m, now| {
                m.start_activity(name, Payload(input), options, now)
            })
            .map(|h| (h,))
        },
    )?;
    host.func_wrap("start-timer", |store, (duration_ms,): (u64,)| {
        with_machine(&store, "start-timer", |m, now| {
            m.start_timer(duration_ms, now)
        })
        .map(|h| (h,))
    })?;
    host.func_wrap(
        "start-child-workflow",
        |store, (workflow_type, input, options): (String, Vec<u8>, t::ChildOptions)| {
            start_child(&store, workflow_type, input, options, None)
        },
    )?;
    host.func_wrap(
        "start-child-workflow-ext",
        |store,
         (workflow_type, input, options, ext): (
            String,
            Vec<u8>,
            t::ChildOptions,
            t::ChildOptionsExt,
        )| {
            let policy = ext.parent_close_policy.map(|p| match p {
                t::ParentClosePolicy::Terminate => ParentClosePolicy::Terminate,
                t::ParentClosePolicy::RequestCancel => ParentClosePolicy::RequestCancel,
                t::ParentClosePolicy::Abandon => ParentClosePolicy::Abandon,
            });
            start_child(&store, workflow_type, input, options, policy)
        },
    )?;
    host.func_wrap("next-signal", |store, (name,): (String,)| {
        with_machine(&store, "next-signal", |m, now| m.next_signal(name, now)).map(|h| (h,))
    })?;
    host.func_wrap("cancel", |store, (handle,): (u32,)| {
        with_machine(&store, "cancel", |m, now| m.cancel(handle, now))
    })?;
    host.func_wrap_async("wait-any", |store, (handles,): (Vec<u32>,)| {
        Box::new(async move { wait_on(store, handles).await.map(|r| (r,)) })
    })?;
    host.func_wrap("log", |store, (level, message): (t::LogLevel, String)| {
        let mut shared = lock(&store.data().shared);
        if matches!(level, t::LogLevel::Error) && message.starts_with("panicked at ") {
            shared.panic_message = Some(message.clone());
            shared.panic_stack = stack::capture(&store);
        }
        emit_log(&shared, log_level_from_wit(level), message);
        Ok(())
    })?;
    host.func_wrap("info", |store, (): ()| {
        let shared = lock(&store.data().shared);
        let h = &shared.machine.history().header;
        Ok((t::WorkflowInfo {
            workflow_id: h.workflow_id.clone(),
            run_id: h.run_id.clone(),
            workflow_type: h.workflow_type.clone(),
            task_queue: h.task_queue.clone(),
            run_number: h.run_number,
        },))
    })?;
    host.func_wrap("patched", |store, (change_id,): (String,)| {
        with_machine(&store, "patched", |m, now| m.patched(change_id, now)).map(|p| (p,))
    })?;
    host.func_wrap("continue-as-new", |store, (input,): (Vec<u8>,)| {
        with_machine(&store, "continue-as-new", |m, now| {
            m.continue_as_new(Payload(input), now)
        })?;
        lock(&store.data().shared).stop = Some(Stop::ContinueAsNew);
        Err::<(), _>(wasmtime::Error::msg("continue-as-new ends the run"))
    })?;
    Ok(())
}

/// Hands a guest's log line to the sink: live always, on replay only if asked for.
pub(crate) fn emit_log(shared: &RunShared, level: crate::log::LogLevel, message: String) {
    let replaying = shared.machine.is_replaying();
    if let Some(sink) = &shared.log_sink
        && (!replaying || shared.logs_during_replay)
    {
        sink(&LogRecord {
            level,
            message,
            replaying,
            after_event: shared.machine.replayed_events() as u64,
            workflow_id: shared.machine.history().header.workflow_id.clone(),
            run_id: shared.machine.history().header.run_id.clone(),
        });
    }
}

/// `start-child-workflow` and its `-ext`, which adds the parent close policy.
fn start_child(
    store: &StoreContextMut<'_, HostState>,
    workflow_type: String,
    input: Vec<u8>,
    options: t::ChildOptions,
    policy: Option<ParentClosePolicy>,
) -> wasmtime::Result<(u32,)> {
    with_machine(store, "start-child-workflow", |m, now| {
        m.start_child(
            workflow_type,
            Payload(input),
            options.workflow_id,
            options.task_queue,
            policy,
            now,
        )
    })
    .map(|h| (h,))
}

fn log_level_from_wit(level: t::LogLevel) -> crate::log::LogLevel {
    use crate::log::LogLevel as L;
    match level {
        t::LogLevel::Trace => L::Trace,
        t::LogLevel::Debug => L::Debug,
        t::LogLevel::Info => L::Info,
        t::LogLevel::Warn => L::Warn,
        t::LogLevel::Error => L::Error,
    }
}

fn activity_options_from_wit(o: t::ActivityOptions) -> weft_history::ActivityOptions {
    weft_history::ActivityOptions {
        task_queue: o.task_queue,
        start_to_close_timeout_ms: o.start_to_close_timeout_ms,
        schedule_to_close_timeout_ms: o.schedule_to_close_timeout_ms,
        heartbeat_timeout_ms: o.heartbeat_timeout_ms,
        schedule_to_start_timeout_ms: None,
        retry: o.retry.map(|r| weft_history::RetryPolicy {
            initial_interval_ms: r.initial_interval_ms,
            backoff_coefficient: r.backoff_coefficient,
            maximum_interval_ms: r.maximum_interval_ms,
            maximum_attempts: r.maximum_attempts,
            non_retryable_errors: r.non_retryable_errors,
        }),
    }
}

fn error_info_to_wit(e: weft_history::ErrorInfo) -> t::ErrorInfo {
    t::ErrorInfo {
        kind: e.kind,
        message: e.message,
        attempts: e.attempts,
    }
}

pub(crate) fn error_info_from_wit(e: t::ErrorInfo) -> weft_history::ErrorInfo {
    weft_history::ErrorInfo {
        kind: e.kind,
        message: e.message,
        attempts: e.attempts,
    }
}

fn completion_to_wit(c: weft_history::Completion) -> t::Completion {
    use weft_history::{Completion as C, Failure as F};
    match c {
        C::Ok(payload) => t::Completion::Ok(payload.0),
        C::Err(failure) => t::Completion::Err(match failure {
            F::ActivityFailed(e) => t::Failure::ActivityFailed(error_info_to_wit(e)),
            F::ChildFailed(e) => t::Failure::ChildFailed(error_info_to_wit(e)),
            F::TimedOut(what) => t::Failure::TimedOut(what),
            F::Cancelled => t::Failure::Cancelled,
        }),
    }
}
