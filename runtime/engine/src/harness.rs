//! Run a workflow to completion in-process: activities are Rust closures, timers fire at once
//! in workflow time (time skipping), children run in the same harness.
//!
//! This is the unit-test harness for workflow authors and the engine behind `weft run`. It
//! does not retry activities (that is the server's job): a failing closure fails the activity.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_history::{
    Completion, DeliveryError, Effect, Effects, ErrorInfo, EventKind, Failure, Handle, History,
    Payload, splitmix64,
};

use crate::clock::{Clock, ManualClock};
use crate::engine::{Engine, WorkflowModule};
use crate::log::LogSink;
use crate::run::{Activation, NewRun, RunError, RunOptions, RunOutcome, WorkflowRun};

/// An activity implementation: input payload in, output payload or error out.
pub type ActivityFn = Box<dyn FnMut(&Payload) -> Result<Payload, ErrorInfo> + Send>;

/// How the harness keeps a run between activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeMode {
    /// Keep the suspended instance in memory (the fast path).
    KeepInstance,
    /// Drop the instance after every activation and rebuild it by replaying the history
    /// (the crash path, taken at every step).
    ReplayEachActivation,
}

/// Why the harness could not finish a run.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("no module is registered for workflow type `{0}`")]
    UnknownWorkflowType(String),
    #[error(
        "workflow {workflow_id} is blocked on {waiting} and nothing can complete it (no timer pending, no signal scheduled)"
    )]
    Stuck {
        workflow_id: String,
        waiting: String,
    },
    #[error("delivery refused: {0}")]
    Delivery(#[from] DeliveryError),
    #[error("workflow {workflow_id} did not finish within {limit} activations")]
    TooManyActivations { workflow_id: String, limit: u32 },
}

/// What a finished workflow left: the outcome of its last run and every run's history
/// (more than one with continue-as-new), plus its children's.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub outcome: RunOutcome,
    pub runs: Vec<History>,
    pub children: Vec<History>,
}

impl RunReport {
    /// The history of the last run.
    pub fn history(&self) -> &History {
        self.runs.last().expect("a report has at least one run")
    }
}

/// A child started by a run, waiting for the harness to run it, and what its parent asked of
/// it meanwhile.
struct Kid {
    handle: Handle,
    workflow_type: String,
    workflow_id: String,
    task_queue: Option<String>,
    input: Payload,
    fate: Fate,
}

/// What happens to a child once it has started.
#[derive(Clone, Debug, PartialEq)]
enum Fate {
    Run,
    /// Asked to cancel (`RunCancelRequested`) at its first wait.
    Cancel(String),
    /// Terminated at its first wait.
    Terminate(String),
}

struct ScheduledSignal {
    at_offset_ms: u64,
    sent: bool,
    name: String,
    payload: Payload,
}

/// The in-process runner. Register modules and activities, then [`Harness::run`].
pub struct Harness {
    engine: Engine,
    modules: HashMap<String, WorkflowModule>,
    activities: HashMap<String, ActivityFn>,
    signals: Vec<ScheduledSignal>,
    mode: ResumeMode,
    clock: ManualClock,
    seed: u64,
    log_sink: Option<LogSink>,
    max_activations: u32,
    runs_started: u64,
}

impl Harness {
    /// A harness on `engine` whose workflow time starts at `start_ms` and whose run ids and
    /// seeds derive from `seed` (same seed, same histories).
    pub fn new(engine: Engine, start_ms: u64, seed: u64) -> Self {
        Harness {
            engine,
            modules: HashMap::new(),
            activities: HashMap::new(),
            signals: Vec::new(),
            mode: ResumeMode::KeepInstance,
            clock: ManualClock::new(start_ms),
            seed,
            log_sink: None,
            max_activations: 100_000,
            runs_started: 0,
        }
    }

    /// Registers `module` as the newest module of `workflow_type`.
    pub fn register(&mut self, workflow_type: &str, module: WorkflowModule) -> &mut Self {
        self.modules.insert(workflow_type.to_owned(), module);
        self
    }

