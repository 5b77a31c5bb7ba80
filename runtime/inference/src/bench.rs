//! `weft-inference bench`: embeddings per second through weft (one workflow per text, dynamic
//! batching on) against the same model code called directly with the same batch size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use weft_inference::{BatchConfig, Batcher, Embedder};
use weft_proto::workflow_service_client::WorkflowServiceClient;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Texts (one workflow each through weft).
    #[arg(short = 'n', long, default_value_t = 1000)]
    texts: usize,
    /// Workflows in flight.
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: usize,
    /// Batch settings to try, as MAX_BATCH:MAX_WAIT_MS.
    #[arg(long, value_delimiter = ',', default_value = "1:0,8:2,16:5,32:5,32:20")]
    settings: Vec<String>,
    /// The edge-cases fixture component (its `call` mode runs one activity).
    #[arg(
        long,
        default_value = "guest-examples/target/components/edge-cases.wasm"
    )]
    component: PathBuf,
}

fn text(i: usize) -> String {
    format!("support ticket {i}: my order arrived damaged and I would like a replacement")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn parse(setting: &str) -> anyhow::Result<BatchConfig> {
    let (batch, wait) = setting
        .split_once(':')
        .with_context(|| format!("setting `{setting}` is not MAX_BATCH:MAX_WAIT_MS"))?;
    Ok(BatchConfig {
        max_batch: batch.parse().context("MAX_BATCH")?,
        max_wait: Duration::from_millis(wait.parse().context("MAX_WAIT_MS")?),
    })
}

pub async fn bench(server: &str, model: Arc<Embedder>, args: BenchArgs) -> anyhow::Result<()> {
    let mut client = WorkflowServiceClient::connect(server.to_owned())
        .await
        .with_context(|| format!("cannot connect to {server}; start `weft server` first"))?;
    client
        .upload_module(weft_proto::UploadModuleRequest {
            vet_recent: 0,
            workflow_type: "InferenceBench".into(),
            component: std::fs::read(&args.component).with_context(|| {
                format!(
                    "{} (build it with `weft build guest-examples`)",
                    args.component.display()
                )
            })?,
        })
        .await?;
    println!(
        "| max batch | max wait | direct: embeddings/s | through weft: embeddings/s | ratio | p50 ms | p99 ms | texts per forward pass |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let tag = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    for setting in &args.settings {
        let config = parse(setting)?;
        // Direct: the same model code, batches of the same size, in a loop.
        let texts: Vec<String> = (0..args.texts).map(text).collect();
        let t0 = Instant::now();
        for batch in texts.chunks(config.max_batch.max(1)) {
            model.embed(batch)?;
        }
        let direct = args.texts as f64 / t0.elapsed().as_secs_f64();

        // Through weft: a worker on its own queue, one workflow per text.
        let queue = format!("inference-bench-{tag}-{setting}");
        let batcher = Batcher::spawn(model.clone(), config);
        let mut worker = weft_worker::Worker::connect(server).await?;
        weft_inference::register(&mut worker, &batcher);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let polling = {
            let queue = queue.clone();
            let concurrency = args.concurrency;
            tokio::spawn(async move {
                worker
                    .run(&queue, concurrency, async {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
        let mut runs = tokio::task::JoinSet::new();
        let t0 = Instant::now();
        for i in 0..args.texts {
            let permit = slots.clone().acquire_owned().await?;
            let mut client = client.clone();
            let id = format!("inference-bench-{tag}-{setting}-{i}");
            let input = serde_json::json!({"mode": "call", "name": "embed", "queue": queue,
                "heartbeat_timeout_ms": 60_000, "input": {"texts": [text(i)]}});
            runs.spawn(async move {
                let started = Instant::now();
                client
                    .start_workflow(weft_proto::StartWorkflowRequest {
                        workflow_type: "InferenceBench".into(),
                        workflow_id: id.clone(),
                        input: input.to_string().into_bytes(),
                        task_queue: String::new(),
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
                anyhow::ensure!(
                    r.status == weft_proto::RunStatus::Completed as i32,
                    "a run ended {:?}",
                    r.error
                );
                Ok(started.elapsed())
            });
        }
        let mut latencies = Vec::with_capacity(args.texts);
        while let Some(done) = runs.join_next().await {
            latencies.push(done??);
        }
        let through = args.texts as f64 / t0.elapsed().as_secs_f64();
        let _ = stop_tx.send(());
        polling.await??;
        latencies.sort();
        let stats = batcher.stats();
        println!(
            "| {} | {} ms | {direct:.0} | {through:.0} | {:.0} % | {:.1} | {:.1} | {:.1} |",
            config.max_batch,
            config.max_wait.as_millis(),
            100.0 * through / direct,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            stats.texts as f64 / stats.batches.max(1) as f64
        );
    }
    Ok(())
}
