//! What each event of a history asks of the world: the one interpretation that the server's
//! executor, the in-process harness and the console all apply, so that they cannot drift.
//!
//! [`Effects`] follows a run's events in order and keeps the operations still open (which is
//! what a console shows as pending). For each event it says what a driver must do: create an
//! activity task, start or delete a timer, start, cancel or terminate a child, or complete one
//! of the run's own handles as `cancelled`. The rules are the machine's: a command opens an
//! operation, its delivery closes it, a signal goes to the oldest waiter of its name (or is
//! kept for the next one), cancelling a timer or a signal wait closes it at once (the machine
//! completes it), cancelling an activity or a child is completed by the driver, a
//! `RunCancelRequested` closes everything open (the machine completes it all), and the close
//! of a run applies each open child's parent close policy.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::event::{Event, EventKind, Handle, ParentClosePolicy};
use crate::machine::PendingOp;
use crate::payload::{ActivityOptions, Completion, Failure, Payload};

/// Why a child is asked to cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildCancel {
    /// The parent cancelled the child's handle.
    HandleCancelled,
    /// The parent itself was asked to cancel.
    ParentCancelled,
    /// The parent closed and the child's policy is `request_cancel`.
    ParentClosed,
}

impl ChildCancel {
    /// The reason recorded in the child's `RunCancelRequested`.
    pub fn reason(self, parent_workflow_id: &str) -> String {
        match self {
            ChildCancel::HandleCancelled => {
                format!("parent workflow `{parent_workflow_id}` cancelled it")
            }
            ChildCancel::ParentCancelled => {
                format!("parent workflow `{parent_workflow_id}` was cancelled")
            }
            ChildCancel::ParentClosed => format!(
                "parent workflow `{parent_workflow_id}` closed (parent close policy: request_cancel)"
            ),
        }
    }
}

/// The reason recorded in the `RunTerminated` of a child whose parent closed under the
/// `terminate` policy.
pub fn terminated_by_parent(parent_workflow_id: &str) -> String {
    format!("parent workflow `{parent_workflow_id}` closed (parent close policy: terminate)")
}

/// One thing a driver must do because of an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// An activity task to create.
    ScheduleActivity {
        handle: Handle,
        name: String,
        input: Payload,
        options: ActivityOptions,
        scheduled_at_ms: u64,
    },
    /// The activity's task goes from its queue (a worker that holds it learns at its next
    /// report); its completion, if any, comes from another effect or from the machine.
    DropTask { handle: Handle },
    /// A timer to start.
    StartTimer { handle: Handle, fire_at_ms: u64 },
    /// A timer that will never fire: its row goes.
    DropTimer { handle: Handle },
    /// A child workflow to start.
    StartChild {
        handle: Handle,
        workflow_type: String,
        workflow_id: String,
        task_queue: Option<String>,
        input: Payload,
    },
    /// Ask the child started by `handle` to cancel (`RunCancelRequested`).
    CancelChild {
        handle: Handle,
        workflow_id: String,
        why: ChildCancel,
    },
    /// End the child started by `handle` (`RunTerminated`): its parent closed.
    TerminateChild { handle: Handle, workflow_id: String },
    /// Deliver `delivery` to this run: a cancelled handle that only the driver can complete
    /// (an activity or a child), completed as `cancelled`.
    Deliver { delivery: EventKind },
}

/// The operations of a run still open, and what each new event asks of the world.
#[derive(Clone, Debug, Default)]
pub struct Effects {
    open: BTreeMap<Handle, PendingOp>,
    /// Parent close policies of the open children.
    policies: BTreeMap<Handle, ParentClosePolicy>,
    /// Activities and children whose cancellation was asked for and not yet delivered.
    cancelling: BTreeSet<Handle>,
    unclaimed: VecDeque<String>,
}

impl Effects {
    /// A run with nothing open yet.
    pub fn new() -> Self {
        Effects::default()
    }

    /// The state after `events`, without their effects (a run rebuilt from its history).
    pub fn after(events: &[Event]) -> Self {
        let mut effects = Effects::new();
        for event in events {
            effects.apply(event, &mut |_| {});
        }
        effects
    }

