//! One storage test suite, run on every backend: SQLite (a fresh file) and PostgreSQL (a
//! fresh database on the local server, dropped afterwards).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use weft_history::{ActivityOptions, ErrorInfo, Event, EventKind, Payload};
use weft_store::*;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn pg_admin_url() -> String {
    std::env::var("WEFT_TEST_POSTGRES_URL").unwrap_or_else(|_| ADMIN_URL.to_owned())
}

/// Runs `test` on SQLite and on PostgreSQL.
async fn on_every_backend<F, Fut>(test: F)
where
    F: Fn(SqlStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = weft_store::open(&format!("sqlite:{}", dir.path().join("weft.db").display()))
        .await
        .expect("sqlite opens");
    test(sqlite).await;

    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "weft_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let admin_url = pg_admin_url();
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is not reachable at {admin_url} ({e}); start it (see .ci/run) or set WEFT_TEST_POSTGRES_URL")
    });
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    let pg = weft_store::open(&url).await.expect("postgres opens");
    test(pg).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
}

const TRACE_CONTEXT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn run(run_id: &str, workflow_id: &str, started_at_ms: u64) -> RunRecord {
    RunRecord {
        run_id: run_id.into(),
        workflow_id: workflow_id.into(),
        workflow_type: "Greeting".into(),
        task_queue: "q".into(),
        run_number: 1,
        module_id: "m1".into(),
        input: Payload::from("\"World\""),
        seed: u64::MAX - 5,
        status: RunStatus::Running,
        output: None,
        error: None,
        started_at_ms,
        closed_at_ms: None,
        history_length: 0,
        parent: Some(("parent-run".into(), 3)),
        owner: None,
        trace_context: Some(TRACE_CONTEXT.into()),
    }
}

/// The node that commits in these tests.
const NODE: &str = "node-a";

fn batch(steps: Vec<StepWrite>) -> Batch {
    Batch {
        node: NODE.into(),
        steps,
        ..Default::default()
    }
}

/// A batch that creates `run` with `first` as its first step.
fn creating(run: RunRecord, first: StepWrite) -> Batch {
    batch(vec![StepWrite {
        create: Some(run),
        ..first
    }])
}

fn event(seq: u64, kind: EventKind) -> Event {
    Event {
        seq,
        timestamp_ms: 1000 + seq,
        kind,
    }
}

fn first_step(run_id: &str) -> StepWrite {
    StepWrite {
        run_id: run_id.into(),
        events: vec![
            event(1, EventKind::RunStarted),
            event(
                2,
                EventKind::ActivityScheduled {
                    handle: 0,
                    name: "compose".into(),
                    input: Payload::from("1"),
                    options: ActivityOptions::default(),
                },
            ),
            event(
                3,
                EventKind::TimerStarted {
                    handle: 1,
                    duration_ms: 50,
                },
            ),
        ],
        new_tasks: vec![NewTask {
            handle: 0,
            workflow_id: "wf".into(),
            task_queue: "q".into(),
            activity_name: "compose".into(),
            input: Payload::from("1"),
            options: ActivityOptions {
                start_to_close_timeout_ms: Some(10),
                ..Default::default()
            },
            scheduled_at_ms: 1000,
            trace_context: Some(TRACE_CONTEXT.into()),
            claim: None,
        }],
        new_timers: vec![TimerRecord {
            run_id: run_id.into(),
            handle: 1,
            fire_at_ms: 1050,
        }],
        ..Default::default()
    }
}

