//! `weft-inference`: the inference worker. Loads the model, then polls its task queue.
//!
//! `weft-inference [--server URL] [--queue inference] [--model-dir DIR] [--max-batch 32]
//! [--max-wait-ms 5] [--concurrency 64]`; `weft-inference bench` compares throughput through
//! weft with the model called directly.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

mod bench;
use weft_inference::{BatchConfig, Batcher, Embedder, default_model_dir};

#[derive(Parser)]
#[command(about = "Serves sentence embeddings (all-MiniLM-L6-v2) as weft activities")]
struct Args {
    /// The weft server.
    #[arg(long, env = "WEFT_SERVER", default_value = "http://127.0.0.1:7233")]
    server: String,
    /// The task queue to poll.
    #[arg(long, default_value = "inference")]
    queue: String,
    /// Also serve `normalize` on this queue (empty: do not).
    #[arg(long, default_value = "cpu")]
    cpu_queue: String,
    /// Directory with config.json, tokenizer.json, model.safetensors
    /// [default: $WEFT_MODEL_DIR or ~/.cache/weft/models/all-MiniLM-L6-v2].
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Most texts in one forward pass.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// Longest a request waits for others to share its forward pass.
    #[arg(long, default_value_t = 5)]
    max_wait_ms: u64,
    /// Activities run at once (they queue for the model).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds a shutdown waits for running activities before handing them back.
    #[arg(long, default_value_t = 10)]
    drain_timeout_s: u64,
    /// Serve Prometheus metrics (tasks, batch sizes, forward-pass time, texts) on this
    /// address, e.g. 127.0.0.1:9464.
    #[arg(long, env = "WEFT_METRICS")]
    metrics: Option<std::net::SocketAddr>,
    /// Send traces to this OpenTelemetry collector over OTLP/gRPC
    /// [default: OTEL_EXPORTER_OTLP_ENDPOINT; none: no traces].
    #[arg(long, env = "WEFT_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Bearer token (a `worker` token for --queue and --cpu-queue) when the server runs
    /// with --auth.
    #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM CA of an https:// server [default: public CAs].
    #[arg(long, env = "WEFT_CA")]
    ca: Option<String>,
    /// PEM client certificate for mutual TLS (with --key).
    #[arg(long, env = "WEFT_CERT")]
    cert: Option<String>,
    /// PEM private key of --cert.
    #[arg(long, env = "WEFT_KEY")]
    key: Option<String>,
    /// Log lines as `text` or `json`.
    #[arg(long, env = "WEFT_LOG_FORMAT", default_value = "text")]
    log_format: weft_worker::telemetry::logs::LogFormat,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Embeddings/s through weft against the model called directly, per batch setting
    /// (needs a running `weft server`).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    weft_worker::telemetry::logs::init(args.log_format, "info");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weft-inference: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(serve(args));
    weft_worker::telemetry::traces::flush();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-inference: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    use weft_worker::telemetry;
    if let Some(addr) = args.metrics {
        telemetry::metrics::serve(addr)?;
    }
    if let Some(endpoint) = telemetry::traces::endpoint(args.otlp_endpoint.clone()) {
        telemetry::traces::install(&endpoint, "weft-inference")?;
    }
    let dir = args.model_dir.clone().unwrap_or_else(default_model_dir);
    let started = Instant::now();
    let embedder = Arc::new(Embedder::load(&dir)?);
    tracing::info!(model_dir = %dir.display(), load_ms = started.elapsed().as_millis() as u64,
        "model loaded");
    if let Some(Sub::Bench(bench_args)) = args.command {
        return bench::bench(&args.server, embedder, bench_args).await;
    }
    let batcher = Batcher::spawn(
        embedder,
        BatchConfig {
            max_batch: args.max_batch,
            max_wait: Duration::from_millis(args.max_wait_ms),
        },
    );
    let options = weft_worker::ClientOptions::from_files(
        args.token.clone(),
        args.ca.as_deref(),
        args.cert.as_deref(),
        args.key.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let mut worker = weft_worker::Worker::connect_with(&args.server, &options).await?;
    worker.drain_timeout(Duration::from_secs(args.drain_timeout_s));
    weft_inference::register(&mut worker, &batcher);
    // Tests and supervisors wait for this line: polling starts only now.
    eprintln!(
        "weft-inference ready: polling `{}` on {} (max batch {}, max wait {} ms)",
        args.queue, args.server, args.max_batch, args.max_wait_ms
    );
    let stop = || async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let cpu = async {
        if args.cpu_queue.is_empty() {
            return Ok(());
        }
        let mut cpu = weft_worker::Worker::connect_with(&args.server, &options).await?;
        weft_inference::register_cpu(&mut cpu);
        cpu.run(&args.cpu_queue, args.concurrency, stop()).await
    };
    let (inference, cpu) = tokio::join!(worker.run(&args.queue, args.concurrency, stop()), cpu);
    inference?;
    cpu?;
    let stats = batcher.stats();
    tracing::info!(batches = stats.batches, texts = stats.texts, "stopped");
    Ok(())
}
