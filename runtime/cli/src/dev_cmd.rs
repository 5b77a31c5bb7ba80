//! `weft dev`: a server on embedded SQLite, the example workflows uploaded, and the example
//! activity workers, in one process; with the model files present, the inference worker too.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize;
use weft_proto::workflow_service_client::WorkflowServiceClient;
use weft_server::{ServerConfig, serve};
use weft_worker::{ActivityContext, ActivityError, Worker};

/// The examples `weft dev` uploads: (package, workflow type).
const EXAMPLES: &[(&str, &str)] = &[
    ("hello-activity", "GreetingWorkflow"),
    ("timers-and-random", "TimersAndRandom"),
    ("fan-out", "FanOut"),
    ("approval", "Approval"),
    ("saga", "Saga"),
    ("ml-pipeline", "MlPipeline"),
];

#[derive(clap::Args)]
pub struct DevArgs {
    #[arg(long, default_value = "127.0.0.1:7233")]
    listen: SocketAddr,
    #[arg(long, default_value = "sqlite:weft.db")]
    database: String,
    /// The guest examples to build and upload.
    #[arg(long, default_value = "guest-examples")]
    examples: PathBuf,
    #[command(flatten)]
    traces: TraceArgs,
}

/// Where a process sends its spans: the same flag and variables for every weft process.
#[derive(clap::Args)]
pub struct TraceArgs {
    /// Send traces to this OpenTelemetry collector over OTLP/gRPC, e.g. http://127.0.0.1:4317
    /// [default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, then OTEL_EXPORTER_OTLP_ENDPOINT; none:
    /// no traces are sent].
    #[arg(long, env = "WEFT_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

impl TraceArgs {
    /// The collector to send to, if any.
    pub fn endpoint(&self) -> Option<String> {
        weft_telemetry::traces::endpoint(self.otlp_endpoint.clone())
    }
}

/// `weft workers`' flags.
#[derive(clap::Args)]
pub struct WorkersArgs {
    #[command(flatten)]
    traces: TraceArgs,
}

#[derive(Deserialize)]
struct ComposeGreeting {
    greeting: String,
    name: String,
}

pub fn dev(args: DevArgs) -> anyhow::Result<u8> {
    let toolchain = weft_guest_build::find_toolchain()?;
    eprintln!("building the examples with {}", toolchain.describe());
    let built = weft_guest_build::build(
        &toolchain,
        &args.examples,
        &args.examples.join("target").join("weft-guests"),
        &args.examples.join("target").join("components"),
    )?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let config = ServerConfig {
            database: args.database.clone(),
            otlp_endpoint: args.traces.endpoint(),
            ..ServerConfig::default()
        };
        let server = tokio::spawn(serve(config, listener, async {
            let _ = tokio::signal::ctrl_c().await;
        }));
        let url = format!("http://{}", args.listen);
        let mut client = loop {
            match WorkflowServiceClient::connect(url.clone()).await {
                Ok(c) => break c.max_encoding_message_size(weft_server::MAX_COMPONENT_BYTES + 1024),
                Err(_) if !server.is_finished() => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                Err(_) => return Err(anyhow::anyhow!("the server stopped: {:?}", server.await)),
            }
        };
        for (package, workflow_type) in EXAMPLES {
            if let Some(guest) = built.iter().find(|g| g.package == *package) {
                client
                    .upload_module(weft_proto::UploadModuleRequest {
 vet_recent: 0,
                        workflow_type: workflow_type.to_string(),
                        component: crate::read_file(&guest.component, "component")?,
                    })
                    .await?;
                eprintln!("uploaded {package} as {workflow_type}");
            }
        }
        let workers = ExampleWorkers::connect(&url).await?;
        let inference = workers.inference.is_some();
        eprintln!(
            "weft dev: server on {url} ({}), workers on `hello-activity-task-queue`, `default`, `cpu`{}.\n\
             console: {url}/\n\
             try: weft start --type GreetingWorkflow --id hello-1 --input '\"World\"' --wait",
            args.database,
            if inference { ", `inference`" } else { "" }
        );
        let (w, s) = tokio::join!(workers.run(), server);
        w?;
        s??;
        Ok(0)
    })
}

