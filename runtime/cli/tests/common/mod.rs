//! What the tests of the real `weft` binary share: a server process on a fresh database,
//! the hello-activity worker, and the gRPC calls most tests make.
#![allow(dead_code)] // each test binary uses its own part of it

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde::Deserialize;
use weft_proto::workflow_service_client::WorkflowServiceClient;
use weft_proto::{self as proto};
use weft_worker::{ActivityContext, ActivityError, Worker};

/// Runs the `weft` binary with `args` to the end (a local `weft` of a test binary, with another
/// answer, shadows this one).
pub fn weft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("weft runs")
}

/// What a `weft` command printed, stdout then stderr.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub struct ServerProcess {
    pub child: Child,
    pub url: String,
}

impl ServerProcess {
    pub async fn start(database: &str, port: u16) -> Self {
        Self::start_with(database, port, &[]).await
    }

    /// A server with more flags than `--listen` and `--database`.
    pub async fn start_with(database: &str, port: u16, flags: &[&str]) -> Self {
        Self::start_with_env(database, port, flags, &[]).await
    }

    /// A server with more flags and environment variables.
    pub async fn start_with_env(
        database: &str,
        port: u16,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let url = format!("http://127.0.0.1:{port}");
        Self::try_start_with_env(database, port, flags, env)
            .await
            .unwrap_or_else(|| panic!("weft server did not come up on {url}"))
    }

    /// [`start_with_env`](Self::start_with_env), or `None` if the server exits or does not
    /// answer within 10 s (a port taken meanwhile, say).
    pub async fn try_start_with_env(
        database: &str,
        port: u16,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Option<Self> {
        let child = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database",
                database,
            ])
            .args(flags)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("weft server starts");
        // Dropping the process on a failed start kills and reaps it.
        let mut server = ServerProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if WorkflowServiceClient::connect(server.url.clone())
                .await
                .is_ok()
            {
                return Some(server);
            }
            if server.exited() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// True once the process has ended.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn kill(mut self) {
        // SIGKILL: no shutdown code runs.
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }

    pub async fn client(&self) -> WorkflowServiceClient<tonic::transport::Channel> {
        WorkflowServiceClient::connect(self.url.clone())
            .await
            .unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server on a fresh SQLite file, and a client of it. Keep the directory alive.
pub async fn sqlite_server() -> (
    tempfile::TempDir,
    ServerProcess,
    WorkflowServiceClient<tonic::transport::Channel>,
) {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let server = ServerProcess::start(&database, free_port()).await;
    let client = server.client().await;
    (dir, server, client)
}

/// The Python the tests run: `WEFT_PYTHON`, else the virtual environment `.ci/run` makes in
/// `python/.venv` (the `weft` package with its test extras, grpcio and grpcio-tools).
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("WEFT_PYTHON") {
        return p.into();
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/.venv/bin/python")
}

/// How to make what [`python`] names.
pub const PYTHON_SETUP: &str = "python3 -m venv python/.venv && \
    python/.venv/bin/pip install -e './python[test,ml,otel]' (.ci/run does this; WEFT_PYTHON names \
    another interpreter)";

/// A port for a server to listen on: one no other call in this process returned, below the
/// kernel's ephemeral range (32768-60999 on Linux), so that no client socket of any test can
/// take it as its local port between this call and the server's bind.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Test binaries run one after another; spread them anyway, by process id.
    let start = std::process::id().wrapping_mul(37) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(n < SPAN, "no free port left below the ephemeral range");
        let port = (LOW + (start + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs SQL on the local PostgreSQL's `postgres` database through psql.
pub fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-qc",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh PostgreSQL database, dropped when the guard goes.
pub struct PgDatabase {
    pub url: String,
    pub name: String,
}

impl PgDatabase {
    pub fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "weft_server_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        psql(&format!("CREATE DATABASE {name}"));
        PgDatabase {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

#[derive(Deserialize)]
pub struct ComposeGreeting {
    pub greeting: String,
    pub name: String,
}

/// Runs a hello-activity worker on `queue` in the background.
pub async fn spawn_hello_worker(
    url: &str,
    failures_before_success: u32,
    non_retryable: bool,
) -> tokio::task::JoinHandle<()> {
    let mut worker = Worker::connect(url).await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    worker.activity(
        "compose_greeting",
        move |ctx: ActivityContext, g: ComposeGreeting| {
            let calls = calls.clone();
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if non_retryable {
                    return Err(ActivityError::non_retryable(
                        "BadName",
                        format!("no greeting for {}", g.name),
                    ));
                }
                if n < failures_before_success {
                    return Err(ActivityError::retryable(
                        "Flaky",
                        format!("attempt {} failed", ctx.attempt),
                    ));
                }
                Ok::<_, ActivityError>(format!(
                    "{}, {}! (attempt {})",
                    g.greeting, g.name, ctx.attempt
                ))
            }
        },
    );
    tokio::spawn(async move {
        worker
            .run("hello-activity-task-queue", 8, std::future::pending())
            .await
            .unwrap();
    })
}

pub async fn upload(
    client: &mut WorkflowServiceClient<tonic::transport::Channel>,
    workflow_type: &str,
    path: &str,
) {
    client
        .upload_module(proto::UploadModuleRequest {
            vet_recent: 0,
            workflow_type: workflow_type.into(),
            component: std::fs::read(path).unwrap(),
        })
        .await
        .unwrap();
}

pub async fn start(
    client: &mut WorkflowServiceClient<tonic::transport::Channel>,
    workflow_type: &str,
    id: &str,
    input: &str,
) -> String {
    client
        .start_workflow(proto::StartWorkflowRequest {
            workflow_type: workflow_type.into(),
            workflow_id: id.into(),
            input: input.as_bytes().to_vec(),
            task_queue: String::new(),
            return_existing: false,
        })
        .await
        .unwrap()
        .into_inner()
        .run_id
}

pub async fn wait_result(
    client: &mut WorkflowServiceClient<tonic::transport::Channel>,
    id: &str,
) -> proto::GetWorkflowResultResponse {
    client
        .get_workflow_result(proto::GetWorkflowResultRequest {
            workflow_id: id.into(),
            run_id: String::new(),
            wait: true,
            wait_timeout_ms: 60_000,
        })
        .await
        .unwrap()
        .into_inner()
}

pub async fn history(
    client: &mut WorkflowServiceClient<tonic::transport::Channel>,
    id: &str,
) -> weft_history::History {
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
    weft_history::History::from_json(json.as_bytes()).expect("a valid history")
}

/// Writes `h` to `dir` and replays it with `weft replay` on `module`: it must replay clean.
/// Returns what `weft replay` printed.
pub fn replays_clean(dir: &std::path::Path, h: &weft_history::History, module: &str) -> String {
    let path = dir.join(format!("{}.json", h.header.run_id));
    std::fs::write(&path, h.to_json_pretty()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "replay",
            "--history",
            path.to_str().unwrap(),
            "--module",
            module,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    stdout
}

/// One HTTP request; answers the status and the body.
pub async fn http(method: &str, url: &str, body: Option<Vec<u8>>) -> (u16, Vec<u8>) {
    http_with(method, url, body, &[]).await
}

/// [`http`] with more headers.
pub async fn http_with(
    method: &str,
    url: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> (u16, Vec<u8>) {
    let (status, _, body) = http_response(method, url, body, headers).await;
    (status, body)
}

/// [`http_with`], with the response's headers.
pub async fn http_response(
    method: &str,
    url: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let response = client.request(request).await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}
