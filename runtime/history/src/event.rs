//! The events of a run's history and the commands a workflow issues.
//!
//! An event is either a *command* the workflow issued (its result, if any, is in the event), a
//! *delivery* from the outside world (an activity result, a fired timer, a signal), or the
//! *terminal* event that closes the run. On replay, commands are matched against the recorded
//! ones in order; deliveries are fed back at the points where they originally arrived.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::payload::{ActivityOptions, Completion, ErrorInfo, Payload};

/// A handle to a pending operation; assigned 0, 1, 2, ... in the order of the commands.
pub type Handle = u32;

/// One entry of a run's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 1-based position in the history.
    pub seq: u64,
    /// When the event was appended, in milliseconds since the Unix epoch (workflow time).
    pub timestamp_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// Always the first event.
    RunStarted,

    // ---- commands ----
    /// `now()` was called and returned `now_ms`.
    TimeRead {
        now_ms: u64,
    },
    ActivityScheduled {
        handle: Handle,
        name: String,
        input: Payload,
        #[serde(default)]
        options: ActivityOptions,
    },
    TimerStarted {
        handle: Handle,
        duration_ms: u64,
    },
    ChildWorkflowStarted {
        handle: Handle,
        workflow_type: String,
        workflow_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_queue: Option<String>,
        input: Payload,
        /// What happens to the child if it is still running when this run closes. Absent
        /// in histories recorded before the policy existed: those children are abandoned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_close_policy: Option<ParentClosePolicy>,
    },
    SignalAwaited {
        handle: Handle,
        name: String,
    },
    CancelRequested {
        handle: Handle,
    },
    /// `patched(change_id)` was first called in a live run: the run takes the new code path.
    /// Replaying a history recorded before the change (no marker at that point) takes the old.
    MarkerRecorded {
        change_id: String,
    },

    // ---- deliveries ----
    ActivityCompleted {
        handle: Handle,
        completion: Completion,
    },
    TimerFired {
        handle: Handle,
    },
    ChildWorkflowCompleted {
        handle: Handle,
        completion: Completion,
    },
    SignalReceived {
        name: String,
        payload: Payload,
    },
    /// `CancelWorkflow` asked the run to stop: every operation pending at this point
    /// completes with `cancelled`; operations started afterwards (clean-up) run normally.
    RunCancelRequested {
        reason: String,
    },
    /// The run was moved to another module of its type (`weft migrate`), its history having
    /// replayed clean on it; it goes on from here on module `to`. The workflow does not see
    /// it: on replay it changes nothing.
    RunMigrated {
        /// Hex SHA-256 of the module the run was pinned to.
        from: String,
        /// Hex SHA-256 of the module it is pinned to from here.
        to: String,
    },

    // ---- terminal ----
    RunCompleted {
        output: Payload,
    },
    RunFailed {
        error: ErrorInfo,
    },
    RunContinuedAsNew {
        input: Payload,
    },
    /// Ended from outside (`TerminateWorkflow`); the workflow code did not run to this point.
    RunTerminated {
        reason: String,
    },
}

/// What happens to a child workflow still running when its parent closes (Temporal's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentClosePolicy {
    /// The child is terminated (`RunTerminated`): the default for children started now.
    #[default]
    Terminate,
    /// The child is asked to cancel (`RunCancelRequested`) and closes as it chooses.
    RequestCancel,
    /// The child goes on by itself: what every child recorded without a policy gets.
    Abandon,
}

impl ParentClosePolicy {
    /// The policy of a child whose start recorded `recorded`.
    pub fn of_recorded(recorded: Option<ParentClosePolicy>) -> ParentClosePolicy {
        recorded.unwrap_or(ParentClosePolicy::Abandon)
    }

    /// The name as histories, the API and the console write it.
    pub fn as_str(self) -> &'static str {
        match self {
            ParentClosePolicy::Terminate => "terminate",
            ParentClosePolicy::RequestCancel => "request_cancel",
            ParentClosePolicy::Abandon => "abandon",
        }
    }
}

impl fmt::Display for ParentClosePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three roles an event can play during replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventRole {
    /// The workflow's own doing; matched against the command on replay.
    Command,
    /// Something the outside world told the run.
    Delivery,
    /// Closes the run; also matched on replay.
    Terminal,
    /// The opening event.
    Start,
}

