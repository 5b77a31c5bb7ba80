//! The ML pipeline example end to end: a real server (in this process, real gRPC over
//! loopback, a SQLite file), the real `weft-inference` worker process, the triage workflow.
//! The worker is killed with SIGKILL in the middle of a run; a new one finishes it.

use std::time::Duration;

use serde_json::{Value, json};
use weft_proto::{self as proto, RunStatus};

mod common;
use common::*;

fn labels() -> Value {
    json!([
        {"name": "billing", "description": "payments, invoices, refunds and charges"},
        {"name": "account", "description": "login, password and account access"},
        {"name": "shipping", "description": "delivery, parcels and tracking"}
    ])
}

const TICKETS: [(&str, &str); 3] = [
    (
        "I was charged twice on my credit card,   please refund me",
        "billing",
    ),
    (
        "I can't log in, my password reset email never arrives",
        "account",
    ),
    (
        "Where is my parcel?\tThe tracking number shows nothing",
        "shipping",
    ),
];

async fn start(client: &mut Client, id: &str, input: Value) {
    client
        .start_workflow(proto::StartWorkflowRequest {
            workflow_type: "MlPipeline".into(),
            workflow_id: id.into(),
            input: input.to_string().into_bytes(),
            task_queue: String::new(),
            return_existing: false,
        })
        .await
        .unwrap();
}

