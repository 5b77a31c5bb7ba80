//! Chaos soak with real processes: two `weft server`s on one PostgreSQL database and two
//! `weft workers` processes run a mixed workload (hello-activity, a fan-out of 100, timers,
//! child workflows, children cancelled by their parent or left running under each parent close
//! policy, continue-as-new, a workflow that fails on purpose) while a seeded schedule
//! SIGKILLs a random server or worker every few seconds and restarts it. Afterwards every run
//! must have ended as its workflow says (and each such child as its cancel or policy says),
//! every history must be numbered without gaps or
//! duplicates, hold each activity's result at most once, and replay clean on its module; and
//! no attempt of an activity may have run twice (the workers note each attempt they run).
//!
//! `cargo test` runs a short soak (`WEFT_CHAOS_SECONDS`, default 20). The long one:
//! `WEFT_CHAOS_SECONDS=1800 cargo test --release -p weft --test chaos -- --nocapture`;
//! `WEFT_CHAOS_SEED=N` replays a schedule.

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weft_history::{EventKind, History};
use weft_proto::workflow_service_client::WorkflowServiceClient;
use weft_proto::{self as proto, RunStatus};

mod common;
use common::*;

/// The soak's seeded schedule (weft's SplitMix64): it depends on the seed only.
struct Rng(weft_history::SplitMix64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }
}

/// One process of the soak, restartable.
struct Proc {
    name: &'static str,
    args: Vec<String>,
    /// For workers: the file they note each attempt they run in.
    audit: Option<std::path::PathBuf>,
    child: Option<Child>,
}

