//! The worker of `guest-examples/hello-activity`: serves `compose_greeting` (and `square`, for
//! `fan-out`) on `hello-activity-task-queue`.
//!
//! `cargo run -p weft-worker --example hello_activity_worker [SERVER_URL] [--metrics ADDR]
//! [--queue QUEUE] [--concurrency N]`
//!
//! `--queue default --concurrency 100` serves fan-out's `square` (python/tools/bench_worker.py
//! compares it with the Python worker).
//!
//! `--metrics 127.0.0.1:9464` (or `WEFT_METRICS`) serves its Prometheus metrics there;
//! `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317` sends its spans to that collector.

use serde::Deserialize;
use weft_worker::{ActivityContext, ActivityError, Worker};

#[derive(Deserialize)]
struct ComposeGreeting {
    greeting: String,
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let mut args = std::env::args().skip(1);
    let (mut url, mut metrics) = (None, std::env::var("WEFT_METRICS").ok());
    let (mut queue, mut concurrency) = ("hello-activity-task-queue".to_string(), 16);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--metrics" => metrics = Some(args.next().ok_or("--metrics needs an address")?),
            "--queue" => queue = args.next().ok_or("--queue needs a task queue")?,
            "--concurrency" => {
                concurrency = args.next().ok_or("--concurrency needs a number")?.parse()?
            }
            _ => url = Some(arg),
        }
    }
    let url = url.unwrap_or_else(|| "http://127.0.0.1:7233".into());
    if let Some(addr) = metrics {
        weft_worker::telemetry::metrics::serve(addr.parse()?)?;
    }
    if let Some(endpoint) = weft_worker::telemetry::traces::endpoint(None) {
        weft_worker::telemetry::traces::install(&endpoint, "hello-activity-worker")?;
    }
    let mut worker = Worker::connect(&url).await?;
    worker.activity(
        "compose_greeting",
        |_: ActivityContext, input: ComposeGreeting| async move {
            Ok::<_, ActivityError>(format!("{}, {}!", input.greeting, input.name))
        },
    );
    worker.activity("square", |_: ActivityContext, i: u64| async move {
        Ok::<_, ActivityError>(i * i)
    });
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    eprintln!("polling {queue} with {concurrency} slots");
    worker.run(&queue, concurrency, shutdown).await?;
    weft_worker::telemetry::traces::flush();
    Ok(())
}