async fn result(client: &mut Client, id: &str) -> Value {
    let r = client
        .get_workflow_result(proto::GetWorkflowResultRequest {
            workflow_id: id.into(),
            run_id: String::new(),
            wait: true,
            wait_timeout_ms: 120_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status, RunStatus::Completed as i32, "{id}: {:?}", r.error);
    serde_json::from_slice(&r.output).unwrap()
}

async fn history(client: &mut Client, id: &str) -> weft_history::History {
    let json = client
        .get_history(proto::GetHistoryRequest {
            workflow_id: id.into(),
            run_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .history_json;
    weft_history::History::from_json(json.as_bytes()).unwrap()
}

fn count(h: &weft_history::History, kind: &str) -> usize {
    h.events.iter().filter(|e| e.kind.name() == kind).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn tickets_are_triaged_by_the_model_and_low_confidence_ones_wait_for_review() {
    let (_dir, url, mut client) = server().await;
    let metrics_addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let _worker = InferenceWorker::start_with(&url, &["--metrics", &metrics_addr]);
    let tickets: Vec<&str> = TICKETS.iter().map(|(t, _)| *t).collect();
    start(
        &mut client,
        "triage",
        json!({"tickets": tickets, "labels": labels(), "min_confidence": 0.0}),
    )
    .await;
    let table = result(&mut client, "triage").await;
    for (i, (_, expected)) in TICKETS.iter().enumerate() {
        assert_eq!(table["routes"][i]["label"], *expected, "{table}");
        assert_eq!(table["routes"][i]["decided_by"], "model");
    }
    assert_eq!(
        table["routes"][0]["text"], "I was charged twice on my credit card, please refund me",
        "normalized on the cpu queue"
    );
    assert_eq!(table["queues"]["billing"], json!([0]));
    worker_metrics_add_up(&metrics_addr);

    // Nothing is confident enough: ticket 1 is reviewed by a human, the others time out.
    start(
        &mut client,
        "review",
        json!({"tickets": tickets, "labels": labels(), "min_confidence": 1.5, "review_timeout_ms": 3000}),
    )
    .await;
    // The review window opens once every ticket is classified.
    for _ in 0..600 {
        if count(&history(&mut client, "review").await, "SignalAwaited") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client
        .signal_workflow(proto::SignalWorkflowRequest {
            workflow_id: "review".into(),
            signal_name: "review".into(),
            payload: br#"{"ticket": 1, "label": "vip"}"#.to_vec(),
        })
        .await
        .unwrap();
    let table = result(&mut client, "review").await;
    let decided: Vec<(&str, &str)> = table["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["label"].as_str().unwrap(),
                r["decided_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        decided,
        [
            ("needs-human", "timeout"),
            ("vip", "human"),
            ("needs-human", "timeout")
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_batch_loses_its_attempts_to_the_timeout_and_the_run_completes() {
    let (_dir, url, mut client) = server().await;
    let worker = InferenceWorker::start(&url);
    let tickets: Vec<String> = (0..48)
        .map(|i| {
            let (text, _) = TICKETS[i % 3];
            format!("{text} (ticket {i})")
        })
        .collect();
    start(
        &mut client,
        "big",
        json!({"tickets": tickets, "labels": labels(), "min_confidence": 0.0, "classify_timeout_ms": 4000}),
    )
    .await;
    // Kill the worker once some classifications are in and others are not.
    let mut killed_after = 0;
    for _ in 0..3000 {
        let done = count(&history(&mut client, "big").await, "ActivityCompleted");
        // The first completion is `normalize`.
        if done > 1 {
            killed_after = done - 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(killed_after > 0, "no classification came in");
    worker.kill();
    let partial = history(&mut client, "big").await;
    let classified_when_killed = count(&partial, "ActivityCompleted") - 1;
    assert!(
        classified_when_killed < 48,
        "the kill came too late to test anything ({classified_when_killed} done)"
    );
    let _second = InferenceWorker::start(&url);
    let table = result(&mut client, "big").await;
    for (i, route) in table["routes"].as_array().unwrap().iter().enumerate() {
        assert_eq!(route["label"], TICKETS[i % 3].1, "ticket {i}: {route}");
    }
    // Exactly one completion per activity, none lost or duplicated, and the history replays.
    let h = history(&mut client, "big").await;
    h.check().unwrap();
    assert_eq!(count(&h, "ActivityScheduled"), 49);
    assert_eq!(count(&h, "ActivityCompleted"), 49);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_embedding_job_resumes_from_its_last_heartbeat_after_the_worker_dies() {
    let (dir, url, mut client) = server().await;
    client
        .upload_module(proto::UploadModuleRequest {
            vet_recent: 0,
            workflow_type: "EdgeCases".into(),
            component: std::fs::read(weft_tests::EDGE_CASES).unwrap(),
        })
        .await
        .unwrap();
    let worker = InferenceWorker::start(&url);
    let output = dir.path().join("vectors.jsonl");
    let texts: Vec<String> = (0..480).map(|i| format!("document number {i}")).collect();
    let input = json!({
        "mode": "call", "name": "embed_corpus", "queue": "inference", "heartbeat_timeout_ms": 1500,
        "input": {"texts": texts, "output": output, "chunk": 32}
    });
    client
        .start_workflow(proto::StartWorkflowRequest {
            workflow_type: "EdgeCases".into(),
            workflow_id: "corpus".into(),
            input: input.to_string().into_bytes(),
            task_queue: String::new(),
            return_existing: false,
        })
        .await
        .unwrap();
    // Let a few chunks be written and reported, then kill the worker.
    for _ in 0..3000 {
        let lines = std::fs::read_to_string(&output).map_or(0, |t| t.lines().count());
        if lines >= 96 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.kill();
    let lines_at_kill = std::fs::read_to_string(&output).unwrap().lines().count();
    assert!(
        lines_at_kill < 480,
        "killed too late ({lines_at_kill} lines)"
    );
    let _second = InferenceWorker::start(&url);
    let out = result(&mut client, "corpus").await;
    assert_eq!(out["count"], 480);
    let resumed_from = out["resumed_from"].as_u64().unwrap();
    assert!(resumed_from >= 64, "the retry started over: {out}");
    assert_eq!(resumed_from % 32, 0, "resumed at a chunk boundary: {out}");
    let lines: Vec<Vec<f32>> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 480, "one vector per text, none twice");
    // The vectors written before and after the kill are those of their own texts.
    let model = weft_inference::Embedder::load(&weft_inference::default_model_dir()).unwrap();
    for i in [0, resumed_from as usize - 1, resumed_from as usize, 479] {
        let direct = model.embed(std::slice::from_ref(&texts[i])).unwrap();
        let worst = direct.vectors[0]
            .iter()
            .zip(&lines[i])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "text {i} differs by {worst}");
    }
}

/// The value of the first sample `name{...}` whose line holds every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{text}"))
}

/// The worker's `--metrics` endpoint after a triage: its tasks, and forward passes whose
/// batch sizes add up to the texts embedded.
fn worker_metrics_add_up(addr: &str) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the metrics listener is up");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.") && response.contains(" 200 "),
        "{response}"
    );
    let text = &response[response.find("\r\n\r\n").unwrap() + 4..];
    assert!(
        sample(
            text,
            "weft_worker_tasks_total",
            &["task_queue=\"inference\"", "outcome=\"completed\""]
        ) >= 1.0
    );
    let texts = sample(text, "weft_inference_texts_total", &[]);
    assert!(texts >= 3.0, "at least the three tickets: {texts}");
    assert_eq!(sample(text, "weft_inference_batch_size_sum", &[]), texts);
    let passes = sample(text, "weft_inference_batch_size_count", &[]);
    assert!(passes >= 1.0);
    assert_eq!(
        sample(text, "weft_inference_forward_seconds_count", &[]),
        passes
    );
    assert_eq!(sample(text, "weft_inference_batch_capacity", &[]), 16.0);
}