    /// Implements activity `name` with a raw closure.
    pub fn raw_activity(
        &mut self,
        name: &str,
        f: impl FnMut(&Payload) -> Result<Payload, ErrorInfo> + Send + 'static,
    ) -> &mut Self {
        self.activities.insert(name.to_owned(), Box::new(f));
        self
    }

    /// Implements activity `name` with a typed closure (JSON in and out).
    pub fn activity<I: DeserializeOwned, O: Serialize>(
        &mut self,
        name: &str,
        mut f: impl FnMut(I) -> Result<O, ErrorInfo> + Send + 'static,
    ) -> &mut Self {
        let activity = name.to_owned();
        self.raw_activity(name, move |input| {
            let input: I = serde_json::from_slice(&input.0).map_err(|e| {
                ErrorInfo::new(
                    "BadInput",
                    format!("input of `{activity}` does not decode: {e}"),
                )
            })?;
            let output = f(input)?;
            serde_json::to_vec(&output).map(Payload).map_err(|e| {
                ErrorInfo::new(
                    "BadOutput",
                    format!("output of `{activity}` does not encode: {e}"),
                )
            })
        })
    }

    /// Sends signal `name` with `payload` `at_offset_ms` of workflow time after the harness
    /// started (0: at the first wait).
    pub fn signal(&mut self, name: &str, payload: Payload, at_offset_ms: u64) -> &mut Self {
        self.signals.push(ScheduledSignal {
            at_offset_ms,
            sent: false,
            name: name.to_owned(),
            payload,
        });
        self
    }

    /// How runs are kept between activations.
    pub fn mode(&mut self, mode: ResumeMode) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Where guest log lines go (default: nowhere).
    pub fn log_sink(&mut self, sink: LogSink) -> &mut Self {
        self.log_sink = Some(sink);
        self
    }

    /// Runs workflow `workflow_type` with id `workflow_id` to the end, following
    /// continue-as-new.
    pub fn run(
        &mut self,
        workflow_type: &str,
        workflow_id: &str,
        input: Payload,
    ) -> Result<RunReport, HarnessError> {
        let start = self.clock.now_ms();
        self.run_chain(
            workflow_type,
            workflow_id,
            "default",
            input,
            Some(start),
            Fate::Run,
        )
    }

    fn run_chain(
        &mut self,
        workflow_type: &str,
        workflow_id: &str,
        task_queue: &str,
        mut input: Payload,
        signals_epoch_ms: Option<u64>,
        mut fate: Fate,
    ) -> Result<RunReport, HarnessError> {
        let mut runs = Vec::new();
        let mut children = Vec::new();
        for run_number in 1.. {
            let module = self
                .modules
                .get(workflow_type)
                .cloned()
                .ok_or_else(|| HarnessError::UnknownWorkflowType(workflow_type.to_owned()))?;
            self.runs_started += 1;
            let id_bits = splitmix64(self.seed ^ self.runs_started);
            let new = NewRun {
                workflow_id: workflow_id.to_owned(),
                run_id: format!("{id_bits:016x}"),
                workflow_type: workflow_type.to_owned(),
                task_queue: task_queue.to_owned(),
                run_number,
                input,
                seed: splitmix64(id_bits),
            };
            let (outcome, history, kids) = self.drive(
                &module,
                new,
                signals_epoch_ms,
                std::mem::replace(&mut fate, Fate::Run),
            )?;
            runs.push(history);
            children.extend(kids);
            match outcome {
                RunOutcome::ContinuedAsNew(next) => input = next,
                outcome => {
                    return Ok(RunReport {
                        outcome,
                        runs,
                        children,
                    });
                }
            }
        }
        unreachable!("the loop returns")
    }

    fn options(&self) -> RunOptions {
        RunOptions {
            clock: Arc::new(self.clock.clone()),
            log_sink: self.log_sink.clone(),
            logs_during_replay: false,
            probe: None,
        }
    }

