//! Rules of replay, pinned without any Wasm: a "guest" here is a Rust function driving a
//! [`Machine`] the way the engine does.

use crate::*;

fn header() -> RunHeader {
    RunHeader {
        workflow_id: "wf-1".into(),
        run_id: "run-1".into(),
        workflow_type: "Test".into(),
        task_queue: "q".into(),
        run_number: 1,
        module_sha256: "ab".into(),
        input: Payload::null(),
        seed: 42,
    }
}

fn fresh() -> Machine {
    Machine::new(History::start(header(), 1_000))
}

fn ready(wait: Wait) -> (u32, Completion) {
    match wait {
        Wait::Ready {
            index, completion, ..
        } => (index, completion),
        Wait::Blocked => panic!("expected a ready completion"),
    }
}

/// A small workflow: two activities in parallel, take the first, then a timer.
/// Returns `None` where it would block.
fn guest(m: &mut Machine) -> Result<Option<u64>, MachineError> {
    let a = m.start_activity("a".into(), Payload::from("1"), Default::default(), 1_000)?;
    let b = m.start_activity("b".into(), Payload::from("2"), Default::default(), 1_000)?;
    let Wait::Ready { index, .. } = m.wait_any(&[a, b])? else {
        return Ok(None);
    };
    let t = m.start_timer(10 + u64::from(index), 1_000)?;
    if m.wait_any(&[t])? == Wait::Blocked {
        return Ok(None);
    }
    let now = m.now(2_000)?;
    m.complete(Payload::from(now.to_string().as_str()), 2_000)?;
    Ok(Some(now))
}

#[test]
fn a_run_blocks_records_deliveries_and_replays_to_the_same_history() {
    let mut m = fresh();
    assert_eq!(guest(&mut m).unwrap(), None);
    m.deliver(
        EventKind::ActivityCompleted {
            handle: 1,
            completion: Completion::Ok(Payload::from("\"b\"")),
        },
        1_500,
    )
    .unwrap();
    // Re-run from scratch (the crash path) on the history so far.
    let mut m = Machine::new(m.into_history());
    assert!(m.is_replaying());
    assert_eq!(guest(&mut m).unwrap(), None);
    assert!(!m.is_replaying());
    m.deliver(EventKind::TimerFired { handle: 2 }, 1_600)
        .unwrap();
    let mut m = Machine::new(m.into_history());
    assert_eq!(guest(&mut m).unwrap(), Some(2_000));
    let history = m.into_history();
    let kinds: Vec<&str> = history.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "RunStarted",
            "ActivityScheduled",
            "ActivityScheduled",
            "ActivityCompleted",
            "TimerStarted",
            "TimerFired",
            "TimeRead",
            "RunCompleted"
        ]
    );
    // b came first, so the timer is 10 + 1.
    assert_eq!(
        history.events[4].kind,
        EventKind::TimerStarted {
            handle: 2,
            duration_ms: 11
        }
    );
    // Replay-only of the finished history is clean and consumes every event.
    let mut r = Machine::replay_only(history.clone());
    assert_eq!(guest(&mut r).unwrap(), Some(2_000));
    assert_eq!(r.replayed_events(), history.events.len());
}

#[test]
fn wait_any_returns_the_earliest_delivered_completion() {
    let mut m = fresh();
    let a = m
        .start_activity("a".into(), Payload::null(), Default::default(), 0)
        .unwrap();
    let b = m
        .start_activity("b".into(), Payload::null(), Default::default(), 0)
        .unwrap();
    assert_eq!(m.wait_any(&[a, b]).unwrap(), Wait::Blocked);
    for h in [b, a] {
        m.deliver(
            EventKind::ActivityCompleted {
                handle: h,
                completion: Completion::Ok(Payload::from(h.to_string().as_str())),
            },
            0,
        )
        .unwrap();
    }
    assert_eq!(
        ready(m.wait_any(&[a, b]).unwrap()).0,
        1,
        "b was delivered first"
    );
    assert_eq!(ready(m.wait_any(&[a]).unwrap()).0, 0);
    let err = m.wait_any(&[a]).unwrap_err();
    assert!(err.to_string().contains("already returned"), "{err}");
}

#[test]
fn a_changed_activity_is_non_determinism_naming_the_event() {
    let mut m = fresh();
    guest(&mut m).unwrap();
    let mut r = Machine::new(m.into_history());
    r.start_activity("a".into(), Payload::from("1"), Default::default(), 0)
        .unwrap();
    let err = r
        .start_activity("c".into(), Payload::from("2"), Default::default(), 0)
        .unwrap_err();
    let MachineError::NonDeterminism(nd) = &err else {
        panic!("{err}")
    };
    assert_eq!(nd.seq, 3);
    assert_eq!(nd.recorded, "ActivityScheduled #1 b(2)");
    assert_eq!(nd.new, "ActivityScheduled #1 c(2)");
    assert!(err.to_string().starts_with("non-determinism at event 3:"));
}

