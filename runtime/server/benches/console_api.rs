//! The console's JSON API against a database of 100,000 runs: how long one page of 100 takes
//! over HTTP on loopback (the bar: under 50 ms), with each filter the runs page offers,
//! the per-status counts above it, and a page deep in the list.
//!
//! `cargo bench -p weft-server --bench console_api` (seeding the SQLite file takes ~20 s);
//! `WEFT_BENCH_DATABASE=postgres://postgres@127.0.0.1:5432/DB` runs it on an empty PostgreSQL
//! database instead.

use std::sync::OnceLock;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use weft_history::{ErrorInfo, Event, EventKind, Payload};
use weft_store::{Batch, RunClose, RunRecord, RunStatus, StepWrite, Store};

const RUNS: u64 = 100_000;
const TYPES: u64 = 10;

fn main() {
    divan::main();
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    url: String,
    deep_token: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let database = std::env::var("WEFT_BENCH_DATABASE")
            .unwrap_or_else(|_| format!("sqlite:{}", dir.path().join("bench.db").display()));
        let (url, deep_token) = runtime.block_on(async {
            seed(&database).await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let config = weft_server::ServerConfig {
                database,
                ..Default::default()
            };
            tokio::spawn(weft_server::serve(config, listener, std::future::pending()));
            // Wait for the listener, then walk 50 pages down for the deep page's cursor.
            let mut token = String::new();
            for _ in 0..100 {
                if get(&format!("{url}/api/v1/runs?page_size=1"))
                    .await
                    .is_some()
                {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            for _ in 0..50 {
                let page = get(&format!(
                    "{url}/api/v1/runs?page_size=100&page_token={token}"
                ))
                .await
                .unwrap();
                let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
                token = page["next_page_token"]
                    .as_str()
                    .unwrap()
                    .replace(':', "%3A");
            }
            (url, token)
        });
        Fixture {
            runtime,
            url,
            deep_token,
            _dir: dir,
        }
    })
}

/// 100,000 closed runs of ten types, 1,000 per transaction.
async fn seed(database: &str) {
    let store = weft_store::open(database).await.unwrap();
    store
        .put_module("Bench", "m1", b"not-loaded", 1)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    for chunk in 0..RUNS / 1000 {
        let steps = (chunk * 1000..(chunk + 1) * 1000).map(closed_run).collect();
        store
            .commit(&Batch {
                node: "seed".into(),
                steps,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    eprintln!("seeded {RUNS} runs in {:.1?}", start.elapsed());
}

fn closed_run(i: u64) -> StepWrite {
    let (status, terminal) = match i % 20 {
        0..=2 => (
            RunStatus::Failed,
            EventKind::RunFailed {
                error: ErrorInfo::new("Boom", "failed"),
            },
        ),
        3 => (
            RunStatus::Terminated,
            EventKind::RunTerminated {
                reason: "stop".into(),
            },
        ),
        _ => (
            RunStatus::Completed,
            EventKind::RunCompleted {
                output: Payload::from("1"),
            },
        ),
    };
    let started = 1_700_000_000_000 + i * 10;
    let run_id = format!("run-{i:08}");
    let event = |seq, kind| Event {
        seq,
        timestamp_ms: started,
        kind,
    };
    StepWrite {
        run_id: run_id.clone(),
        create: Some(RunRecord {
            run_id,
            workflow_id: format!("wf-{i}"),
            workflow_type: format!("Type{}", i % TYPES),
            task_queue: "default".into(),
            run_number: 1,
            module_id: "m1".into(),
            input: Payload::from("1"),
            seed: i,
            status: RunStatus::Running,
            output: None,
            error: None,
            started_at_ms: started,
            closed_at_ms: None,
            history_length: 0,
            parent: None,
            owner: None,
            trace_context: None,
        }),
        events: vec![event(1, EventKind::RunStarted), event(2, terminal.clone())],
        close: Some(RunClose {
            status,
            output: matches!(status, RunStatus::Completed).then(|| Payload::from("1")),
            error: matches!(status, RunStatus::Failed).then(|| ErrorInfo::new("Boom", "failed")),
            closed_at_ms: started + 5,
        }),
        ..Default::default()
    }
}

async fn get(url: &str) -> Option<Bytes> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let response = client.get(url.parse().ok()?).await.ok()?;
    assert_eq!(response.status(), 200, "{url}");
    Some(response.into_body().collect().await.ok()?.to_bytes())
}

fn bench_get(bencher: divan::Bencher, query: &str) {
    let f = fixture();
    let url = format!("{}/api/v1/{query}", f.url);
    bencher.bench(|| f.runtime.block_on(get(&url)).expect("answered"));
}

#[divan::bench]
fn runs_page_of_100(bencher: divan::Bencher) {
    bench_get(bencher, "runs?page_size=100");
}

#[divan::bench]
fn runs_page_of_100_failed(bencher: divan::Bencher) {
    bench_get(bencher, "runs?page_size=100&status=failed");
}

#[divan::bench]
fn runs_page_of_100_one_type(bencher: divan::Bencher) {
    bench_get(bencher, "runs?page_size=100&type=Type3");
}

#[divan::bench]
fn runs_page_of_100_id_prefix(bencher: divan::Bencher) {
    bench_get(bencher, "runs?page_size=100&prefix=wf-99");
}

#[divan::bench]
fn runs_page_51_of_100(bencher: divan::Bencher) {
    let token = fixture().deep_token.clone();
    bench_get(bencher, &format!("runs?page_size=100&page_token={token}"));
}

#[divan::bench]
fn counts_per_status(bencher: divan::Bencher) {
    bench_get(bencher, "runs/counts");
}

#[divan::bench]
fn counts_per_status_one_type(bencher: divan::Bencher) {
    bench_get(bencher, "runs/counts?type=Type3");
}
