//! The replay state machine: the single place where a run's commands meet its history.
//!
//! The engine forwards every host call of the guest here. While recorded events remain, each
//! command is matched against the next recorded command (a mismatch is a [`NonDeterminism`]) and
//! its result is read from history; recorded deliveries are fed in at the points where the
//! original run was waiting for them. Past the end of the history the run is live: commands
//! append new events and deliveries come from [`Machine::deliver`].
//!
//! Which completion `wait-any` returns is a function of the history alone: among the handles
//! asked for, the one whose completion has the lowest event sequence number among those already
//! delivered. Replay delivers events no later than the original run did, so it makes the same
//! choice (see ARCHITECTURE.md, "Why replay picks the same completion").

use std::collections::VecDeque;
use std::fmt;

use crate::event::{EventKind, EventRole, Handle, ParentClosePolicy};
use crate::file::History;
use crate::payload::{Completion, Failure, Payload};

/// A replayed command differs from the recorded one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonDeterminism {
    /// Sequence number of the recorded event that did not match.
    pub seq: u64,
    /// The recorded event, as one line.
    pub recorded: String,
    /// What the workflow did instead, as one line.
    pub new: String,
    /// The guest's call stack at the host call that diverged, innermost frame first, one
    /// `function (file:line)` per entry; the engine fills it in, empty where unknown.
    pub guest_stack: Vec<String>,
}

impl NonDeterminism {
    /// A divergence at `seq`, its stack not known yet.
    pub fn new(seq: u64, recorded: String, new: String) -> Self {
        NonDeterminism {
            seq,
            recorded,
            new,
            guest_stack: Vec::new(),
        }
    }
}

impl std::error::Error for NonDeterminism {}

impl fmt::Display for NonDeterminism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "non-determinism at event {}: the history has `{}` but the workflow now does `{}`; \
             the workflow code changed in a way that breaks runs started on the old code (put the \
             change behind `ctx.patched(\"change-id\")`, or start new runs on the new module)",
            self.seq, self.recorded, self.new
        )?;
        if !self.guest_stack.is_empty() {
            f.write_str("\nthe workflow made that call at:")?;
            for frame in &self.guest_stack {
                write!(f, "\n    {frame}")?;
            }
        }
        Ok(())
    }
}

/// Why the machine refused a command of the guest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    NonDeterminism(#[from] NonDeterminism),
    /// Replay-only mode reached the end of the history with the run still going.
    #[error("replay reached the end of the recorded history")]
    ReplayEnded,
    /// The recorded history contradicts itself (a completion for an unknown handle, ...).
    #[error("history is inconsistent at event {seq}: {problem}")]
    CorruptHistory { seq: u64, problem: String },
    /// The guest used the host API wrongly; deterministic, so it fails the run.
    #[error("{0}")]
    Misuse(String),
    /// The run already has its terminal event.
    #[error("the run is closed")]
    Closed,
    /// Replay reached the point where the run was terminated from outside.
    #[error("the run was terminated here")]
    Terminated,
    /// The command would take the run past one of its [`Limits`]; the run fails with this
    /// error (kind [`LIMIT_EXCEEDED`]).
    #[error("{}", .0.message)]
    LimitExceeded(crate::payload::ErrorInfo),
}

/// The error kind of a run stopped by one of its [`Limits`].
pub const LIMIT_EXCEEDED: &str = "LimitExceeded";

/// How far one run may grow. Checked when the run goes on live; a replay follows what was
/// recorded, so lowering a limit never breaks the replay of a run that passed it before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Events in the history.
    pub max_events: u64,
    /// Activities started and not completed.
    pub max_pending_activities: u32,
    /// Timers started and not fired.
    pub max_pending_timers: u32,
    /// Child workflows started and not closed.
    pub max_pending_children: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events: 51_200,
            max_pending_activities: 2_000,
            max_pending_timers: 2_000,
            max_pending_children: 2_000,
        }
    }
}