impl EventKind {
    /// Which role this event plays.
    pub fn role(&self) -> EventRole {
        match self {
            EventKind::RunStarted => EventRole::Start,
            EventKind::TimeRead { .. }
            | EventKind::ActivityScheduled { .. }
            | EventKind::TimerStarted { .. }
            | EventKind::ChildWorkflowStarted { .. }
            | EventKind::SignalAwaited { .. }
            | EventKind::CancelRequested { .. }
            | EventKind::MarkerRecorded { .. } => EventRole::Command,
            EventKind::ActivityCompleted { .. }
            | EventKind::TimerFired { .. }
            | EventKind::ChildWorkflowCompleted { .. }
            | EventKind::SignalReceived { .. }
            | EventKind::RunCancelRequested { .. }
            | EventKind::RunMigrated { .. } => EventRole::Delivery,
            EventKind::RunCompleted { .. }
            | EventKind::RunFailed { .. }
            | EventKind::RunContinuedAsNew { .. }
            | EventKind::RunTerminated { .. } => EventRole::Terminal,
        }
    }

    /// The event's type name, as written in the history file.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RunStarted => "RunStarted",
            EventKind::TimeRead { .. } => "TimeRead",
            EventKind::ActivityScheduled { .. } => "ActivityScheduled",
            EventKind::TimerStarted { .. } => "TimerStarted",
            EventKind::ChildWorkflowStarted { .. } => "ChildWorkflowStarted",
            EventKind::SignalAwaited { .. } => "SignalAwaited",
            EventKind::CancelRequested { .. } => "CancelRequested",
            EventKind::MarkerRecorded { .. } => "MarkerRecorded",
            EventKind::ActivityCompleted { .. } => "ActivityCompleted",
            EventKind::TimerFired { .. } => "TimerFired",
            EventKind::ChildWorkflowCompleted { .. } => "ChildWorkflowCompleted",
            EventKind::SignalReceived { .. } => "SignalReceived",
            EventKind::RunCancelRequested { .. } => "RunCancelRequested",
            EventKind::RunMigrated { .. } => "RunMigrated",
            EventKind::RunCompleted { .. } => "RunCompleted",
            EventKind::RunFailed { .. } => "RunFailed",
            EventKind::RunContinuedAsNew { .. } => "RunContinuedAsNew",
            EventKind::RunTerminated { .. } => "RunTerminated",
        }
    }
}

/// One line per event, for timelines and error messages.
impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::RunStarted => f.write_str("RunStarted"),
            EventKind::TimeRead { now_ms } => write!(f, "TimeRead now_ms={now_ms}"),
            EventKind::ActivityScheduled {
                handle,
                name,
                input,
                ..
            } => write!(f, "ActivityScheduled #{handle} {name}({input})"),
            EventKind::TimerStarted {
                handle,
                duration_ms,
            } => write!(f, "TimerStarted #{handle} {duration_ms}ms"),
            EventKind::ChildWorkflowStarted {
                handle,
                workflow_type,
                workflow_id,
                input,
                ..
            } => write!(
                f,
                "ChildWorkflowStarted #{handle} {workflow_type}({input}) id={workflow_id}"
            ),
            EventKind::SignalAwaited { handle, name } => {
                write!(f, "SignalAwaited #{handle} \"{name}\"")
            }
            EventKind::CancelRequested { handle } => write!(f, "CancelRequested #{handle}"),
            EventKind::MarkerRecorded { change_id } => {
                write!(f, "MarkerRecorded \"{change_id}\"")
            }
            EventKind::ActivityCompleted { handle, completion } => {
                write!(f, "ActivityCompleted #{handle} {completion}")
            }
            EventKind::TimerFired { handle } => write!(f, "TimerFired #{handle}"),
            EventKind::ChildWorkflowCompleted { handle, completion } => {
                write!(f, "ChildWorkflowCompleted #{handle} {completion}")
            }
            EventKind::SignalReceived { name, payload } => {
                write!(f, "SignalReceived \"{name}\" {payload}")
            }
            EventKind::RunCancelRequested { reason } => {
                write!(f, "RunCancelRequested ({reason})")
            }
            EventKind::RunMigrated { from, to } => {
                write!(f, "RunMigrated from {} to {}", short_id(from), short_id(to))
            }
            EventKind::RunCompleted { output } => write!(f, "RunCompleted {output}"),
            EventKind::RunFailed { error } => write!(f, "RunFailed {error}"),
            EventKind::RunContinuedAsNew { input } => write!(f, "RunContinuedAsNew {input}"),
            EventKind::RunTerminated { reason } => write!(f, "RunTerminated ({reason})"),
        }
    }
}

/// The first 12 hex digits of a module id, as timelines show it.
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
