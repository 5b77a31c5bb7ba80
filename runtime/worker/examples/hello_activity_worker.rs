//! The worker of `guest-examples/hello-activity`: serves `compose_greeting` on
//! `hello-activity-task-queue`.
//!
//! `cargo run -p weft-worker --example hello_activity_worker [SERVER_URL] [--metrics ADDR]`
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
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--metrics" => metrics = Some(args.next().ok_or("--metrics needs an address")?),
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
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    worker
        .run("hello-activity-task-queue", 16, shutdown)
        .await?;
    weft_worker::telemetry::traces::flush();
    Ok(())
}