    /// Runs one run to its terminal event. Scheduled signals go to the top-level workflow
    /// only (`signals_epoch_ms` is its start), never to children. Children run in the harness
    /// one after another, each to its end, when their parent next waits (or closes).
    fn drive(
        &mut self,
        module: &WorkflowModule,
        new: NewRun,
        signals_epoch_ms: Option<u64>,
        mut fate: Fate,
    ) -> Result<(RunOutcome, History, Vec<History>), HarnessError> {
        let workflow_id = new.workflow_id.clone();
        let parent_queue = new.task_queue.clone();
        let mut run = WorkflowRun::start(&self.engine, module, new, self.options());
        let mut seen = 0;
        let mut effects = Effects::new();
        let mut timers: Vec<(u64, Handle)> = Vec::new();
        let mut activities: Vec<(Handle, String, Payload)> = Vec::new();
        let mut kids: Vec<Kid> = Vec::new();
        let mut children = Vec::new();
        for _ in 0..self.max_activations {
            let mut finished = match run.activate()? {
                Activation::Finished(outcome) => Some(outcome),
                Activation::ReplayEnded => {
                    return Err(RunError::Engine("a live run reached replay's end".into()).into());
                }
                Activation::Suspended => None,
            };
            // What its parent asked of a child happens at its first wait.
            let mut asked = false;
            if finished.is_none() {
                match std::mem::replace(&mut fate, Fate::Run) {
                    Fate::Run => {}
                    Fate::Cancel(reason) => {
                        run.deliver(EventKind::RunCancelRequested { reason })?;
                        asked = true;
                    }
                    Fate::Terminate(reason) => {
                        run.terminate(reason.clone())?;
                        finished = Some(RunOutcome::Terminated { reason });
                    }
                }
            }
            let new_events = run.with_history(|h| h.events[seen..].to_vec());
            seen += new_events.len();
            let mut deliveries = Vec::new();
            for event in &new_events {
                for effect in effects.next(event) {
                    match effect {
                        Effect::ScheduleActivity {
                            handle,
                            name,
                            input,
                            ..
                        } => activities.push((handle, name, input)),
                        Effect::DropTask { handle } => activities.retain(|a| a.0 != handle),
                        Effect::StartTimer { handle, fire_at_ms } => {
                            timers.push((fire_at_ms, handle))
                        }
                        Effect::DropTimer { handle } => timers.retain(|(_, h)| *h != handle),
                        Effect::StartChild {
                            handle,
                            workflow_type,
                            workflow_id,
                            task_queue,
                            input,
                        } => kids.push(Kid {
                            handle,
                            workflow_type,
                            workflow_id,
                            task_queue,
                            input,
                            fate: Fate::Run,
                        }),
                        Effect::CancelChild { handle, why, .. } => {
                            let reason = why.reason(&workflow_id);
                            kids.iter_mut()
                                .filter(|k| k.handle == handle)
                                .for_each(|k| k.fate = Fate::Cancel(reason.clone()));
                        }
                        Effect::TerminateChild { handle, .. } => {
                            let reason = weft_history::terminated_by_parent(&workflow_id);
                            kids.iter_mut()
                                .filter(|k| k.handle == handle)
                                .for_each(|k| k.fate = Fate::Terminate(reason.clone()));
                        }
                        Effect::Deliver { delivery } => deliveries.push(delivery),
                    }
                }
            }
            if let Some(outcome) = finished {
                // Children it started and did not wait for go their way (their policies).
                for kid in std::mem::take(&mut kids) {
                    let queue = kid
                        .task_queue
                        .clone()
                        .unwrap_or_else(|| parent_queue.clone());
                    if let Ok(report) = self.run_kid(kid, &queue)? {
                        children.extend(report.runs);
                        children.extend(report.children);
                    }
                }
                return Ok((outcome, run.into_history(), children));
            }
            let completed_cancels = asked || !deliveries.is_empty();
            for delivery in deliveries {
                run.deliver(delivery)?;
            }
            // Zero-time work first: activities, children and signals already due.
            let now = self.clock.now_ms();
            let mut delivered = completed_cancels;
            if let Some(epoch) = signals_epoch_ms {
                for s in self.signals.iter_mut() {
                    if !s.sent && epoch.saturating_add(s.at_offset_ms) <= now {
                        s.sent = true;
                        run.deliver(EventKind::SignalReceived {
                            name: s.name.clone(),
                            payload: s.payload.clone(),
                        })?;
                        delivered = true;
                    }
                }
            }
            for (handle, name, input) in std::mem::take(&mut activities) {
                let completion = match self.activities.get_mut(&name) {
                    Some(f) => match f(&input) {
                        Ok(output) => Completion::Ok(output),
                        Err(error) => Completion::Err(Failure::ActivityFailed(error)),
                    },
                    None => Completion::Err(Failure::ActivityFailed(ErrorInfo::new(
                        "ActivityNotRegistered",
                        format!("no implementation of activity `{name}` is registered"),
                    ))),
                };
                run.deliver(EventKind::ActivityCompleted { handle, completion })?;
                delivered = true;
            }
            for kid in std::mem::take(&mut kids) {
                let handle = kid.handle;
                let queue = kid
                    .task_queue
                    .clone()
                    .unwrap_or_else(|| parent_queue.clone());
                let completion = match self.run_kid(kid, &queue)? {
                    Ok(report) => {
                        children.extend(report.runs);
                        children.extend(report.children);
                        match report.outcome {
                            RunOutcome::Completed(output) => Completion::Ok(output),
                            RunOutcome::Failed(error) => {
                                Completion::Err(Failure::ChildFailed(error))
                            }
                            RunOutcome::Terminated { reason } => Completion::Err(
                                Failure::ChildFailed(ErrorInfo::new("Terminated", reason)),
                            ),
                            RunOutcome::ContinuedAsNew(_) => {
                                unreachable!("a chain ends with its last run's outcome")
                            }
                        }
                    }
                    Err(completion) => completion,
                };
                // A handle cancelled meanwhile was completed as cancelled already.
                if effects.awaits_result(handle) {
                    run.deliver(EventKind::ChildWorkflowCompleted { handle, completion })?;
                    delivered = true;
                }
            }
            if !delivered {
                // Skip time to the next timer or scheduled signal.
                let next_timer = timers.iter().map(|(at, _)| *at).min();
                let next_signal = signals_epoch_ms.and_then(|epoch| {
                    self.signals
                        .iter()
                        .filter(|s| !s.sent)
                        .map(|s| epoch.saturating_add(s.at_offset_ms))
                        .min()
                });
                let Some(at) = next_timer.into_iter().chain(next_signal).min() else {
                    return Err(HarnessError::Stuck {
                        workflow_id,
                        waiting: "a signal or an operation".into(),
                    });
                };
                self.clock.advance_to(at);
                if next_timer == Some(at) {
                    timers.sort();
                    let (_, handle) = timers.remove(0);
                    run.deliver(EventKind::TimerFired { handle })?;
                }
                // A due signal goes out at the next round, before any later timer.
            }
            if self.mode == ResumeMode::ReplayEachActivation {
                let history = run.into_history();
                run = WorkflowRun::resume(&self.engine, module, history, self.options())?;
            }
        }
        Err(HarnessError::TooManyActivations {
            workflow_id,
            limit: self.max_activations,
        })
    }

    /// Runs a child to its end: its report, or the completion its parent gets for a child
    /// that could not start.
    fn run_kid(
        &mut self,
        kid: Kid,
        queue: &str,
    ) -> Result<Result<RunReport, Completion>, HarnessError> {
        match self.run_chain(
            &kid.workflow_type,
            &kid.workflow_id,
            queue,
            kid.input,
            None,
            kid.fate,
        ) {
            Ok(report) => Ok(Ok(report)),
            Err(HarnessError::UnknownWorkflowType(t)) => {
                Ok(Err(Completion::Err(Failure::ChildFailed(ErrorInfo::new(
                    "UnknownWorkflowType",
                    format!("no module is registered for workflow type `{t}`"),
                )))))
            }
            Err(other) => Err(other),
        }
    }
}