/// Why a delivery from the outside world was refused. Nothing was appended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("run is closed; the delivery is dropped")]
    RunClosed,
    #[error("run is still replaying its history; activate it before delivering")]
    Replaying,
    #[error("{0} is not a delivery (only completions, fired timers and signals are)")]
    NotADelivery(&'static str),
    #[error("no operation with handle {0}")]
    UnknownHandle(Handle),
    #[error("handle {handle} is a {actual}, not a {expected}")]
    WrongKind {
        handle: Handle,
        actual: &'static str,
        expected: &'static str,
    },
    #[error("handle {0} already completed (a duplicate or late delivery)")]
    AlreadyCompleted(Handle),
}

/// What `wait-any` found.
#[derive(Clone, Debug, PartialEq)]
pub enum Wait {
    /// `handles[index]` completed with `completion`. `new_activation` is true when the run had
    /// to wait for it (in the original run, or in the history being replayed).
    Ready {
        index: u32,
        completion: Completion,
        new_activation: bool,
    },
    /// Nothing asked for has completed; the run must suspend until a delivery.
    Blocked,
}

#[derive(Clone, Debug, PartialEq)]
enum OpKind {
    Activity,
    Timer,
    Child,
    Signal(String),
}

impl OpKind {
    fn label(&self) -> &'static str {
        match self {
            OpKind::Activity => "activity",
            OpKind::Timer => "timer",
            OpKind::Child => "child workflow",
            OpKind::Signal(_) => "signal wait",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum OpState {
    Pending,
    Ready { seq: u64, completion: Completion },
    Consumed,
}

#[derive(Clone, Debug)]
struct Op {
    kind: OpKind,
    state: OpState,
}

/// SplitMix64: tiny, fast, and fully determined by its seed. The one generator of weft: a
/// run's randomness, the server's ids, the simulation's and the chaos soak's schedules.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(SPLITMIX_GAMMA);
        splitmix64_mix(self.0)
    }
}

const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: scrambles `z` into 64 well-mixed bits.
pub fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One SplitMix64 step from `state`: the value the run generator draws first when seeded
/// with `state`. For deriving ids and seeds deterministically.
pub fn splitmix64(state: u64) -> u64 {
    splitmix64_mix(state.wrapping_add(SPLITMIX_GAMMA))
}

/// One run's command/event state machine. Pure: no I/O, no clock (callers pass the time).
#[derive(Clone, Debug)]
pub struct Machine {
    history: History,
    /// Recorded events before this index have been applied.
    cursor: usize,
    /// True once the run has gone past what its history recorded (appended or blocked).
    live: bool,
    replay_only: bool,
    ops: Vec<Op>,
    unclaimed_signals: VecDeque<(String, Payload)>,
    rng: SplitMix64,
    closed: bool,
    cancel_requested: bool,
    limits: Limits,
    /// What `patched` answered, by change id: the same all through a run.
    patches: std::collections::BTreeMap<String, bool>,
}

/// What a pending operation is, for drivers that must act on it (cancel its task or timer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingOp {
    Activity,
    Timer,
    /// A child workflow, by workflow id.
    Child(String),
    Signal(String),
}

impl Machine {
    /// A machine for a run that starts now with `history` (usually only `RunStarted`), or that
    /// resumes by replaying `history` first. Both are the same thing: recorded events are
    /// replayed, then the run goes on live.
    pub fn new(history: History) -> Self {
        let live = history.events.len() <= 1;
        Machine {
            rng: SplitMix64(history.header.seed),
            // RunStarted carries nothing to apply.
            cursor: history.events.len().min(1),
            live,
            replay_only: false,
            ops: Vec::new(),
            unclaimed_signals: VecDeque::new(),
            closed: false,
            cancel_requested: false,
            limits: Limits::default(),
            patches: std::collections::BTreeMap::new(),
            history,
        }
    }

