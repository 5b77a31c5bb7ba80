//! The worker of `guest-examples/hello-activity`: serves `compose_greeting` on
//! `hello-activity-task-queue`.
//!
//! `cargo run -p weft-worker --example hello_activity_worker [SERVER_URL]`
//!
//! `WEFT_METRICS=127.0.0.1:9464` serves its Prometheus metrics there;
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
    if let Ok(addr) = std::env::var("WEFT_METRICS") {
        weft_worker::telemetry::metrics::serve(addr.parse()?)?;
    }
    if let Some(endpoint) = weft_worker::telemetry::traces::endpoint(None) {
        weft_worker::telemetry::traces::install(&endpoint, "hello-activity-worker")?;
    }
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:7233".into());
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
