//! What the inference tests share: a server in this process with the ML pipeline uploaded,
//! and the real `weft-inference` process.

// Each test file uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use weft_proto::workflow_service_client::WorkflowServiceClient;
use weft_proto::{self as proto};

pub type Client = WorkflowServiceClient<tonic::transport::Channel>;

/// A `weft-inference` process, killed when dropped.
pub struct InferenceWorker(Child);

impl InferenceWorker {
    /// Starts one and waits until it says it polls (the model is loaded by then).
    pub fn start(url: &str) -> Self {
        Self::start_with(url, &[])
    }

    pub fn start_with(url: &str, flags: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weft-inference"))
            .args(["--server", url, "--max-batch", "16", "--max-wait-ms", "20"])
            .args(flags)
            .args(["--concurrency", "16"])
            .args(["--drain-timeout-s", "0"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("weft-inference starts");
        let stderr = child.stderr.take().expect("piped");
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("weft-inference ready") => break,
                Some(Ok(_)) => {}
                other => {
                    let _ = child.kill();
                    panic!("weft-inference stopped before it was ready: {other:?}");
                }
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        InferenceWorker(child)
    }

    pub fn kill(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }
}

impl Drop for InferenceWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server in this process on a SQLite file, with the ML pipeline's module uploaded.
pub async fn server() -> (tempfile::TempDir, String, Client) {
    server_with(weft_server::ServerConfig::default()).await
}

/// [`server`] with `config`'s settings but its own database.
pub async fn server_with(config: weft_server::ServerConfig) -> (tempfile::TempDir, String, Client) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = weft_server::ServerConfig {
        database: format!("sqlite:{}", dir.path().join("weft.db").display()),
        ..config
    };
    tokio::spawn(weft_server::serve(config, listener, std::future::pending()));
    let mut client = loop {
        match WorkflowServiceClient::connect(url.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    client
        .upload_module(proto::UploadModuleRequest {
            vet_recent: 0,
            workflow_type: "MlPipeline".into(),
            component: std::fs::read(weft_tests::ML_PIPELINE).unwrap(),
        })
        .await
        .unwrap();
    (dir, url, client)
}