#[test]
fn waiting_where_a_command_was_recorded_is_non_determinism() {
    let mut m = fresh();
    let t = m.start_timer(5, 0).unwrap();
    m.start_timer(6, 0).unwrap();
    let mut r = Machine::new(m.into_history());
    let t2 = r.start_timer(5, 0).unwrap();
    assert_eq!(t, t2);
    let err = r.wait_any(&[t2]).unwrap_err();
    assert!(
        err.to_string()
            .contains("history has `TimerStarted #1 6ms` but the workflow now does `wait for #0`"),
        "{err}"
    );
}

#[test]
fn running_past_the_end_of_history_goes_on_live() {
    let mut m = fresh();
    m.start_timer(5, 0).unwrap();
    let mut r = Machine::new(m.into_history());
    r.start_timer(5, 0).unwrap();
    r.start_timer(7, 0).unwrap();
    assert_eq!(r.history().events.len(), 3);
    let mut only = Machine::replay_only(r.into_history());
    only.start_timer(5, 0).unwrap();
    only.start_timer(7, 0).unwrap();
    assert_eq!(
        only.start_timer(9, 0).unwrap_err(),
        MachineError::ReplayEnded
    );
}

#[test]
fn signals_are_buffered_until_awaited_and_matched_by_name() {
    let mut m = fresh();
    m.deliver(
        EventKind::SignalReceived {
            name: "approve".into(),
            payload: Payload::from("true"),
        },
        0,
    )
    .unwrap();
    let other = m.next_signal("reject".into(), 0).unwrap();
    let approve = m.next_signal("approve".into(), 0).unwrap();
    let (index, completion) = ready(m.wait_any(&[other, approve]).unwrap());
    assert_eq!(
        (index, completion),
        (1, Completion::Ok(Payload::from("true")))
    );
    assert_eq!(m.wait_any(&[other]).unwrap(), Wait::Blocked);
}

#[test]
fn cancelling_a_timer_completes_it_at_once_and_a_late_fire_is_refused() {
    let mut m = fresh();
    let t = m.start_timer(1_000, 0).unwrap();
    m.cancel(t, 0).unwrap();
    assert_eq!(
        ready(m.wait_any(&[t]).unwrap()).1,
        Completion::Err(Failure::Cancelled)
    );
    let before = m.history().events.len();
    assert_eq!(
        m.deliver(EventKind::TimerFired { handle: t }, 0),
        Err(DeliveryError::AlreadyCompleted(t))
    );
    assert_eq!(m.history().events.len(), before, "nothing appended");
}

#[test]
fn bad_deliveries_are_refused_without_appending() {
    let mut m = fresh();
    let t = m.start_timer(5, 0).unwrap();
    let cases = [
        (
            EventKind::TimerFired { handle: 9 },
            DeliveryError::UnknownHandle(9),
        ),
        (
            EventKind::ActivityCompleted {
                handle: t,
                completion: Completion::Ok(Payload::null()),
            },
            DeliveryError::WrongKind {
                handle: t,
                actual: "timer",
                expected: "activity",
            },
        ),
        (
            EventKind::TimeRead { now_ms: 1 },
            DeliveryError::NotADelivery("TimeRead"),
        ),
    ];
    for (delivery, expected) in cases {
        assert_eq!(m.deliver(delivery, 0), Err(expected));
    }
    assert_eq!(m.history().events.len(), 2);
    m.complete(Payload::null(), 0).unwrap();
    assert_eq!(
        m.deliver(EventKind::TimerFired { handle: t }, 0),
        Err(DeliveryError::RunClosed)
    );
}

#[test]
fn random_is_seeded_by_the_header_and_not_recorded() {
    let mut a = fresh();
    let mut b = fresh();
    let xs: Vec<u64> = (0..4).map(|_| a.random_u64()).collect();
    let ys: Vec<u64> = (0..4).map(|_| b.random_u64()).collect();
    assert_eq!(xs, ys);
    assert_ne!(xs[0], xs[1]);
    assert_eq!(a.history().events.len(), 1);
}

#[test]
fn now_reads_back_the_recorded_time() {
    let mut m = fresh();
    assert_eq!(m.now(5_000).unwrap(), 5_000);
    let mut r = Machine::new(m.into_history());
    assert_eq!(r.now(9_999).unwrap(), 5_000);
}