impl Proc {
    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(&self.args)
            .env("WEFT_LOG", "error")
            .envs(self.audit.as_ref().map(|p| ("WEFT_WORKERS_AUDIT_LOG", p)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weft starts");
        self.child = Some(child);
    }
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    /// Restarts it if it exited by itself (a worker started while no server was up).
    fn keep_up(&mut self) {
        let exited = self
            .child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some());
        if exited {
            self.kill();
            self.start();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a run of the workload must end with.
#[derive(Clone, Debug)]
enum Expect {
    Output(serde_json::Value),
    Failed(&'static str),
    /// Completed, and its child `<id>/0` ended with this status.
    ChildEnded(RunStatus),
}

/// The parent close policies the soak's `leave_child` runs go through.
const POLICIES: [(&str, RunStatus); 3] = [
    ("terminate", RunStatus::Terminated),
    ("request_cancel", RunStatus::Cancelled),
    ("abandon", RunStatus::Completed),
];

fn workload(kind: u64, i: u64) -> (&'static str, String, Expect) {
    match kind {
        8 => (
            "EdgeCases",
            r#"{"mode": "cancel_at", "op": "child", "stage": "runs", "ms": 3600000, "queue": "default"}"#
                .into(),
            Expect::ChildEnded(RunStatus::Cancelled),
        ),
        9 => {
            let (policy, status) = POLICIES[(i % 3) as usize];
            (
                "EdgeCases",
                format!(r#"{{"mode": "leave_child", "policy": "{policy}", "child_ms": 700}}"#),
                Expect::ChildEnded(status),
            )
        }
        0..=2 => (
            "GreetingWorkflow",
            format!("\"c{i}\""),
            Expect::Output(serde_json::json!(format!("Hello, c{i}!"))),
        ),
        3 => (
            "FanOut",
            r#"{"n": 100}"#.into(),
            Expect::Output(serde_json::json!({"n": 100, "sum": 328_350})),
        ),
        4 => (
            "EdgeCases",
            r#"{"mode": "sleep", "ms": 700}"#.into(),
            Expect::Output(serde_json::json!("slept")),
        ),
        5 => (
            "EdgeCases",
            r#"{"mode": "children", "n": 3}"#.into(),
            Expect::Output(serde_json::json!(3)),
        ),
        6 => (
            "EdgeCases",
            r#"{"mode": "count", "run": 1, "until": 3, "seen": []}"#.into(),
            Expect::Output(serde_json::json!([1, 2, 3])),
        ),
        _ => (
            "EdgeCases",
            r#"{"mode": "fail", "kind": "Declined"}"#.into(),
            Expect::Failed("Declined"),
        ),
    }
}

/// The closed run of `id`, asked of the node at `url` through `client` (reconnected when a
/// kill broke it), keeping every process up meanwhile; panics once `settle` has passed.
async fn wait_closed(
    id: &str,
    url: &str,
    client: &mut Option<WorkflowServiceClient<tonic::transport::Channel>>,
    procs: &mut [Proc],
    settle: Instant,
) -> proto::GetWorkflowResultResponse {
    loop {
        for p in procs.iter_mut() {
            p.keep_up();
        }
        assert!(Instant::now() < settle, "{id} did not end");
        if client.is_none() {
            *client = connect(url).await;
        }
        let Some(c) = client.as_mut() else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let got = c
            .get_workflow_result(proto::GetWorkflowResultRequest {
                workflow_id: id.to_owned(),
                run_id: String::new(),
                wait: true,
                wait_timeout_ms: 10_000,
            })
            .await;
        match got {
            Ok(r) if r.get_ref().status != RunStatus::Running as i32 => return r.into_inner(),
            Ok(_) => {}
            Err(_) => {
                *client = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connect(url: &str) -> Option<WorkflowServiceClient<tonic::transport::Channel>> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .ok()?
        .connect_timeout(Duration::from_millis(500));
    endpoint
        .connect()
        .await
        .ok()
        .map(WorkflowServiceClient::new)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_soak_under_random_kills_loses_nothing() {
    let seconds: u64 = std::env::var("WEFT_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("WEFT_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("chaos soak: {seconds} s, seed {seed} (WEFT_CHAOS_SEED={seed} replays the schedule)");
    let mut rng = Rng(weft_history::SplitMix64::new(seed));
    let db = PgDatabase::create();
    let urls = [
        format!("http://127.0.0.1:{}", free_port()),
        format!("http://127.0.0.1:{}", free_port()),
    ];
    let server = |name: &'static str, url: &str| Proc {
        name,
        args: [
            "server",
            "--listen",
            url.trim_start_matches("http://"),
            "--database",
            &db.url,
            "--node-id",
            name,
        ]
        .map(String::from)
        .to_vec(),
        audit: None,
        child: None,
    };
    let audit = tempfile::NamedTempFile::new().unwrap();
    let worker = |name: &'static str, url: &str| Proc {
        name,
        args: ["--server", url, "workers"].map(String::from).to_vec(),
        audit: Some(audit.path().to_owned()),
        child: None,
    };
    let mut procs = [
        server("node-a", &urls[0]),
        server("node-b", &urls[1]),
        worker("worker-1", &urls[0]),
        worker("worker-2", &urls[1]),
    ];
    procs[0].start();
    procs[1].start();
    let mut client = loop {
        if let Some(c) = connect(&urls[0]).await {
            break c.max_encoding_message_size(64 << 20);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (workflow_type, path) in [
        ("GreetingWorkflow", weft_tests::HELLO_ACTIVITY),
        ("FanOut", weft_tests::FAN_OUT),
        ("EdgeCases", weft_tests::EDGE_CASES),
    ] {
        upload(&mut client, workflow_type, path).await;
    }
    procs[2].start();
    procs[3].start();

    // The workload: a start every 100 ms or so, through either node; a start whose answer
    // was lost to a kill is sent again (`return_existing` makes that safe).
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let starter_urls = urls.clone();
    let starter = tokio::spawn(async move {
        let mut rng = Rng(weft_history::SplitMix64::new(seed ^ 0x5EED));
        let mut started: BTreeMap<String, (&'static str, Expect)> = BTreeMap::new();
        let mut i = 0u64;
        while Instant::now() < deadline {
            let (workflow_type, input, expect) = workload(rng.below(10), i);
            let id = format!("chaos-{i}");
            for attempt in 0.. {
                assert!(attempt < 200, "no node took the start of {id}");
                let url = &starter_urls[rng.below(2) as usize];
                let Some(mut c) = connect(url).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let sent = c
                    .start_workflow(proto::StartWorkflowRequest {
                        workflow_type: workflow_type.into(),
                        workflow_id: id.clone(),
                        input: input.clone().into_bytes(),
                        task_queue: String::new(),
                        return_existing: true,
                    })
                    .await;
                match sent {
                    Ok(_) => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            started.insert(id, (workflow_type, expect));
            i += 1;
            tokio::time::sleep(Duration::from_millis(50 + rng.below(100))).await;
        }
        started
    });

    // The faults: every 2-4 s, SIGKILL one process, and start it again 0.2-1 s later.
    let mut kills: BTreeMap<&'static str, u32> = BTreeMap::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2_000 + rng.below(2_000))).await;
        let victim = rng.below(procs.len() as u64) as usize;
        procs[victim].kill();
        *kills.entry(procs[victim].name).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(200 + rng.below(800))).await;
        procs[victim].start();
        for p in procs.iter_mut() {
            p.keep_up();
        }
    }
    let started = starter.await.unwrap();
    eprintln!(
        "chaos soak: {} runs started, kills {kills:?}; waiting for every run to end",
        started.len()
    );

    // Every run ends as its workflow says.
    let engine = weft_engine::Engine::new(weft_engine::EngineConfig::default()).unwrap();
    let mut modules = BTreeMap::new();
    for path in [
        weft_tests::HELLO_ACTIVITY,
        weft_tests::FAN_OUT,
        weft_tests::EDGE_CASES,
    ] {
        let module = engine.load(&std::fs::read(path).unwrap()).unwrap();
        modules.insert(module.sha256().to_owned(), module);
    }
    // A run that has not ended 180 s after the one before it is stuck.
    let mut settle = Instant::now() + Duration::from_secs(180);
    let mut events = 0usize;
    let mut clients = [None, None];
    for (n, (id, (workflow_type, expect))) in started.iter().enumerate() {
        let k = n % 2;
        let result = wait_closed(id, &urls[k], &mut clients[k], &mut procs, settle).await;
        settle = Instant::now() + Duration::from_secs(180);
        match expect {
            Expect::Output(want) => {
                assert_eq!(
                    result.status,
                    RunStatus::Completed as i32,
                    "{id}: {result:?}"
                );
                let got: serde_json::Value = serde_json::from_slice(&result.output).unwrap();
                assert_eq!(&got, want, "{id} ({workflow_type})");
            }
            Expect::Failed(kind) => {
                assert_eq!(result.status, RunStatus::Failed as i32, "{id}: {result:?}");
                assert_eq!(
                    result.error.as_ref().map(|e| e.kind.as_str()),
                    Some(*kind),
                    "{id}"
                );
            }
            Expect::ChildEnded(status) => {
                assert_eq!(
                    result.status,
                    RunStatus::Completed as i32,
                    "{id}: {result:?}"
                );
                let child = format!("{id}/0");
                let ended =
                    wait_closed(&child, &urls[k], &mut clients[k], &mut procs, settle).await;
                assert_eq!(ended.status, *status as i32, "{child}: {ended:?}");
            }
        }
        // Its history: numbered 1..n (checked on load), one result per activity, clean replay.
        let h: History = loop {
            assert!(Instant::now() < settle, "{id}: no history");
            if clients[k].is_none() {
                clients[k] = connect(&urls[k]).await;
            }
            let Some(c) = clients[k].as_mut() else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            match c
                .get_history(proto::GetHistoryRequest {
                    workflow_id: id.clone(),
                    ..Default::default()
                })
                .await
            {
                Ok(r) => {
                    break History::from_json(r.into_inner().history_json.as_bytes())
                        .unwrap_or_else(|e| panic!("{id}: history rejected: {e}"));
                }
                Err(_) => clients[k] = None,
            }
        };
        let mut scheduled = HashSet::new();
        let mut completed = HashSet::new();
        for e in &h.events {
            match &e.kind {
                EventKind::ActivityScheduled { handle, .. } => {
                    assert!(
                        scheduled.insert(*handle),
                        "{id}: handle {handle} scheduled twice"
                    )
                }
                EventKind::ActivityCompleted { handle, .. } => {
                    assert!(
                        completed.insert(*handle),
                        "{id}: handle {handle} completed twice"
                    )
                }
                _ => {}
            }
        }
        assert!(
            completed.is_subset(&scheduled),
            "{id}: a result for an unscheduled activity"
        );
        let module = modules
            .get(&h.header.module_sha256)
            .unwrap_or_else(|| panic!("{id}: recorded on an unknown module"));
        events += h.events.len();
        let report = weft_engine::replay::replay(&engine, module, h).unwrap();
        assert!(
            matches!(report.verdict, weft_engine::replay::ReplayVerdict::Clean),
            "{id}: {:?}",
            report.verdict
        );
    }
    assert!(!started.is_empty());
    // No attempt ran twice: each (activity, attempt) pair is noted once at most. A line cut
    // short by a SIGKILL is not a whole note and is skipped.
    let notes = std::fs::read_to_string(audit.path()).unwrap();
    let mut runs: BTreeMap<&str, u32> = BTreeMap::new();
    for line in notes.lines().filter(|l| l.split(' ').count() == 2) {
        *runs.entry(line).or_default() += 1;
    }
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "attempts that ran more than once: {twice:?}"
    );
    assert!(
        runs.len() > started.len(),
        "the workers noted {} attempts for {} runs: {:?}",
        runs.len(),
        started.len(),
        notes.lines().take(3).collect::<Vec<_>>()
    );
    eprintln!(
        "chaos soak: seed {seed}, {seconds} s: {} runs ended as their workflows say, {events} \
         events replayed clean, {} activity attempts each run once, kills {kills:?}, nothing \
         lost",
        started.len(),
        runs.len()
    );
}
