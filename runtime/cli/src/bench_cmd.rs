//! `weft bench`: a load generator against a running server, with its own workers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Deserialize;
use tokio::sync::Semaphore;
use weft_proto::RunStatus;
use weft_worker::{ActivityContext, ActivityError, Worker};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Workflows to run.
    #[arg(short = 'n', long, default_value_t = 2_000)]
    workflows: usize,
    /// Workflows in flight at once.
    #[arg(short = 'c', long, default_value_t = 100)]
    concurrency: usize,
    /// The hello-activity component (one activity per workflow): the Rust example, or the
    /// Python port (`weft build guest-examples/python/hello-activity`).
    #[arg(
        long,
        default_value = "guest-examples/target/components/hello-activity.wasm"
    )]
    hello: PathBuf,
    /// The edge-cases fixture component (its `activities` mode: N sequential activities).
    #[arg(
        long,
        default_value = "guest-examples/target/components/edge-cases.wasm"
    )]
    sequential: PathBuf,
}

#[derive(Deserialize)]
struct ComposeGreeting {
    greeting: String,
    name: String,
}

struct Figures {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(i)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

async fn load(
    server: &crate::client_cmd::Server,
    label: &str,
    workflow_type: &str,
    input: &str,
    task_queue: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    let client = server.connect().await?;
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let run_tag = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = slots.clone().acquire_owned().await?;
        let mut client = client.clone();
        let (workflow_type, input, queue) = (
            workflow_type.to_owned(),
            input.to_owned(),
            task_queue.to_owned(),
        );
        let id = format!("bench-{label}-{run_tag}-{i}");
        tasks.spawn(async move {
            let t0 = Instant::now();
            client
                .start_workflow(weft_proto::StartWorkflowRequest {
                    workflow_type,
                    workflow_id: id.clone(),
                    input: input.into_bytes(),
                    task_queue: queue,
                    return_existing: false,
                })
                .await?;
            let r = client
                .get_workflow_result(weft_proto::GetWorkflowResultRequest {
                    workflow_id: id,
                    run_id: String::new(),
                    wait: true,
                    wait_timeout_ms: 120_000,
                })
                .await?
                .into_inner();
            drop(permit);
            if r.status != RunStatus::Completed as i32 {
                bail!("a workflow ended {:?}: {:?}", r.status, r.error);
            }
            Ok::<_, anyhow::Error>(t0.elapsed())
        });
    }
    let mut latencies = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        latencies.push(done??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Figures {
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
    })
}

pub fn bench(server: &crate::client_cmd::Server, args: BenchArgs) -> anyhow::Result<u8> {
    tokio::runtime::Runtime::new()?.block_on(run(server, args))
}

async fn run(server: &crate::client_cmd::Server, args: BenchArgs) -> anyhow::Result<u8> {
    let mut client = server.connect().await?;
    for (workflow_type, path) in [
        ("BenchGreeting", &args.hello),
        ("BenchSequential", &args.sequential),
    ] {
        client
            .upload_module(weft_proto::UploadModuleRequest {
                vet_recent: 0,
                workflow_type: workflow_type.into(),
                component: crate::read_file(
                    path,
                    "component (build it with `weft build guest-examples`)",
                )?,
            })
            .await?;
    }
    let mut worker = Worker::connect_with(&server.url(), &server.options()?).await?;
    worker.activity(
        "compose_greeting",
        |_: ActivityContext, g: ComposeGreeting| async move {
            Ok::<_, ActivityError>(format!("{}, {}!", g.greeting, g.name))
        },
    );
    worker.activity("step", |_: ActivityContext, i: u64| async move {
        Ok::<_, ActivityError>(i)
    });
    let worker = Arc::new(worker);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for queue in ["hello-activity-task-queue", "bench-sequential"] {
        let (worker, mut stop) = (worker.clone(), stop_rx.clone());
        workers.push(tokio::spawn(async move {
            worker
                .run(queue, 256, async move {
                    let _ = stop.changed().await;
                })
                .await
        }));
    }
    let hello = load(
        server,
        "hello",
        "BenchGreeting",
        "\"World\"",
        // The activity's queue too for a workflow that does not name one (Temporal's
        // hello_activity.py ported to Python runs it on the workflow's queue).
        "hello-activity-task-queue",
        args.workflows,
        args.concurrency,
    )
    .await?;
    println!(
        "hello-activity: {} workflows, {} in flight: {:.0} workflows/s, \
         start-to-result p50 {:.1} ms, p99 {:.1} ms",
        args.workflows, args.concurrency, hello.per_second, hello.p50_ms, hello.p99_ms
    );
    let n = (args.workflows / 10).max(1);
    let seq = load(
        server,
        "seq",
        "BenchSequential",
        r#"{"mode":"activities","n":10}"#,
        "bench-sequential",
        n,
        args.concurrency,
    )
    .await?;
    println!(
        "10 sequential activities: {n} workflows, {} in flight: {:.0} workflows/s \
         ({:.0} activities/s), p50 {:.1} ms, p99 {:.1} ms",
        args.concurrency,
        seq.per_second,
        seq.per_second * 10.0,
        seq.p50_ms,
        seq.p99_ms
    );
    let _ = stop_tx.send(true);
    for w in workers {
        w.await??;
    }
    Ok(0)
}
