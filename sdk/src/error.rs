//! Errors a workflow sees and returns.

use std::fmt;

use crate::bindings::weft::workflow::types as raw;

/// An error reported by an activity or a child workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorInfo {
    /// Machine-readable kind, e.g. `ModelUnavailable`.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// How many attempts were made before giving up.
    pub attempts: u32,
}

/// Why a pending operation produced no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The activity failed (after its retries).
    ActivityFailed(ErrorInfo),
    /// The child workflow failed.
    ChildFailed(ErrorInfo),
    /// A timeout expired; the text says which.
    TimedOut(String),
    /// The operation was cancelled.
    Cancelled,
    /// The result arrived but does not decode into the expected type.
    BadPayload(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ActivityFailed(e) => write!(
                f,
                "activity failed after {} attempt(s): {}: {}",
                e.attempts, e.kind, e.message
            ),
            Failure::ChildFailed(e) => {
                write!(f, "child workflow failed: {}: {}", e.kind, e.message)
            }
            Failure::TimedOut(what) => write!(f, "timed out: {what}"),
            Failure::Cancelled => f.write_str("cancelled"),
            Failure::BadPayload(why) => write!(f, "result does not decode: {why}"),
        }
    }
}

impl std::error::Error for Failure {}

impl From<raw::Failure> for Failure {
    fn from(f: raw::Failure) -> Self {
        let info = |e: raw::ErrorInfo| ErrorInfo {
            kind: e.kind,
            message: e.message,
            attempts: e.attempts,
        };
        match f {
            raw::Failure::ActivityFailed(e) => Failure::ActivityFailed(info(e)),
            raw::Failure::ChildFailed(e) => Failure::ChildFailed(info(e)),
            raw::Failure::TimedOut(what) => Failure::TimedOut(what),
            raw::Failure::Cancelled => Failure::Cancelled,
        }
    }
}

/// The error a workflow returns; it fails the run with this kind and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowError {
    /// Machine-readable kind.
    pub kind: String,
    /// What happened.
    pub message: String,
}

impl WorkflowError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        WorkflowError {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for WorkflowError {}

/// `?` on a failed operation fails the workflow with the operation's error kind.
impl From<Failure> for WorkflowError {
    fn from(f: Failure) -> Self {
        let kind = match &f {
            Failure::ActivityFailed(e) | Failure::ChildFailed(e) => e.kind.clone(),
            Failure::TimedOut(_) => "TimedOut".into(),
            Failure::Cancelled => "Cancelled".into(),
            Failure::BadPayload(_) => "BadPayload".into(),
        };
        let message = match &f {
            Failure::ActivityFailed(e) => {
                format!(
                    "activity failed after {} attempt(s): {}",
                    e.attempts, e.message
                )
            }
            Failure::ChildFailed(e) => format!("child workflow failed: {}", e.message),
            other => other.to_string(),
        };
        WorkflowError { kind, message }
    }
}

/// What a workflow function returns.
pub type WorkflowResult<T> = Result<T, WorkflowError>;