#[test]
fn a_completion_for_a_handle_never_issued_is_a_corrupt_history() {
    let mut h = History::start(header(), 0);
    h.append(
        0,
        EventKind::TimerStarted {
            handle: 0,
            duration_ms: 1,
        },
    );
    h.append(0, EventKind::TimerFired { handle: 3 });
    let mut r = Machine::new(h);
    let t = r.start_timer(1, 0).unwrap();
    let err = r.wait_any(&[t]).unwrap_err();
    assert_eq!(
        err,
        MachineError::CorruptHistory {
            seq: 3,
            problem: "no operation with handle 3".into()
        }
    );
}

#[test]
fn a_changed_timer_duration_or_child_type_or_signal_name_is_non_determinism() {
    let mut m = fresh();
    m.start_timer(5, 0).unwrap();
    m.start_child("Child".into(), Payload::null(), None, None, None, 0)
        .unwrap();
    m.next_signal("go".into(), 0).unwrap();
    let history = m.into_history();

    let mut r = Machine::new(history.clone());
    let err = r.start_timer(6, 0).unwrap_err();
    assert!(
        err.to_string()
            .contains("`TimerStarted #0 5ms` but the workflow now does `TimerStarted #0 6ms`"),
        "{err}"
    );

    let mut r = Machine::new(history.clone());
    r.start_timer(5, 0).unwrap();
    let err = r
        .start_child("Other".into(), Payload::null(), None, None, None, 0)
        .unwrap_err();
    assert!(
        matches!(
            err,
            MachineError::NonDeterminism(NonDeterminism { seq: 3, .. })
        ),
        "{err}"
    );

    let mut r = Machine::new(history);
    r.start_timer(5, 0).unwrap();
    r.start_child("Child".into(), Payload::null(), None, None, None, 0)
        .unwrap();
    let err = r.now(0).unwrap_err();
    assert!(
        err.to_string()
            .contains("`SignalAwaited #2 \"go\"` but the workflow now does `TimeRead"),
        "{err}"
    );
}

#[test]
fn a_child_without_an_id_is_named_after_its_parent_and_handle() {
    let mut m = fresh();
    m.start_timer(1, 0).unwrap();
    m.start_child("Child".into(), Payload::null(), None, None, None, 0)
        .unwrap();
    let EventKind::ChildWorkflowStarted { workflow_id, .. } = &m.history().events[2].kind else {
        panic!()
    };
    assert_eq!(workflow_id, "wf-1/1");
}

#[test]
fn a_terminated_run_replays_up_to_the_termination() {
    let mut m = fresh();
    let t = m.start_timer(60_000, 0).unwrap();
    assert_eq!(m.wait_any(&[t]).unwrap(), Wait::Blocked);
    m.terminate("operator".into(), 5).unwrap();
    assert!(m.is_closed());
    assert_eq!(
        m.deliver(EventKind::TimerFired { handle: t }, 6),
        Err(DeliveryError::RunClosed)
    );
    let mut r = Machine::replay_only(m.into_history());
    let t = r.start_timer(60_000, 0).unwrap();
    assert_eq!(r.wait_any(&[t]).unwrap_err(), MachineError::Terminated);
    assert_eq!(r.replayed_events(), 3);
}

/// Cancels the run while it waits on an activity and a timer, then runs a clean-up activity.
fn cancellable_guest(m: &mut Machine) -> Result<Option<Vec<Completion>>, MachineError> {
    let a = m.start_activity("work".into(), Payload::from("1"), Default::default(), 0)?;
    let t = m.start_timer(60_000, 0)?;
    let mut seen = Vec::new();
    for h in [a, t] {
        let Wait::Ready { completion, .. } = m.wait_any(&[h])? else {
            return Ok(None);
        };
        seen.push(completion);
    }
    let cleanup = m.start_activity("cleanup".into(), Payload::from("1"), Default::default(), 0)?;
    let Wait::Ready { completion, .. } = m.wait_any(&[cleanup])? else {
        return Ok(None);
    };
    seen.push(completion);
    m.fail(ErrorInfo::new("Cancelled", "cancelled"), 0)?;
    Ok(Some(seen))
}

#[test]
fn run_cancellation_completes_what_was_pending_and_not_what_comes_after() {
    let mut m = fresh();
    assert_eq!(cancellable_guest(&mut m).unwrap(), None);
    assert_eq!(
        m.pending(),
        vec![(0, PendingOp::Activity), (1, PendingOp::Timer)]
    );
    assert!(!m.cancel_requested());
    m.deliver(
        EventKind::RunCancelRequested {
            reason: "user".into(),
        },
        5,
    )
    .unwrap();
    assert!(m.cancel_requested());
    assert!(m.pending().is_empty());
    // Re-run the guest on a machine replaying this history: it reaches the clean-up and blocks.
    let mut live = Machine::new(m.history().clone());
    assert_eq!(cancellable_guest(&mut live).unwrap(), None);
    assert_eq!(live.pending(), vec![(2, PendingOp::Activity)]);
    live.deliver(
        EventKind::ActivityCompleted {
            handle: 2,
            completion: Completion::Ok(Payload::from("\"cleaned\"")),
        },
        6,
    )
    .unwrap();
    let mut replay = Machine::new(live.history().clone());
    let mut live2 = replay.clone();
    let seen = cancellable_guest(&mut live2).unwrap().unwrap();
    assert_eq!(
        seen,
        vec![
            Completion::Err(Failure::Cancelled),
            Completion::Err(Failure::Cancelled),
            Completion::Ok(Payload::from("\"cleaned\"")),
        ]
    );
    // A late activity result for a cancelled handle is refused.
    assert!(
        replay
            .deliver(
                EventKind::ActivityCompleted {
                    handle: 0,
                    completion: Completion::Ok(Payload::null())
                },
                7
            )
            .is_err()
    );
}