    /// Sets how far the run may grow (default: [`Limits::default`]).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limit `new` would break if appended now, as the run's error.
    fn limit_broken(&self, new: &EventKind) -> Option<crate::payload::ErrorInfo> {
        let error = |message: String| Some(crate::payload::ErrorInfo::new(LIMIT_EXCEEDED, message));
        let events = self.history.events.len() as u64;
        if events + 1 >= self.limits.max_events {
            return error(format!(
                "the run reached its history limit of {} events; a workflow that runs for long \
                 should continue-as-new (ctx.continue_as_new) to start a fresh history",
                self.limits.max_events
            ));
        }
        let (kind, max, what) = match new {
            EventKind::ActivityScheduled { .. } => (
                OpKind::Activity,
                self.limits.max_pending_activities,
                "activities",
            ),
            EventKind::TimerStarted { .. } => {
                (OpKind::Timer, self.limits.max_pending_timers, "timers")
            }
            EventKind::ChildWorkflowStarted { .. } => (
                OpKind::Child,
                self.limits.max_pending_children,
                "child workflows",
            ),
            _ => return None,
        };
        let pending = self
            .ops
            .iter()
            .filter(|op| op.kind == kind && op.state == OpState::Pending)
            .count();
        if pending >= max as usize {
            return error(format!(
                "the run has {pending} pending {what}, its limit; wait for some to complete \
                 before starting more (or raise max_pending_{})",
                what.replace(' ', "_")
            ));
        }
        None
    }

    /// A machine that only checks `history`: reaching its end stops the run with
    /// [`MachineError::ReplayEnded`] instead of going on live.
    pub fn replay_only(history: History) -> Self {
        let mut machine = Machine::new(history);
        machine.replay_only = true;
        machine.live = false;
        machine
    }

    /// The history so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Gives the history back.
    pub fn into_history(self) -> History {
        self.history
    }

    /// True while the run is re-executing what its history already recorded; logs are
    /// suppressed then.
    pub fn is_replaying(&self) -> bool {
        !self.live
    }

    /// How many recorded events replay has consumed (all of them once live).
    pub fn replayed_events(&self) -> usize {
        self.cursor
    }

    /// True once the terminal event is in (or has been replayed from) the history.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// True once a `RunCancelRequested` has been applied.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }

