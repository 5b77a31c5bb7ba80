//! The rows the store keeps, as plain Rust.

use weft_history::{ActivityOptions, ErrorInfo, Event, Payload};

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    ContinuedAsNew,
    Terminated,
    /// Asked to cancel, and the workflow ended by returning the cancellation.
    Cancelled,
}

impl RunStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::ContinuedAsNew => "continued_as_new",
            RunStatus::Terminated => "terminated",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "continued_as_new" => RunStatus::ContinuedAsNew,
            "terminated" => RunStatus::Terminated,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }
}

/// A run as the `runs` table holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub workflow_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    pub run_number: u32,
    pub module_id: String,
    pub input: Payload,
    pub seed: u64,
    pub status: RunStatus,
    pub output: Option<Payload>,
    pub error: Option<ErrorInfo>,
    pub started_at_ms: u64,
    pub closed_at_ms: Option<u64>,
    pub history_length: u64,
    /// For a child run: the parent run and the parent's handle for this child.
    pub parent: Option<(String, u32)>,
    /// The node that steps this run (set by the store from the committing node).
    pub owner: Option<String>,
    /// W3C `traceparent` of the span that started the run (the run's span is its child);
    /// `None` when tracing was off.
    pub trace_context: Option<String>,
}

/// An activity task to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    pub handle: u32,
    /// The run's workflow id (part of the task's idempotency key).
    pub workflow_id: String,
    pub task_queue: String,
    pub activity_name: String,
    pub input: Payload,
    pub options: ActivityOptions,
    pub scheduled_at_ms: u64,
    /// W3C `traceparent` of the run's span, which the task's attempts are children of.
    pub trace_context: Option<String>,
    /// Set when a worker of this node was already waiting for it: the task is written claimed
    /// (attempt 1 leased to that poller), and handed over once the batch commits.
    pub claim: Option<TaskClaim>,
}

/// A claim made in memory, written with the task that it claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskClaim {
    pub secret: String,
    pub claimed_at_ms: u64,
    pub lease_until_ms: u64,
}

/// The id of the task of activity `handle` of run `run_id`.
pub fn task_id(run_id: &str, handle: u32) -> String {
    format!("{run_id}/{handle}")
}

/// How long one attempt of an activity may hold its task without a heartbeat or a result:
/// the shorter of its heartbeat and start-to-close timeouts; `None` when it sets neither.
pub fn attempt_lease_ms(options: &ActivityOptions) -> Option<u64> {
    match (
        options.heartbeat_timeout_ms,
        options.start_to_close_timeout_ms,
    ) {
        (Some(hb), Some(stc)) => Some(hb.min(stc)),
        (hb, stc) => hb.or(stc),
    }
}

/// An activity task handed to a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    pub task_id: String,
    pub run_id: String,
    pub workflow_id: String,
    pub handle: u32,
    pub task_queue: String,
    pub activity_name: String,
    pub input: Payload,
    pub options: ActivityOptions,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub scheduled_at_ms: u64,
    pub lease_until_ms: Option<u64>,
    pub heartbeat_details: Option<Vec<u8>>,
    /// When the current attempt was claimed by a worker.
    pub claimed_at_ms: Option<u64>,
    /// When the current attempt last heartbeated.
    pub last_heartbeat_ms: Option<u64>,
    /// The error of the attempt before this one, if it failed or timed out.
    pub last_error: Option<ErrorInfo>,
    /// W3C `traceparent` of the run's span, which the task's attempts are children of.
    pub trace_context: Option<String>,
    /// The secret of the current claim; the task token handed to the worker carries it.
    pub claim_secret: Option<String>,
}

/// Why an attempt ended without a result, for [`Store::retry_task`](crate::Store::retry_task).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptFailure {
    pub kind: String,
    pub message: String,
    pub at_ms: u64,
}

/// An attempt that failed or timed out and was retried; the history records only the
/// activity's outcome, so these are kept beside it for the console's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    pub handle: u32,
    pub attempt: u32,
    /// When a worker claimed it (unknown for tasks claimed before this was recorded).
    pub started_at_ms: Option<u64>,
    pub ended_at_ms: u64,
    pub error_kind: String,
    pub error_message: String,
    /// When the next attempt became available.
    pub retry_at_ms: u64,
}