/// The examples' activity workers: `compose_greeting` on `hello-activity-task-queue`, `square`
/// on `default`, the CPU activities on `cpu`, and the inference worker when the model is there.
struct ExampleWorkers {
    hello: Worker,
    default: Worker,
    cpu: Worker,
    inference: Option<Worker>,
}

/// Where `weft workers` notes each attempt it runs (one `<idempotency key> <attempt>` line,
/// written before the activity runs), so that a soak can check no attempt ran twice.
const AUDIT_LOG_ENV: &str = "WEFT_WORKERS_AUDIT_LOG";

/// Appends one attempt to the audit log named by [`AUDIT_LOG_ENV`], if any; one write per
/// line, so the lines of several processes do not interleave.
fn audit(ctx: &ActivityContext) {
    use std::io::Write;
    let Some(path) = std::env::var_os(AUDIT_LOG_ENV) else {
        return;
    };
    let line = format!("{} {}\n", ctx.idempotency_key, ctx.attempt);
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "cannot append to {AUDIT_LOG_ENV} {}: {e}",
            path.to_string_lossy()
        );
    }
}

impl ExampleWorkers {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        let mut hello = Worker::connect(url).await?;
        hello.activity(
            "compose_greeting",
            |ctx: ActivityContext, g: ComposeGreeting| async move {
                audit(&ctx);
                Ok::<_, ActivityError>(format!("{}, {}!", g.greeting, g.name))
            },
        );
        let mut default = Worker::connect(url).await?;
        default.activity("square", |ctx: ActivityContext, i: u64| async move {
            audit(&ctx);
            Ok::<_, ActivityError>(i * i)
        });
        let mut cpu = Worker::connect(url).await?;
        weft_inference::register_cpu(&mut cpu);
        // The inference worker, when the model is there (runtime/inference/fetch-model.sh).
        let model_dir = weft_inference::default_model_dir();
        let inference = match weft_inference::Embedder::load(&model_dir) {
            Ok(model) => {
                let batcher = weft_inference::Batcher::spawn(
                    std::sync::Arc::new(model),
                    weft_inference::BatchConfig::default(),
                );
                let mut inference = Worker::connect(url).await?;
                weft_inference::register(&mut inference, &batcher);
                eprintln!(
                    "inference worker: all-MiniLM-L6-v2 from {} on `inference`",
                    model_dir.display()
                );
                Some(inference)
            }
            Err(e) => {
                eprintln!("inference worker off: {e}");
                None
            }
        };
        Ok(ExampleWorkers {
            hello,
            default,
            cpu,
            inference,
        })
    }

    /// Serves until Ctrl-C (SIGINT), then drains.
    async fn run(self) -> anyhow::Result<()> {
        let stop = || async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let inference = async {
            match &self.inference {
                Some(w) => w.run("inference", 64, stop()).await,
                None => Ok(()),
            }
        };
        let (a, b, c, d) = tokio::join!(
            self.hello.run("hello-activity-task-queue", 16, stop()),
            self.default.run("default", 16, stop()),
            self.cpu.run("cpu", 16, stop()),
            inference,
        );
        a?;
        b?;
        c?;
        d?;
        Ok(())
    }
}

/// `weft workers`: the examples' activity workers against a running server.
pub fn workers(server: &crate::client_cmd::Server, args: WorkersArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // Each attempt's `run activity ...` span continues the attempt's trace (the task's
        // `traceparent`), as the server's spans do.
        if let Some(endpoint) = args.traces.endpoint() {
            weft_telemetry::traces::install(&endpoint, "weft-workers")?;
        }
        let url = server.url();
        let workers = ExampleWorkers::connect(&url).await?;
        eprintln!(
            "weft workers: on {url}, `hello-activity-task-queue`, `default`, `cpu`{}",
            if workers.inference.is_some() {
                ", `inference`"
            } else {
                ""
            }
        );
        let ran = workers.run().await;
        weft_telemetry::traces::flush();
        ran?;
        Ok(0)
    })
}