#[test]
fn a_run_past_a_limit_fails_with_the_limit_named_and_replays_after_the_limit_changes() {
    let limits = Limits {
        max_pending_activities: 2,
        max_events: 10,
        ..Limits::default()
    };
    let mut m = fresh();
    m.set_limits(limits);
    let start = |m: &mut Machine, n: u32| {
        m.start_activity(format!("a{n}"), Payload::null(), Default::default(), 1_000)
    };
    start(&mut m, 1).unwrap();
    start(&mut m, 2).unwrap();
    let Err(MachineError::LimitExceeded(error)) = start(&mut m, 3) else {
        panic!("the third pending activity is refused");
    };
    assert_eq!(error.kind, LIMIT_EXCEEDED);
    assert!(
        error.message.contains("2 pending activities"),
        "{}",
        error.message
    );
    // The engine fails the run with it.
    m.fail(error.clone(), 1_000).unwrap();
    let history = m.into_history();
    assert_eq!(history.events.len(), 4);

    // Replayed with the limits raised, the run stops at the same place with the same error.
    let mut again = Machine::new(history.clone());
    again.set_limits(Limits::default());
    start(&mut again, 1).unwrap();
    start(&mut again, 2).unwrap();
    let Err(MachineError::LimitExceeded(replayed)) = start(&mut again, 3) else {
        panic!("replay stops where the run stopped");
    };
    again.fail(replayed, 1_000).unwrap();
    assert_eq!(again.into_history(), history);

    // The history limit names continue-as-new.
    let mut long = fresh();
    long.set_limits(Limits {
        max_events: 4,
        ..Limits::default()
    });
    long.now(1_000).unwrap();
    long.now(1_000).unwrap();
    let Err(MachineError::LimitExceeded(error)) = long.now(1_000) else {
        panic!("the history is full");
    };
    assert!(
        error.message.contains("continue-as-new"),
        "{}",
        error.message
    );
    long.fail(error, 1_000).unwrap();
    assert_eq!(long.history().events.len(), 4);
}

#[test]
fn a_migration_marker_is_invisible_to_the_workflow_on_replay() {
    let mut m = fresh();
    assert_eq!(guest(&mut m).unwrap(), None);
    // Moved to another module while it waits on both activities.
    m.deliver(
        EventKind::RunMigrated {
            from: "ab".into(),
            to: "cd".into(),
        },
        1_200,
    )
    .unwrap();
    assert_eq!(
        m.pending(),
        vec![(0, PendingOp::Activity), (1, PendingOp::Activity)]
    );
    m.deliver(
        EventKind::ActivityCompleted {
            handle: 0,
            completion: Completion::Ok(Payload::from("\"a\"")),
        },
        1_500,
    )
    .unwrap();
    // The crash path replays through the marker to the timer, then goes on live.
    let mut m = Machine::new(m.into_history());
    assert_eq!(guest(&mut m).unwrap(), None);
    assert!(!m.is_replaying());
    assert_eq!(
        m.pending(),
        vec![(1, PendingOp::Activity), (2, PendingOp::Timer)]
    );
    // A migration on a closed run is refused like any late delivery.
    m.deliver(EventKind::TimerFired { handle: 2 }, 1_600)
        .unwrap();
    let mut m = Machine::new(m.into_history());
    assert_eq!(guest(&mut m).unwrap(), Some(2_000));
    assert_eq!(
        m.deliver(
            EventKind::RunMigrated {
                from: "cd".into(),
                to: "ef".into()
            },
            3_000
        ),
        Err(DeliveryError::RunClosed)
    );
    let history = m.into_history();
    assert_eq!(history.events[3].kind.name(), "RunMigrated");
    assert_eq!(
        history.events[3].kind.to_string(),
        "RunMigrated from ab to cd"
    );
    let mut r = Machine::replay_only(history.clone());
    assert_eq!(guest(&mut r).unwrap(), Some(2_000));
    assert_eq!(r.replayed_events(), history.events.len());
}