/// A stored module version and the runs pinned to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleRecord {
    pub workflow_type: String,
    pub module_id: String,
    pub size_bytes: u64,
    pub uploaded_at_ms: u64,
    /// True for the version new runs of the type get.
    pub newest: bool,
    pub running_runs: u64,
    pub closed_runs: u64,
}

/// The activity tasks of one task queue right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStats {
    pub task_queue: String,
    /// Visible and not leased: waiting for a worker.
    pub ready: u64,
    /// Held by a worker.
    pub leased: u64,
    /// Waiting for a retry's backoff to pass.
    pub backing_off: u64,
    /// When the longest-waiting ready task became visible.
    pub oldest_ready_since_ms: Option<u64>,
}

/// A durable timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerRecord {
    pub run_id: String,
    pub handle: u32,
    pub fire_at_ms: u64,
}

/// How a run closed.
#[derive(Clone, Debug, PartialEq)]
pub struct RunClose {
    pub status: RunStatus,
    pub output: Option<Payload>,
    pub error: Option<ErrorInfo>,
    pub closed_at_ms: u64,
}

/// Everything one step of one run writes; committed atomically (possibly with other steps).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepWrite {
    pub run_id: String,
    /// Set when this step starts the run: its row is inserted first.
    pub create: Option<RunRecord>,
    /// Appended to the history; their seqs must follow the stored ones.
    pub events: Vec<Event>,
    pub new_tasks: Vec<NewTask>,
    pub new_timers: Vec<TimerRecord>,
    /// Tasks finished by this step (completed, failed for good, cancelled).
    pub done_tasks: Vec<String>,
    /// Timers fired or cancelled by this step.
    pub done_timers: Vec<u32>,
    pub close: Option<RunClose>,
    /// Re-pins the run to this module (a migration); with the fence, so only if the history
    /// is still exactly what was vetted on it.
    pub pin_module: Option<String>,
}

/// One group commit of one node: the steps of many runs, and commands routed to the runs
/// of other nodes. All of it commits in one transaction, or none of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// The committing node; it must own every run it steps.
    pub node: String,
    pub steps: Vec<StepWrite>,
    /// Commands for runs owned elsewhere, put in their owners' inboxes.
    pub routed: Vec<RoutedCommand>,
    /// Inbox items this batch consumed.
    pub inbox_done: Vec<i64>,
}

impl Batch {
    /// True when committing it would write nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.routed.is_empty() && self.inbox_done.is_empty()
    }
}

/// A command for a run owned by another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutedCommand {
    pub owner: String,
    pub run_id: String,
    /// The command, serialized by the server.
    pub command: String,
    pub created_at_ms: u64,
}

/// A command waiting in a node's inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxItem {
    pub id: i64,
    pub run_id: String,
    pub command: String,
}

/// Filter of [`Store::list_runs`](crate::Store::list_runs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub workflow_type: Option<String>,
    /// Runs whose workflow id starts with this.
    pub workflow_id_prefix: Option<String>,
}

/// A bearer token as stored: the SHA-256 of its secret, never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    pub hash: String,
    pub role: String,
    /// Task queues it may serve; `None`: all.
    pub queues: Option<Vec<String>>,
    /// Workflow types it may operate; `None`: all.
    pub types: Option<Vec<String>>,
    pub created_at_ms: u64,
    pub expires_at_ms: Option<u64>,
    pub last_used_ms: Option<u64>,
    pub revoked_at_ms: Option<u64>,
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub at_ms: u64,
    /// A token's name, or `anonymous`, or `database` for direct database access.
    pub actor: String,
    /// `upload_module`, `terminate`, `token_create`, `token_revoke`, `auth_failure`, ...
    pub action: String,
    /// What it was done to (a workflow type and module id, a workflow id, a token name).
    pub target: String,
    /// The caller's address, if known.
    pub peer: String,
    /// `ok`, or why it was refused.
    pub outcome: String,
}
