//! What a recorded history still waits on, read from the events alone (no guest): the
//! operations a console shows as pending. The rules are the machine's: a command opens an
//! operation, its delivery closes it, a signal goes to the oldest waiter of its name (or is
//! kept for the next one), cancelling a timer or a signal wait closes it at once, a
//! `RunCancelRequested` closes everything open, and a closed run waits on nothing.

use std::collections::{BTreeMap, VecDeque};

use crate::event::{Event, EventKind, Handle};
use crate::machine::PendingOp;

/// The operations of `events` that have not completed, by handle.
pub fn pending_operations(events: &[Event]) -> Vec<(Handle, PendingOp)> {
    let mut open: BTreeMap<Handle, PendingOp> = BTreeMap::new();
    let mut unclaimed: VecDeque<String> = VecDeque::new();
    for event in events {
        match &event.kind {
            EventKind::ActivityScheduled { handle, .. } => {
                open.insert(*handle, PendingOp::Activity);
            }
            EventKind::TimerStarted { handle, .. } => {
                open.insert(*handle, PendingOp::Timer);
            }
            EventKind::ChildWorkflowStarted {
                handle,
                workflow_id,
                ..
            } => {
                open.insert(*handle, PendingOp::Child(workflow_id.clone()));
            }
            EventKind::SignalAwaited { handle, name } => {
                match unclaimed.iter().position(|n| n == name) {
                    Some(i) => {
                        unclaimed.remove(i);
                    }
                    None => {
                        open.insert(*handle, PendingOp::Signal(name.clone()));
                    }
                }
            }
            EventKind::CancelRequested { handle } => {
                if matches!(
                    open.get(handle),
                    Some(PendingOp::Timer | PendingOp::Signal(_))
                ) {
                    open.remove(handle);
                }
            }
            EventKind::ActivityCompleted { handle, .. }
            | EventKind::TimerFired { handle }
            | EventKind::ChildWorkflowCompleted { handle, .. } => {
                open.remove(handle);
            }
            EventKind::SignalReceived { name, .. } => {
                let waiter = open
                    .iter()
                    .find(|(_, op)| matches!(op, PendingOp::Signal(n) if n == name))
                    .map(|(h, _)| *h);
                match waiter {
                    Some(h) => {
                        open.remove(&h);
                    }
                    None => unclaimed.push_back(name.clone()),
                }
            }
            EventKind::RunCancelRequested { .. }
            | EventKind::RunCompleted { .. }
            | EventKind::RunFailed { .. }
            | EventKind::RunContinuedAsNew { .. }
            | EventKind::RunTerminated { .. } => open.clear(),
            EventKind::RunStarted
            | EventKind::TimeRead { .. }
            | EventKind::MarkerRecorded { .. }
            | EventKind::RunMigrated { .. } => {}
        }
    }
    open.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{Completion, Payload};

    fn events(kinds: Vec<EventKind>) -> Vec<Event> {
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Event {
                seq: i as u64 + 1,
                timestamp_ms: 0,
                kind,
            })
            .collect()
    }

    fn awaited(handle: Handle, name: &str) -> EventKind {
        EventKind::SignalAwaited {
            handle,
            name: name.into(),
        }
    }

    fn received(name: &str) -> EventKind {
        EventKind::SignalReceived {
            name: name.into(),
            payload: Payload::null(),
        }
    }

    #[test]
    fn signals_go_to_the_oldest_waiter_or_wait_for_the_next_one() {
        let h = events(vec![
            EventKind::RunStarted,
            received("early"),
            awaited(0, "early"),
            awaited(1, "approve"),
            awaited(2, "approve"),
            received("approve"),
            EventKind::TimerStarted {
                handle: 3,
                duration_ms: 10,
            },
            EventKind::ActivityScheduled {
                handle: 4,
                name: "a".into(),
                input: Payload::null(),
                options: Default::default(),
            },
            EventKind::ActivityCompleted {
                handle: 4,
                completion: Completion::Ok(Payload::null()),
            },
        ]);
        assert_eq!(
            pending_operations(&h),
            [
                (2, PendingOp::Signal("approve".into())),
                (3, PendingOp::Timer)
            ]
        );
    }

    #[test]
    fn cancellation_and_the_close_end_the_waits() {
        let mut kinds = vec![
            EventKind::RunStarted,
            EventKind::TimerStarted {
                handle: 0,
                duration_ms: 10,
            },
            EventKind::CancelRequested { handle: 0 },
            awaited(1, "go"),
        ];
        assert_eq!(
            pending_operations(&events(kinds.clone())),
            [(1, PendingOp::Signal("go".into()))]
        );
        kinds.push(EventKind::RunCancelRequested {
            reason: "stop".into(),
        });
        assert!(pending_operations(&events(kinds)).is_empty());
    }
}