    /// The operations not completed yet, by handle.
    pub fn pending(&self) -> Vec<(Handle, PendingOp)> {
        self.open.iter().map(|(h, op)| (*h, op.clone())).collect()
    }

    /// Whether `handle` still waits for its operation's own result: it has not completed,
    /// and no cancellation is on its way to complete it.
    pub fn awaits_result(&self, handle: Handle) -> bool {
        self.open.contains_key(&handle) && !self.cancelling.contains(&handle)
    }

    /// The parent close policy of the open child `handle`.
    pub fn child_policy(&self, handle: Handle) -> Option<ParentClosePolicy> {
        self.policies.get(&handle).copied()
    }

    /// Follows `event`, returning what it asks of the world.
    pub fn next(&mut self, event: &Event) -> Vec<Effect> {
        let mut out = Vec::new();
        self.apply(event, &mut |e| out.push(e));
        out
    }

    fn apply(&mut self, event: &Event, emit: &mut dyn FnMut(Effect)) {
        match &event.kind {
            EventKind::ActivityScheduled {
                handle,
                name,
                input,
                options,
            } => {
                self.open.insert(*handle, PendingOp::Activity);
                emit(Effect::ScheduleActivity {
                    handle: *handle,
                    name: name.clone(),
                    input: input.clone(),
                    options: options.clone(),
                    scheduled_at_ms: event.timestamp_ms,
                });
            }
            EventKind::TimerStarted {
                handle,
                duration_ms,
            } => {
                self.open.insert(*handle, PendingOp::Timer);
                emit(Effect::StartTimer {
                    handle: *handle,
                    fire_at_ms: event.timestamp_ms.saturating_add(*duration_ms),
                });
            }
            EventKind::ChildWorkflowStarted {
                handle,
                workflow_type,
                workflow_id,
                task_queue,
                input,
                parent_close_policy,
            } => {
                self.open
                    .insert(*handle, PendingOp::Child(workflow_id.clone()));
                self.policies.insert(
                    *handle,
                    ParentClosePolicy::of_recorded(*parent_close_policy),
                );
                emit(Effect::StartChild {
                    handle: *handle,
                    workflow_type: workflow_type.clone(),
                    workflow_id: workflow_id.clone(),
                    task_queue: task_queue.clone(),
                    input: input.clone(),
                });
            }
            EventKind::SignalAwaited { handle, name } => {
                match self.unclaimed.iter().position(|n| n == name) {
                    Some(i) => {
                        self.unclaimed.remove(i);
                    }
                    None => {
                        self.open.insert(*handle, PendingOp::Signal(name.clone()));
                    }
                }
            }
            EventKind::CancelRequested { handle } => {
                // A handle already completed, or already being cancelled, asks for nothing.
                if self.cancelling.contains(handle) {
                    return;
                }
                match self.open.get(handle).cloned() {
                    // The machine completes these itself.
                    Some(PendingOp::Timer) => {
                        self.close(*handle);
                        emit(Effect::DropTimer { handle: *handle });
                    }
                    Some(PendingOp::Signal(_)) => self.close(*handle),
                    Some(PendingOp::Activity) => {
                        self.cancelling.insert(*handle);
                        emit(Effect::DropTask { handle: *handle });
                        emit(Effect::Deliver {
                            delivery: EventKind::ActivityCompleted {
                                handle: *handle,
                                completion: Completion::Err(Failure::Cancelled),
                            },
                        });
                    }
                    Some(PendingOp::Child(workflow_id)) => {
                        self.cancelling.insert(*handle);
                        emit(Effect::Deliver {
                            delivery: EventKind::ChildWorkflowCompleted {
                                handle: *handle,
                                completion: Completion::Err(Failure::Cancelled),
                            },
                        });
                        emit(Effect::CancelChild {
                            handle: *handle,
                            workflow_id,
                            why: ChildCancel::HandleCancelled,
                        });
                    }
                    None => {}
                }
            }
            EventKind::ActivityCompleted { handle, .. }
            | EventKind::TimerFired { handle }
            | EventKind::ChildWorkflowCompleted { handle, .. } => self.close(*handle),
            EventKind::SignalReceived { name, .. } => {
                let waiter = self
                    .open
                    .iter()
                    .find(|(_, op)| matches!(op, PendingOp::Signal(n) if n == name))
                    .map(|(h, _)| *h);
                match waiter {
                    Some(h) => self.close(h),
                    None => self.unclaimed.push_back(name.clone()),
                }
            }
            EventKind::RunCancelRequested { .. } => {
                // The machine completes everything open as cancelled; the world lets go.
                for (handle, op) in std::mem::take(&mut self.open) {
                    match op {
                        PendingOp::Activity if !self.cancelling.contains(&handle) => {
                            emit(Effect::DropTask { handle })
                        }
                        PendingOp::Timer => emit(Effect::DropTimer { handle }),
                        PendingOp::Child(workflow_id) if !self.cancelling.contains(&handle) => {
                            emit(Effect::CancelChild {
                                handle,
                                workflow_id,
                                why: ChildCancel::ParentCancelled,
                            })
                        }
                        _ => {}
                    }
                }
                self.policies.clear();
                self.cancelling.clear();
            }
            EventKind::RunCompleted { .. }
            | EventKind::RunFailed { .. }
            | EventKind::RunContinuedAsNew { .. }
            | EventKind::RunTerminated { .. } => {
                // The run's tasks and timers go with its close; its children follow their
                // policies. A child whose cancellation was already asked for is left to it.
                for (handle, op) in std::mem::take(&mut self.open) {
                    let PendingOp::Child(workflow_id) = op else {
                        continue;
                    };
                    if self.cancelling.contains(&handle) {
                        continue;
                    }
                    match self.policies.get(&handle).copied() {
                        Some(ParentClosePolicy::Terminate) => emit(Effect::TerminateChild {
                            handle,
                            workflow_id,
                        }),
                        Some(ParentClosePolicy::RequestCancel) => emit(Effect::CancelChild {
                            handle,
                            workflow_id,
                            why: ChildCancel::ParentClosed,
                        }),
                        Some(ParentClosePolicy::Abandon) | None => {}
                    }
                }
                self.policies.clear();
                self.cancelling.clear();
            }
            EventKind::RunStarted
            | EventKind::TimeRead { .. }
            | EventKind::MarkerRecorded { .. }
            | EventKind::RunMigrated { .. } => {}
        }
    }