async fn with_module(store: &SqlStore) {
    store
        .put_module("Greeting", "m1", b"component-bytes", 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn modules_are_content_addressed_and_the_newest_wins() {
    on_every_backend(|store| async move {
        assert_eq!(store.newest_module("Greeting").await.unwrap(), None);
        with_module(&store).await;
        store
            .put_module("Greeting", "m1", b"component-bytes", 2)
            .await
            .unwrap();
        store.put_module("Greeting", "m2", b"v2", 3).await.unwrap();
        assert_eq!(
            store.newest_module("Greeting").await.unwrap().as_deref(),
            Some("m2")
        );
        assert_eq!(
            store.module("m1").await.unwrap().as_deref(),
            Some(&b"component-bytes"[..])
        );
        assert_eq!(store.module("nope").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_run_and_its_history_round_trip() {
    on_every_backend(|store| async move {
        with_module(&store).await;
        store
            .commit(&creating(run("r1", "wf", 10), first_step("r1")))
            .await
            .unwrap();
        let stored = store.run("r1").await.unwrap().unwrap();
        assert_eq!(stored.seed, u64::MAX - 5);
        assert_eq!(stored.history_length, 3);
        assert_eq!(stored.parent, Some(("parent-run".into(), 3)));
        assert_eq!(stored.owner.as_deref(), Some(NODE));
        assert_eq!(stored.trace_context.as_deref(), Some(TRACE_CONTEXT));
        let history = store.history("r1").await.unwrap().unwrap();
        assert_eq!(history.events, first_step("r1").events);
        history.check().unwrap();
        assert_eq!(history.header.module_sha256, "m1");
        assert!(store.history("nope").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn one_running_run_per_workflow_id() {
    on_every_backend(|store| async move {
        with_module(&store).await;
        store
            .commit(&creating(run("r1", "wf", 10), first_step("r1")))
            .await
            .unwrap();
        let err = store
            .commit(&creating(run("r2", "wf", 11), first_step("r2")))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::AlreadyRunning { run_id, .. } if run_id == "r1"),
            "{err}"
        );
        assert!(
            store.run("r2").await.unwrap().is_none(),
            "nothing of r2 was written"
        );
        store
            .commit(&batch(vec![completing("r1", 4)]))
            .await
            .unwrap();
        store
            .commit(&creating(run("r2", "wf", 30), first_step("r2")))
            .await
            .unwrap();
        assert_eq!(store.latest_run("wf").await.unwrap().unwrap().run_id, "r2");
        // Closing deleted r1's pending task and timer.
        assert!(store.task("r1/0").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn a_batch_with_a_gap_in_the_history_writes_nothing() {
    on_every_backend(|store| async move {
        with_module(&store).await;
        store
            .commit(&creating(run("r1", "wf1", 10), first_step("r1")))
            .await
            .unwrap();
        store
            .commit(&creating(run("r2", "wf2", 10), first_step("r2")))
            .await
            .unwrap();
        store
            .commit(&creating(run("r3", "wf3", 10), first_step("r3")))
            .await
            .unwrap();
        let good = StepWrite {
            run_id: "r1".into(),
            events: vec![event(4, EventKind::TimerFired { handle: 1 })],
            done_timers: vec![1],
            ..Default::default()
        };
        let also_good = StepWrite {
            run_id: "r3".into(),
            events: vec![event(4, EventKind::TimerFired { handle: 1 })],
            ..Default::default()
        };
        let gap = StepWrite {
            run_id: "r2".into(),
            events: vec![event(9, EventKind::TimerFired { handle: 1 })],
            ..Default::default()
        };
        // Three advances in one statement, padded to four with a copy of the last (the gap).
        let err = store
            .commit(&batch(vec![good.clone(), also_good, gap]))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NotContiguous {
                    stored: 3,
                    first: 9,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            store.history("r1").await.unwrap().unwrap().events.len(),
            3,
            "r1's step rolled back"
        );
        assert_eq!(store.history("r3").await.unwrap().unwrap().events.len(), 3);
        assert_eq!(store.due_timers(NODE, 2000, 10).await.unwrap().len(), 3);
        store.commit(&batch(vec![good])).await.unwrap();
        assert_eq!(store.history("r1").await.unwrap().unwrap().events.len(), 4);
        assert_eq!(store.due_timers(NODE, 2000, 10).await.unwrap().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn tasks_are_leased_once_expire_and_retry_with_the_next_attempt() {
    on_every_backend(|store| async move {
        with_module(&store).await;
        store
            .commit(&creating(run("r1", "wf", 10), first_step("r1")))
            .await
            .unwrap();
        assert!(
            store
                .claim_tasks("other", 5, 1000, 2000, "secret")
                .await
                .unwrap()
                .is_empty()
        );
        let claimed = store
            .claim_tasks("q", 5, 1000, 2000, "secret")
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let task = &claimed[0];
        assert_eq!(
            (
                task.task_id.as_str(),
                task.workflow_id.as_str(),
                task.attempt
            ),
            ("r1/0", "wf", 1)
        );
        assert_eq!(task.options.start_to_close_timeout_ms, Some(10));
        assert_eq!(task.trace_context.as_deref(), Some(TRACE_CONTEXT));
        assert_eq!(
            task.lease_until_ms,
            Some(1010),
            "leased for its own start-to-close, not the default"
        );
        assert!(
            store
                .claim_tasks("q", 5, 1000, 2000, "secret")
                .await
                .unwrap()
                .is_empty(),
            "leased"
        );
        assert!(store.expired_tasks(1009, 10).await.unwrap().is_empty());
        assert_eq!(task.claimed_at_ms, Some(1000));
        assert!(
            store
                .heartbeat("r1/0", 1, b"50%", 1005, 3000)
                .await
                .unwrap()
        );
        assert!(
            !store.heartbeat("r1/0", 2, b"x", 1005, 3000).await.unwrap(),
            "wrong attempt"
        );
        let pending = store.run_tasks("r1").await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].last_heartbeat_ms, Some(1005));
        let queues = store.queue_stats(1006).await.unwrap();
        assert_eq!(queues.len(), 1);
        assert_eq!(
            (
                queues[0].task_queue.as_str(),
                queues[0].ready,
                queues[0].leased
            ),
            ("q", 0, 1)
        );
        let expired = store.expired_tasks(3001, 10).await.unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].heartbeat_details.as_deref(), Some(&b"50%"[..]));
        let timed_out = AttemptFailure {
            kind: "TimedOut".into(),
            message: "heartbeat timeout".into(),
            at_ms: 3001,
        };
        assert!(
            store
                .retry_task("r1/0", 1, Some("secret"), 4000, &timed_out)
                .await
                .unwrap()
        );
        assert!(
            !store
                .retry_task("r1/0", 1, Some("secret"), 4000, &timed_out)
                .await
                .unwrap(),
            "retried once only"
        );
        let attempts = store.run_attempts("r1").await.unwrap();
        assert_eq!(
            attempts,
            [AttemptRecord {
                handle: 0,
                attempt: 1,
                started_at_ms: Some(1000),
                ended_at_ms: 3001,
                error_kind: "TimedOut".into(),
                error_message: "heartbeat timeout".into(),
                retry_at_ms: 4000,
            }],
            "the failed attempt is kept once"
        );
        let task = &store.run_tasks("r1").await.unwrap()[0];
        assert_eq!(task.last_error.as_ref().unwrap().kind, "TimedOut");
        let queues = store.queue_stats(3999).await.unwrap();
        assert_eq!(
            (queues[0].ready, queues[0].leased, queues[0].backing_off),
            (0, 0, 1)
        );
        let queues = store.queue_stats(4100).await.unwrap();
        assert_eq!(
            (queues[0].ready, queues[0].oldest_ready_since_ms),
            (1, Some(4000))
        );
        assert!(
            store
                .claim_tasks("q", 5, 3999, 9000, "secret")
                .await
                .unwrap()
                .is_empty(),
            "backing off"
        );
        let again = store
            .claim_tasks("q", 5, 4000, 9000, "secret")
            .await
            .unwrap();
        assert_eq!(again[0].attempt, 2);
    })
    .await;
}

#[tokio::test]
async fn the_running_runs_of_many_workflow_ids_are_read_at_once() {
    on_every_backend(|store| async move {
        with_module(&store).await;
        for (run_id, workflow_id) in [("r1", "wf1"), ("r2", "wf2"), ("r3", "wf3")] {
            store
                .commit(&creating(run(run_id, workflow_id, 10), first_step(run_id)))
                .await
                .unwrap();
        }
        store
            .commit(&batch(vec![completing("r2", 4)]))
            .await
            .unwrap();
        // More ids than one statement holds, most of them never started.
        let mut asked: Vec<String> = (0..300).map(|n| format!("ghost{n}")).collect();
        asked.insert(7, "wf1".into());
        asked.push("wf2".into());
        asked.push("wf3".into());
        let mut found: Vec<(String, String)> = store
            .running_runs_of(&asked)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.workflow_id, r.run_id))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [("wf1".into(), "r1".into()), ("wf3".into(), "r3".into())]
        );
        assert!(store.running_runs_of(&[]).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn runs_are_listed_newest_first_filtered_and_paged() {
    on_every_backend(|store| async move {
        with_module(&store).await;
        for i in 0..5u64 {
            let id = format!("r{i}");
            store
                .commit(&creating(
                    run(&id, &format!("wf{i}"), 100 + i),
                    first_step(&id),
                ))
                .await
                .unwrap();
        }
        store
            .commit(&batch(vec![StepWrite {
                run_id: "r3".into(),
                events: vec![event(
                    4,
                    EventKind::RunFailed {
                        error: ErrorInfo::new("Boom", "x"),
                    },
                )],
                close: Some(RunClose {
                    status: RunStatus::Failed,
                    output: None,
                    error: Some(ErrorInfo::new("Boom", "x")),
                    closed_at_ms: 200,
                }),
                ..Default::default()
            }]))
            .await
            .unwrap();
        let all = RunFilter::default();
        let page1 = store.list_runs(&all, None, 2).await.unwrap();
        let ids: Vec<&str> = page1.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["r4", "r3"]);
        let last = page1.last().unwrap();
        let page2 = store
            .list_runs(&all, Some((last.started_at_ms, last.run_id.clone())), 2)
            .await
            .unwrap();
        let ids: Vec<&str> = page2.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["r2", "r1"]);
        let failed = RunFilter {
            status: Some(RunStatus::Failed),
            ..RunFilter::default()
        };
        let failed = store.list_runs(&failed, None, 10).await.unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].error.as_ref().unwrap().kind, "Boom");
        let other_type = RunFilter {
            workflow_type: Some("Other".into()),
            ..RunFilter::default()
        };
        assert!(
            store
                .list_runs(&other_type, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.running_runs().await.unwrap().len(), 4);
        let prefix = |p: &str| RunFilter {
            workflow_id_prefix: Some(p.into()),
            ..RunFilter::default()
        };
        let ids: Vec<String> = store
            .list_runs(&prefix("wf3"), None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(ids, ["r3"]);
        assert!(
            store
                .list_runs(&prefix("wf%"), None, 10)
                .await
                .unwrap()
                .is_empty(),
            "no wildcards"
        );
        let mut counts = store.count_runs(&all).await.unwrap();
        counts.sort_by_key(|(s, _)| s.as_str());
        assert_eq!(counts, [(RunStatus::Failed, 1), (RunStatus::Running, 4)]);
        assert_eq!(
            store.count_runs(&prefix("wf3")).await.unwrap(),
            [(RunStatus::Failed, 1)]
        );
        let modules = store.modules().await.unwrap();
        assert_eq!(modules.len(), 1);
        assert_eq!(
            (
                modules[0].size_bytes,
                modules[0].newest,
                modules[0].running_runs,
                modules[0].closed_runs
            ),
            (15, true, 4, 1)
        );
        assert_eq!(store.runs_numbered("wf2", 1).await.unwrap().len(), 1);
        assert!(store.child_runs("r1").await.unwrap().is_empty());
        let timers = store.run_timers("r1").await.unwrap();
        assert_eq!(timers.len(), 1);
        assert_eq!(timers[0].fire_at_ms, 1050);
    })
    .await;
}

/// A step of r1 (which has 3 events) that fires its timer.
fn timer_fired(run_id: &str) -> StepWrite {
    StepWrite {
        run_id: run_id.into(),
        events: vec![event(4, EventKind::TimerFired { handle: 1 })],
        done_timers: vec![1],
        ..Default::default()
    }
}

#[tokio::test]
async fn only_the_owner_steps_a_run_and_a_dead_owners_runs_are_adopted() {
    on_every_backend(|store| async move {
        with_module(&store).await;
        assert!(!store.renew_node(NODE, 5_000).await.unwrap(), "a new node");
        assert!(store.renew_node(NODE, 5_000).await.unwrap());
        assert!(!store.renew_node("node-b", 5_000).await.unwrap());
        store
            .commit(&creating(run("r1", "wf", 10), first_step("r1")))
            .await
            .unwrap();
        // node-b may not step node-a's run: the whole batch is refused.
        let mut from_b = batch(vec![timer_fired("r1")]);
        from_b.node = "node-b".into();
        from_b.routed.push(RoutedCommand {
            owner: NODE.into(),
            run_id: "r1".into(),
            command: "{}".into(),
            created_at_ms: 1,
        });
        let err = store.commit(&from_b).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::NotOwner { run_id, .. } if run_id == "r1"),
            "{err}"
        );
        assert!(
            store.inbox(NODE, 10).await.unwrap().is_empty(),
            "nothing written"
        );
        assert!(
            store
                .due_timers("node-b", 2000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.due_timers(NODE, 2000, 10).await.unwrap().len(), 1);
        // It routes the command to node-a's inbox instead; node-a consumes it in a step.
        from_b.steps.clear();
        store.commit(&from_b).await.unwrap();
        let inbox = store.inbox(NODE, 10).await.unwrap();
        assert_eq!(inbox.len(), 1);
        assert_eq!(
            (inbox[0].run_id.as_str(), inbox[0].command.as_str()),
            ("r1", "{}")
        );
        // While node-a is alive nothing is adopted; once its lease ran out, node-b takes its
        // runs and its inbox, and node-a is fenced off.
        assert!(store.node_alive(NODE, 4_000).await.unwrap());
        assert_eq!(store.adopt_orphans("node-b", 4_000).await.unwrap(), 0);
        assert!(!store.adopt_run("r1", "node-b", 4_000).await.unwrap());
        assert!(!store.node_alive(NODE, 6_000).await.unwrap());
        store.renew_node("node-b", 60_000).await.unwrap();
        assert_eq!(store.adopt_orphans("node-b", 6_000).await.unwrap(), 1);
        assert_eq!(
            store.run("r1").await.unwrap().unwrap().owner.as_deref(),
            Some("node-b")
        );
        assert_eq!(store.inbox("node-b", 10).await.unwrap().len(), 1);
        let err = store
            .commit(&batch(vec![timer_fired("r1")]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotOwner { .. }), "{err}");
        assert!(
            !store.renew_node(NODE, 70_000).await.unwrap(),
            "node-a was forgotten"
        );
        let mut step_b = batch(vec![timer_fired("r1")]);
        step_b.node = "node-b".into();
        step_b.inbox_done = vec![inbox[0].id];
        store.commit(&step_b).await.unwrap();
        assert_eq!(store.history("r1").await.unwrap().unwrap().events.len(), 4);
        assert!(store.inbox("node-b", 10).await.unwrap().is_empty());
        // A run nobody owns (e.g. from before owners existed) is adopted on demand.
        store
            .commit(&creating(run("r2", "wf2", 10), first_step("r2")))
            .await
            .unwrap();
        assert!(
            !store.adopt_run("r2", "node-b", 6_000).await.unwrap(),
            "node-a is alive again"
        );
        assert!(store.adopt_run("r2", "node-b", 80_000).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn tokens_keep_their_scopes_revoke_once_and_the_audit_log_is_ordered() {
    on_every_backend(|store| async move {
        let token = TokenRecord {
            name: "gpu-worker".into(),
            hash: "ab".repeat(32),
            role: "worker".into(),
            queues: Some(vec!["inference".into(), "cpu".into()]),
            types: None,
            created_at_ms: 1_000,
            expires_at_ms: Some(90_000),
            last_used_ms: None,
            revoked_at_ms: None,
        };
        store.create_token(&token).await.unwrap();
        let again = store.create_token(&token).await.unwrap_err();
        assert!(
            matches!(again, StoreError::TokenExists(ref n) if n == "gpu-worker"),
            "{again}"
        );
        assert_eq!(
            store.token_by_hash(&"ab".repeat(32)).await.unwrap(),
            Some(token.clone())
        );
        assert_eq!(store.token_by_hash("nope").await.unwrap(), None);
        store.touch_token("gpu-worker", 5_000).await.unwrap();
        assert!(store.revoke_token("gpu-worker", 6_000).await.unwrap());
        assert!(
            !store.revoke_token("gpu-worker", 7_000).await.unwrap(),
            "once"
        );
        assert!(!store.revoke_token("nobody", 7_000).await.unwrap());
        let listed = store.tokens().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].last_used_ms, listed[0].revoked_at_ms),
            (Some(5_000), Some(6_000))
        );

        for (at, action) in [
            (20, "token_create"),
            (10, "upload_module"),
            (30, "terminate"),
        ] {
            store
                .append_audit(&AuditRecord {
                    at_ms: at,
                    actor: "admin".into(),
                    action: action.into(),
                    target: "x".into(),
                    peer: "127.0.0.1:1".into(),
                    outcome: "ok".into(),
                })
                .await
                .unwrap();
        }
        let entries = store.audit_since(15, 10).await.unwrap();
        let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["token_create", "terminate"]);
    })
    .await;
}

#[tokio::test]
async fn a_migration_repins_the_run_only_if_its_history_did_not_grow() {
    on_every_backend(|store| async move {
        with_module(&store).await;
        store.put_module("Greeting", "m2", b"v2", 2).await.unwrap();
        store
            .commit(&creating(run("r1", "wf1", 10), first_step("r1")))
            .await
            .unwrap();
        let migrated = |seq| StepWrite {
            run_id: "r1".into(),
            events: vec![event(
                seq,
                EventKind::RunMigrated {
                    from: "m1".into(),
                    to: "m2".into(),
                },
            )],
            pin_module: Some("m2".into()),
            ..Default::default()
        };
        // Vetted on 3 events, but the timer fired meanwhile: refused, still on m1.
        store.commit(&batch(vec![timer_fired("r1")])).await.unwrap();
        let err = store.commit(&batch(vec![migrated(4)])).await.unwrap_err();
        assert!(
            matches!(err, StoreError::NotContiguous { stored: 4, .. }),
            "{err}"
        );
        assert_eq!(store.run("r1").await.unwrap().unwrap().module_id, "m1");
        // On the history as it is now: re-pinned with the event, and the history says so.
        store.commit(&batch(vec![migrated(5)])).await.unwrap();
        assert_eq!(store.run("r1").await.unwrap().unwrap().module_id, "m2");
        let history = store.history("r1").await.unwrap().unwrap();
        assert_eq!(history.header.module_sha256, "m2");
        assert_eq!(history.events.len(), 5);
        assert_eq!(history.events[4].kind.name(), "RunMigrated");
        // The modules listing counts the run on its new module.
        let modules = store.modules().await.unwrap();
        let running = |id: &str| {
            modules
                .iter()
                .find(|m| m.module_id == id)
                .map(|m| m.running_runs)
                .unwrap()
        };
        assert_eq!((running("m1"), running("m2")), (0, 1));
    })
    .await;
}

#[tokio::test]
async fn a_task_no_worker_took_in_time_is_found_until_one_takes_it() {
    on_every_backend(|store| async move {
        with_module(&store).await;
        let mut step = first_step("r1");
        step.new_tasks[0].options.schedule_to_start_timeout_ms = Some(200);
        store
            .commit(&creating(run("r1", "wf1", 10), step))
            .await
            .unwrap();
        // Visible at 1000: due to start by 1200.
        assert!(store.unstarted_tasks(1200, 10).await.unwrap().is_empty());
        let late = store.unstarted_tasks(1201, 10).await.unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].options.schedule_to_start_timeout_ms, Some(200));
        // Retried: the next attempt has its own 200 ms from when it becomes visible.
        let failure = AttemptFailure {
            kind: "ScheduleToStartTimeout".into(),
            message: "nobody".into(),
            at_ms: 1201,
        };
        assert!(
            store
                .retry_task("r1/0", 1, None, 1300, &failure)
                .await
                .unwrap()
        );
        assert!(store.unstarted_tasks(1500, 10).await.unwrap().is_empty());
        assert_eq!(store.unstarted_tasks(1501, 10).await.unwrap().len(), 1);
        // Taken by a worker: no longer a schedule-to-start matter, and a sweep that saw it
        // unclaimed a moment before cannot fail the attempt the worker now holds.
        let seen = store.unstarted_tasks(1501, 10).await.unwrap().remove(0);
        let claimed = store
            .claim_tasks("q", 5, 1400, 2000, "secret")
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(store.unstarted_tasks(9999, 10).await.unwrap().is_empty());
        let stale = store
            .retry_task(
                "r1/0",
                seen.attempt,
                seen.claim_secret.as_deref(),
                1600,
                &failure,
            )
            .await
            .unwrap();
        assert!(!stale, "the sweep's view was stale");
        assert_eq!(store.task("r1/0").await.unwrap().unwrap().attempt, 2);
    })
    .await;
}

#[tokio::test]
async fn a_closed_store_refuses_calls_from_every_clone() {
    on_every_backend(|store| async move {
        with_module(&store).await;
        store
            .commit(&creating(run("r1", "wf", 10), first_step("r1")))
            .await
            .unwrap();
        let other = store.clone();
        store.close().await;
        // Every clone shares the connections: none of them writes or reads any more.
        let err = other
            .commit(&creating(run("r2", "wf2", 11), first_step("r2")))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Unavailable(_) | StoreError::Database(_)),
            "{err}"
        );
        assert!(other.run("r1").await.is_err(), "a read after close fails");
    })
    .await;
}

/// A step that closes `run_id` as completed with its event `seq`.
fn completing(run_id: &str, seq: u64) -> StepWrite {
    StepWrite {
        run_id: run_id.into(),
        events: vec![event(
            seq,
            EventKind::RunCompleted {
                output: Payload::from("1"),
            },
        )],
        close: Some(RunClose {
            status: RunStatus::Completed,
            output: Some(Payload::from("1")),
            error: None,
            closed_at_ms: 20,
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_batch_of_many_runs_writes_each_step_in_order() {
    on_every_backend(|store| async move {
        with_module(&store).await;
        for (run_id, workflow_id) in [("r1", "wf1"), ("r2", "wf2")] {
            store
                .commit(&creating(run(run_id, workflow_id, 10), first_step(run_id)))
                .await
                .unwrap();
        }
        let created = |run_id: &str, workflow_id: &str, first: StepWrite| StepWrite {
            create: Some(run(run_id, workflow_id, 30)),
            ..first
        };
        let mut closes_at_once = created("r5", "wf5", first_step("r5"));
        closes_at_once.events.extend(completing("r5", 4).events);
        closes_at_once.close = completing("r5", 4).close;
        // Closes, plain advances, created runs (one of the workflow id closed before it,
        // one stepped twice, one closed at once), in one batch.
        store
            .commit(&batch(vec![
                completing("r1", 4),
                created("r3", "wf1", first_step("r3")),
                timer_fired("r2"),
                created("r4", "wf4", first_step("r4")),
                timer_fired("r4"),
                closes_at_once,
            ]))
            .await
            .unwrap();
        let length = |run_id: &'static str| {
            let store = store.clone();
            async move { store.history(run_id).await.unwrap().unwrap().events.len() }
        };
        assert_eq!(
            [
                length("r1").await,
                length("r2").await,
                length("r3").await,
                length("r4").await,
                length("r5").await
            ],
            [4, 4, 3, 4, 4]
        );
        let status = |run_id: &'static str| {
            let store = store.clone();
            async move { store.run(run_id).await.unwrap().unwrap().status }
        };
        assert_eq!(status("r1").await, RunStatus::Completed);
        assert_eq!(status("r3").await, RunStatus::Running);
        assert_eq!(status("r5").await, RunStatus::Completed);
        assert_eq!(store.latest_run("wf1").await.unwrap().unwrap().run_id, "r3");

        // One of three new runs has a running run of its workflow id: the error names both,
        // and none of the three is written.
        let err = store
            .commit(&batch(vec![
                created("r6", "wf6", first_step("r6")),
                created("r7", "wf2", first_step("r7")),
                created("r8", "wf8", first_step("r8")),
            ]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::AlreadyRunning { workflow_id, run_id }
                if workflow_id == "wf2" && run_id == "r2"),
            "{err}"
        );
        for run_id in ["r6", "r7", "r8"] {
            assert!(store.run(run_id).await.unwrap().is_none(), "{run_id}");
        }
    })
    .await;
}

/// SQLite only: the write-ahead log is copied into the database by the store's checkpoint
/// thread (the writer's own automatic checkpoints are off), so that the log does not grow
/// without bound under steady commits.
#[tokio::test]
async fn the_sqlite_log_is_checkpointed_while_commits_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weft.db");
    let store = weft_store::open(&format!("sqlite:{}", path.display()))
        .await
        .expect("sqlite opens");
    with_module(&store).await;
    let log_bytes = || {
        std::fs::metadata(dir.path().join("weft.db-wal"))
            .expect("the log exists while the store is open")
            .len()
    };
    let commit = |i: usize| {
        let store = store.clone();
        async move {
            let run_id = format!("r{i}");
            store
                .commit(&creating(
                    run(&run_id, &format!("wf{i}"), 10),
                    first_step(&run_id),
                ))
                .await
                .unwrap();
        }
    };
    // The log's growth per commit, before the first checkpoint is asked for (at 64).
    let before = log_bytes();
    for i in 0..10 {
        commit(i).await;
    }
    let per_commit = (log_bytes() - before) / 10;
    assert!(per_commit > 0, "commits write to the log");
    const COMMITS: usize = 1_000;
    for i in 10..COMMITS {
        commit(i).await;
    }
    // Never copied back, the log would hold all 1,000 commits. Copied every 64 commits, the
    // writer starts it over and it holds a few dozen commits' worth at most.
    let log = log_bytes();
    assert!(
        log < 300 * per_commit,
        "the log holds {log} bytes after {COMMITS} commits of {per_commit} bytes each"
    );
    store.close().await;
}
