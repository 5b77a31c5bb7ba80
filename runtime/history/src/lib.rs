//! The pure core of weft: what a run's history is and how a run is matched against it.
//!
//! No wasmtime, no tokio, no database: events in, commands out. The engine drives a
//! [`Machine`] from the guest's host calls; the server persists the events it appends.
//!
//! - [`payload`]: payloads and the value types of `weft:workflow/types`;
//! - [`event`]: the events of a history;
//! - [`file`]: a run's [`History`] and its versioned JSON form;
//! - [`machine`]: the replay state machine and non-determinism detection;
//! - [`effects`]: what each event asks of the world (tasks, timers, children), the one
//!   interpretation every driver applies.

pub mod effects;
pub mod event;
pub mod file;
pub mod machine;
pub mod payload;

pub use effects::{ChildCancel, Effect, Effects, pending_operations, terminated_by_parent};
pub use event::{Event, EventKind, EventRole, Handle, ParentClosePolicy};
pub use file::{HISTORY_FORMAT, History, HistoryFileError, RunHeader, SUPPORTED_FORMATS};
pub use machine::{
    DeliveryError, LIMIT_EXCEEDED, Limits, Machine, MachineError, NonDeterminism, PendingOp,
    SplitMix64, Wait, splitmix64, splitmix64_mix,
};
pub use payload::{ActivityOptions, Completion, ErrorInfo, Failure, Payload, RetryPolicy};

#[cfg(test)]
mod machine_tests;