    /// The operations that have not completed yet, by handle.
    pub fn pending(&self) -> Vec<(Handle, PendingOp)> {
        self.ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.state == OpState::Pending)
            .map(|(h, op)| {
                let kind = match &op.kind {
                    OpKind::Activity => PendingOp::Activity,
                    OpKind::Timer => PendingOp::Timer,
                    OpKind::Child => PendingOp::Child(self.child_workflow_id(h as Handle)),
                    OpKind::Signal(name) => PendingOp::Signal(name.clone()),
                };
                (h as Handle, kind)
            })
            .collect()
    }

    fn child_workflow_id(&self, handle: Handle) -> String {
        self.history
            .events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::ChildWorkflowStarted {
                    handle: h,
                    workflow_id,
                    ..
                } if *h == handle => Some(workflow_id.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The next value of the run's seeded generator; not recorded.
    pub fn random_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn next_handle(&self) -> Handle {
        self.ops.len() as Handle
    }

    /// `now()`: the recorded time on replay, `now_ms` when live.
    pub fn now(&mut self, now_ms: u64) -> Result<u64, MachineError> {
        let seq = self.command(EventKind::TimeRead { now_ms }, now_ms)?;
        match &self.history.events[seq as usize - 1].kind {
            EventKind::TimeRead { now_ms } => Ok(*now_ms),
            _ => unreachable!("matched a TimeRead"),
        }
    }

    /// `patched(change_id)`: whether the run takes the new code path of a change.
    ///
    /// Live, the first call records `MarkerRecorded` and answers true. Replaying, it answers
    /// true when the next recorded command is that marker (consuming it), and false when it is
    /// anything else: the history was recorded by code without the change, which the old path
    /// repeats. The answer for an id never changes within a run.
    pub fn patched(&mut self, change_id: String, now_ms: u64) -> Result<bool, MachineError> {
        if let Some(answer) = self.patches.get(&change_id) {
            return Ok(*answer);
        }
        if self.closed {
            return Err(MachineError::Closed);
        }
        self.apply_recorded_deliveries()?;
        let marker = EventKind::MarkerRecorded { change_id };
        let answer = match self.history.events.get(self.cursor).map(|e| &e.kind) {
            // Recorded by code without the change (a terminal event, a limit or another
            // command comes next): the old path, which meets them as it did.
            Some(recorded) if !same_command(recorded, &marker) => false,
            _ => {
                self.command(marker.clone(), now_ms)?;
                true
            }
        };
        if let EventKind::MarkerRecorded { change_id } = marker {
            self.patches.insert(change_id, answer);
        }
        Ok(answer)
    }

    /// `start-activity`.
    pub fn start_activity(
        &mut self,
        name: String,
        input: Payload,
        options: crate::payload::ActivityOptions,
        now_ms: u64,
    ) -> Result<Handle, MachineError> {
        let handle = self.next_handle();
        let event = EventKind::ActivityScheduled {
            handle,
            name,
            input,
            options,
        };
        self.command(event, now_ms)?;
        Ok(handle)
    }

    /// `start-timer`.
    pub fn start_timer(&mut self, duration_ms: u64, now_ms: u64) -> Result<Handle, MachineError> {
        let handle = self.next_handle();
        self.command(
            EventKind::TimerStarted {
                handle,
                duration_ms,
            },
            now_ms,
        )?;
        Ok(handle)
    }

    /// `start-child-workflow`. `workflow_id` of `None` means "<parent id>/<handle>"; a
    /// `parent_close_policy` of `None` records the default ([`ParentClosePolicy::Terminate`]).
    pub fn start_child(
        &mut self,
        workflow_type: String,
        input: Payload,
        workflow_id: Option<String>,
        task_queue: Option<String>,
        parent_close_policy: Option<ParentClosePolicy>,
        now_ms: u64,
    ) -> Result<Handle, MachineError> {
        let handle = self.next_handle();
        let workflow_id =
            workflow_id.unwrap_or_else(|| format!("{}/{handle}", self.history.header.workflow_id));
        self.command(
            EventKind::ChildWorkflowStarted {
                handle,
                workflow_type,
                workflow_id,
                task_queue,
                input,
                parent_close_policy: Some(parent_close_policy.unwrap_or_default()),
            },
            now_ms,
        )?;
        Ok(handle)
    }

    /// `next-signal`.
    pub fn next_signal(&mut self, name: String, now_ms: u64) -> Result<Handle, MachineError> {
        let handle = self.next_handle();
        self.command(EventKind::SignalAwaited { handle, name }, now_ms)?;
        Ok(handle)
    }

    /// `cancel`.
    pub fn cancel(&mut self, handle: Handle, now_ms: u64) -> Result<(), MachineError> {
        self.check_handle(handle)?;
        self.command(EventKind::CancelRequested { handle }, now_ms)?;
        Ok(())
    }

    /// The run returned `Ok(output)`.
    pub fn complete(&mut self, output: Payload, now_ms: u64) -> Result<u64, MachineError> {
        self.command(EventKind::RunCompleted { output }, now_ms)
    }

    /// The run failed.
    pub fn fail(
        &mut self,
        error: crate::payload::ErrorInfo,
        now_ms: u64,
    ) -> Result<u64, MachineError> {
        self.command(EventKind::RunFailed { error }, now_ms)
    }

    /// The run continues as a new run with `input`.
    pub fn continue_as_new(&mut self, input: Payload, now_ms: u64) -> Result<u64, MachineError> {
        self.command(EventKind::RunContinuedAsNew { input }, now_ms)
    }

    /// Ends a live run from outside. The guest is not consulted; replaying such a history
    /// stops where the termination was recorded.
    pub fn terminate(&mut self, reason: String, now_ms: u64) -> Result<u64, DeliveryError> {
        if self.closed {
            return Err(DeliveryError::RunClosed);
        }
        if self.cursor < self.history.events.len() || self.replay_only {
            return Err(DeliveryError::Replaying);
        }
        self.closed = true;
        self.live = true;
        let seq = self
            .history
            .append(now_ms, EventKind::RunTerminated { reason });
        self.cursor = self.history.events.len();
        Ok(seq)
    }

    /// `wait-any`: the completion among `handles` that came first, consuming it.
    pub fn wait_any(&mut self, handles: &[Handle]) -> Result<Wait, MachineError> {
        if self.closed {
            return Err(MachineError::Closed);
        }
        if handles.is_empty() {
            return Err(MachineError::Misuse(
                "wait-any was called with no handles; it would wait forever".into(),
            ));
        }
        for &h in handles {
            self.check_handle(h)?;
            if self.ops[h as usize].state == OpState::Consumed {
                return Err(MachineError::Misuse(format!(
                    "wait-any was called with handle {h}, whose completion was already returned"
                )));
            }
        }
        let mut new_activation = false;
        loop {
            let first = handles
                .iter()
                .enumerate()
                .filter_map(|(i, &h)| match &self.ops[h as usize].state {
                    OpState::Ready { seq, .. } => Some((*seq, i)),
                    _ => None,
                })
                .min();
            if let Some((_, index)) = first {
                let op = &mut self.ops[handles[index] as usize];
                let OpState::Ready { completion, .. } =
                    std::mem::replace(&mut op.state, OpState::Consumed)
                else {
                    unreachable!("picked a ready op")
                };
                return Ok(Wait::Ready {
                    index: index as u32,
                    completion,
                    new_activation,
                });
            }
            // Nothing ready: the original run waited here for the next recorded delivery.
            match self.history.events.get(self.cursor) {
                Some(event) if event.kind.role() == EventRole::Delivery => {
                    self.apply_next_delivery()?;
                    new_activation = true;
                }
                Some(event) if matches!(event.kind, EventKind::RunTerminated { .. }) => {
                    self.cursor += 1;
                    return Err(MachineError::Terminated);
                }
                Some(event) => {
                    let waiting: Vec<String> = handles.iter().map(|h| format!("#{h}")).collect();
                    return Err(NonDeterminism::new(
                        event.seq,
                        event.kind.to_string(),
                        format!("wait for {}", waiting.join(", ")),
                    )
                    .into());
                }
                None if self.replay_only => return Err(MachineError::ReplayEnded),
                None => {
                    self.live = true;
                    return Ok(Wait::Blocked);
                }
            }
        }
    }

    /// Appends a delivery from the outside world (live runs only) and applies it.
    pub fn deliver(&mut self, kind: EventKind, now_ms: u64) -> Result<u64, DeliveryError> {
        if self.closed {
            return Err(DeliveryError::RunClosed);
        }
        if self.cursor < self.history.events.len() || self.replay_only {
            return Err(DeliveryError::Replaying);
        }
        if kind.role() != EventRole::Delivery {
            return Err(DeliveryError::NotADelivery(kind.name()));
        }
        let seq = self.history.events.len() as u64 + 1;
        self.apply_delivery(seq, &kind)?;
        self.history.append(now_ms, kind);
        self.cursor = self.history.events.len();
        Ok(seq)
    }

    fn check_handle(&self, handle: Handle) -> Result<(), MachineError> {
        if (handle as usize) < self.ops.len() {
            Ok(())
        } else {
            Err(MachineError::Misuse(format!(
                "handle {handle} was never returned by the host (handles so far: 0..{})",
                self.ops.len()
            )))
        }
    }

    /// Records `new` or matches it against the next recorded command; returns its seq.
    fn command(&mut self, new: EventKind, now_ms: u64) -> Result<u64, MachineError> {
        if self.closed {
            return Err(MachineError::Closed);
        }
        self.apply_recorded_deliveries()?;
        let terminal = matches!(new.role(), EventRole::Terminal);
        // Where the run was stopped by a limit, replay stops it again, whatever the limits
        // are now; the run's `fail` then matches the recorded event.
        if !terminal
            && let Some(EventKind::RunFailed { error }) =
                self.history.events.get(self.cursor).map(|e| &e.kind)
            && error.kind == LIMIT_EXCEEDED
        {
            return Err(MachineError::LimitExceeded(error.clone()));
        }
        let seq = match self.history.events.get(self.cursor) {
            Some(recorded) if matches!(recorded.kind, EventKind::RunTerminated { .. }) => {
                self.cursor += 1;
                return Err(MachineError::Terminated);
            }
            Some(recorded) => {
                if !same_command(&recorded.kind, &new) {
                    return Err(NonDeterminism::new(
                        recorded.seq,
                        recorded.kind.to_string(),
                        new.to_string(),
                    )
                    .into());
                }
                self.cursor += 1;
                recorded.seq
            }
            None if self.replay_only => return Err(MachineError::ReplayEnded),
            None => {
                if !terminal && let Some(error) = self.limit_broken(&new) {
                    return Err(MachineError::LimitExceeded(error));
                }
                self.live = true;
                let seq = self.history.append(now_ms, new);
                self.cursor = self.history.events.len();
                seq
            }
        };
        let recorded = self.history.events[seq as usize - 1].kind.clone();
        self.apply_command(seq, &recorded);
        Ok(seq)
    }

    /// Deliveries recorded before the next command had arrived before the original run issued
    /// it: apply them first.
    fn apply_recorded_deliveries(&mut self) -> Result<(), MachineError> {
        while self
            .history
            .events
            .get(self.cursor)
            .is_some_and(|e| e.kind.role() == EventRole::Delivery)
        {
            self.apply_next_delivery()?;
        }
        Ok(())
    }

    /// Applies the recorded delivery at the cursor; one that does not fit is a corrupt history.
    fn apply_next_delivery(&mut self) -> Result<(), MachineError> {
        let Some(event) = self.history.events.get(self.cursor) else {
            return Ok(());
        };
        let (seq, kind) = (event.seq, event.kind.clone());
        self.apply_delivery(seq, &kind)
            .map_err(|e| MachineError::CorruptHistory {
                seq,
                problem: e.to_string(),
            })?;
        self.cursor += 1;
        Ok(())
    }

    fn apply_command(&mut self, seq: u64, kind: &EventKind) {
        match kind {
            EventKind::ActivityScheduled { .. } => self.push_op(OpKind::Activity),
            EventKind::TimerStarted { .. } => self.push_op(OpKind::Timer),
            EventKind::ChildWorkflowStarted { .. } => self.push_op(OpKind::Child),
            EventKind::SignalAwaited { name, .. } => {
                self.push_op(OpKind::Signal(name.clone()));
                if let Some(pos) = self.unclaimed_signals.iter().position(|(n, _)| n == name) {
                    let (_, payload) = self.unclaimed_signals.remove(pos).unwrap_or_default();
                    if let Some(op) = self.ops.last_mut() {
                        op.state = OpState::Ready {
                            seq,
                            completion: Completion::Ok(payload),
                        };
                    }
                }
            }
            EventKind::CancelRequested { handle } => {
                // Timers and signal waits are the run's own: cancelling them is immediate.
                // Activities and children complete with `cancelled` when the outside says so.
                let op = &mut self.ops[*handle as usize];
                if op.state == OpState::Pending
                    && matches!(op.kind, OpKind::Timer | OpKind::Signal(_))
                {
                    op.state = OpState::Ready {
                        seq,
                        completion: Completion::Err(Failure::Cancelled),
                    };
                }
            }
            EventKind::RunCompleted { .. }
            | EventKind::RunFailed { .. }
            | EventKind::RunContinuedAsNew { .. } => self.closed = true,
            _ => {}
        }
    }

    fn push_op(&mut self, kind: OpKind) {
        self.ops.push(Op {
            kind,
            state: OpState::Pending,
        });
    }

    fn apply_delivery(&mut self, seq: u64, kind: &EventKind) -> Result<(), DeliveryError> {
        let (handle, expected, completion) = match kind {
            EventKind::ActivityCompleted { handle, completion } => {
                (*handle, OpKind::Activity, completion.clone())
            }
            EventKind::ChildWorkflowCompleted { handle, completion } => {
                (*handle, OpKind::Child, completion.clone())
            }
            EventKind::TimerFired { handle } => {
                (*handle, OpKind::Timer, Completion::Ok(Payload::default()))
            }
            EventKind::SignalReceived { name, payload } => {
                let waiter = self.ops.iter_mut().find(|op| {
                    op.state == OpState::Pending
                        && matches!(&op.kind, OpKind::Signal(n) if n == name)
                });
                match waiter {
                    Some(op) => {
                        op.state = OpState::Ready {
                            seq,
                            completion: Completion::Ok(payload.clone()),
                        }
                    }
                    None => self
                        .unclaimed_signals
                        .push_back((name.clone(), payload.clone())),
                }
                return Ok(());
            }
            EventKind::RunCancelRequested { .. } => {
                self.cancel_requested = true;
                for op in &mut self.ops {
                    if op.state == OpState::Pending {
                        op.state = OpState::Ready {
                            seq,
                            completion: Completion::Err(Failure::Cancelled),
                        };
                    }
                }
                return Ok(());
            }
            // Which module runs the code is not the workflow's business.
            EventKind::RunMigrated { .. } => return Ok(()),
            other => return Err(DeliveryError::NotADelivery(other.name())),
        };
        let op = self
            .ops
            .get_mut(handle as usize)
            .ok_or(DeliveryError::UnknownHandle(handle))?;
        if std::mem::discriminant(&op.kind) != std::mem::discriminant(&expected) {
            return Err(DeliveryError::WrongKind {
                handle,
                actual: op.kind.label(),
                expected: expected.label(),
            });
        }
        if op.state != OpState::Pending {
            return Err(DeliveryError::AlreadyCompleted(handle));
        }
        op.state = OpState::Ready { seq, completion };
        Ok(())
    }
}

/// Whether a replayed command is the one recorded. Only what determines the run's course is
/// compared: activity name and input, timer duration, child type, signal name, cancelled handle,
/// and the run's result. Options such as timeouts may change between versions.
fn same_command(recorded: &EventKind, new: &EventKind) -> bool {
    use EventKind as E;
    match (recorded, new) {
        (E::TimeRead { .. }, E::TimeRead { .. }) => true,
        (E::MarkerRecorded { change_id: a }, E::MarkerRecorded { change_id: b }) => a == b,
        (
            E::ActivityScheduled {
                handle: h1,
                name: n1,
                input: i1,
                ..
            },
            E::ActivityScheduled {
                handle: h2,
                name: n2,
                input: i2,
                ..
            },
        ) => h1 == h2 && n1 == n2 && i1 == i2,
        (
            E::TimerStarted {
                handle: h1,
                duration_ms: d1,
            },
            E::TimerStarted {
                handle: h2,
                duration_ms: d2,
            },
        ) => h1 == h2 && d1 == d2,
        (
            E::ChildWorkflowStarted {
                handle: h1,
                workflow_type: t1,
                ..
            },
            E::ChildWorkflowStarted {
                handle: h2,
                workflow_type: t2,
                ..
            },
        ) => h1 == h2 && t1 == t2,
        (
            E::SignalAwaited {
                handle: h1,
                name: n1,
            },
            E::SignalAwaited {
                handle: h2,
                name: n2,
            },
        ) => h1 == h2 && n1 == n2,
        (E::CancelRequested { handle: h1 }, E::CancelRequested { handle: h2 }) => h1 == h2,
        (E::RunCompleted { output: o1 }, E::RunCompleted { output: o2 }) => o1 == o2,
        // Failure messages carry source locations; the kind is what the run's course depends on.
        (E::RunFailed { error: e1 }, E::RunFailed { error: e2 }) => e1.kind == e2.kind,
        (E::RunContinuedAsNew { input: i1 }, E::RunContinuedAsNew { input: i2 }) => i1 == i2,
        _ => false,
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::Ready {
                index, completion, ..
            } => write!(f, "ready [{index}] {completion}"),
            Wait::Blocked => f.write_str("blocked"),
        }
    }
}