    fn close(&mut self, handle: Handle) {
        self.open.remove(&handle);
        self.policies.remove(&handle);
        self.cancelling.remove(&handle);
    }
}

/// The operations of `events` that have not completed, by handle.
pub fn pending_operations(events: &[Event]) -> Vec<(Handle, PendingOp)> {
    Effects::after(events).pending()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;

    fn event(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            timestamp_ms: 100,
            kind,
        }
    }

    fn events(kinds: Vec<EventKind>) -> Vec<Event> {
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| event(i as u64 + 1, kind))
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

    fn activity(handle: Handle) -> EventKind {
        EventKind::ActivityScheduled {
            handle,
            name: "a".into(),
            input: Payload::null(),
            options: Default::default(),
        }
    }

    fn child(handle: Handle, policy: Option<ParentClosePolicy>) -> EventKind {
        EventKind::ChildWorkflowStarted {
            handle,
            workflow_type: "T".into(),
            workflow_id: format!("kid-{handle}"),
            task_queue: None,
            input: Payload::null(),
            parent_close_policy: policy,
        }
    }

    fn cancelled(handle: Handle, of_child: bool) -> EventKind {
        let completion = Completion::Err(Failure::Cancelled);
        if of_child {
            EventKind::ChildWorkflowCompleted { handle, completion }
        } else {
            EventKind::ActivityCompleted { handle, completion }
        }
    }

    /// Every effect of `kinds`, event by event.
    fn all_effects(kinds: Vec<EventKind>) -> Vec<Effect> {
        let mut effects = Effects::new();
        events(kinds).iter().flat_map(|e| effects.next(e)).collect()
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
            activity(4),
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

    #[test]
    fn a_cancelled_child_completes_cancelled_and_is_asked_to_cancel_once() {
        let effects = all_effects(vec![
            EventKind::RunStarted,
            child(0, Some(ParentClosePolicy::Terminate)),
            EventKind::CancelRequested { handle: 0 },
            EventKind::CancelRequested { handle: 0 },
            cancelled(0, true),
            EventKind::CancelRequested { handle: 0 },
            EventKind::RunCompleted {
                output: Payload::null(),
            },
        ]);
        assert_eq!(
            &effects[1..],
            [
                Effect::Deliver {
                    delivery: cancelled(0, true)
                },
                Effect::CancelChild {
                    handle: 0,
                    workflow_id: "kid-0".into(),
                    why: ChildCancel::HandleCancelled,
                },
            ],
            "twice and after completion: nothing more; the close leaves it alone"
        );
    }

    #[test]
    fn a_cancelled_activity_leaves_its_queue_and_completes_cancelled() {
        let effects = all_effects(vec![
            EventKind::RunStarted,
            activity(0),
            EventKind::CancelRequested { handle: 0 },
            EventKind::CancelRequested { handle: 0 },
        ]);
        assert_eq!(
            &effects[1..],
            [
                Effect::DropTask { handle: 0 },
                Effect::Deliver {
                    delivery: cancelled(0, false)
                }
            ]
        );
        // Completed first: the cancel asks for nothing.
        let effects = all_effects(vec![
            EventKind::RunStarted,
            activity(0),
            EventKind::ActivityCompleted {
                handle: 0,
                completion: Completion::Ok(Payload::null()),
            },
            EventKind::CancelRequested { handle: 0 },
        ]);
        assert_eq!(effects.len(), 1);
    }

    #[test]
    fn open_children_follow_their_policy_when_the_parent_closes() {
        let effects = all_effects(vec![
            EventKind::RunStarted,
            child(0, Some(ParentClosePolicy::Terminate)),
            child(1, Some(ParentClosePolicy::RequestCancel)),
            child(2, Some(ParentClosePolicy::Abandon)),
            // Recorded before policies existed: abandoned, as such children always were.
            child(3, None),
            child(4, Some(ParentClosePolicy::Terminate)),
            EventKind::ChildWorkflowCompleted {
                handle: 4,
                completion: Completion::Ok(Payload::null()),
            },
            EventKind::RunFailed {
                error: crate::payload::ErrorInfo::new("Boom", "boom"),
            },
        ]);
        assert_eq!(
            &effects[5..],
            [
                Effect::TerminateChild {
                    handle: 0,
                    workflow_id: "kid-0".into()
                },
                Effect::CancelChild {
                    handle: 1,
                    workflow_id: "kid-1".into(),
                    why: ChildCancel::ParentClosed
                },
            ]
        );
    }

    #[test]
    fn a_cancelled_run_lets_go_of_everything_it_waits_on() {
        let effects = all_effects(vec![
            EventKind::RunStarted,
            activity(0),
            EventKind::TimerStarted {
                handle: 1,
                duration_ms: 5,
            },
            child(2, Some(ParentClosePolicy::Abandon)),
            awaited(3, "go"),
            EventKind::RunCancelRequested {
                reason: "stop".into(),
            },
            // Clean-up started afterwards runs normally.
            activity(4),
            EventKind::RunCompleted {
                output: Payload::null(),
            },
        ]);
        assert_eq!(
            &effects[3..6],
            [
                Effect::DropTask { handle: 0 },
                Effect::DropTimer { handle: 1 },
                Effect::CancelChild {
                    handle: 2,
                    workflow_id: "kid-2".into(),
                    why: ChildCancel::ParentCancelled
                },
            ]
        );
        assert!(matches!(
            effects[6],
            Effect::ScheduleActivity { handle: 4, .. }
        ));
        assert_eq!(effects.len(), 7);
    }
}
