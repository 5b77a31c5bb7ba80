//! The console and its JSON API as users meet them: a real `weft server` process, plain HTTP
//! to `/api/v1/` on the gRPC port, and Chromium driven over WebDriver (chromedriver).
//!
//! The browser test needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).
//! Without them it fails under CI and says what to install elsewhere.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use weft_proto::workflow_service_client::WorkflowServiceClient;
use weft_worker::{ActivityContext, ActivityError, Worker};

mod common;
use common::*;

const HOSTILE_ID: &str = "<img src=x onerror=alert(1)>";

/// GET or POST JSON; answers the status and the parsed body.
async fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let (status, bytes) = http(method, url, body.map(|b| b.to_string().into_bytes())).await;
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{method} {url} answered {status} with non-JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, value)
}

async fn ok(method: &str, url: &str, body: Option<Value>) -> Value {
    let (status, value) = call(method, url, body).await;
    assert_eq!(status, 200, "{method} {url}: {value}");
    value
}

/// `{"error": {"code", "message"}}` with the HTTP status.
async fn api_error(method: &str, url: &str, body: Option<Value>) -> (u16, String, String) {
    let (status, value) = call(method, url, body).await;
    let err = &value["error"];
    (
        status,
        err["code"].as_str().unwrap_or_default().to_owned(),
        err["message"].as_str().unwrap_or_default().to_owned(),
    )
}

fn enc(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `default` queue's worker: `square` for fan-out, and the saga's steps, where charging
/// the card and cancelling the hotel fail for good (so the saga run fails).
async fn spawn_default_worker(url: &str) -> tokio::task::JoinHandle<()> {
    let mut worker = Worker::connect(url).await.unwrap();
    worker.activity("square", |_: ActivityContext, i: u64| async move {
        Ok::<_, ActivityError>(i * i)
    });
    for step in [
        "reserve_flight",
        "reserve_hotel",
        "cancel_flight",
        "refund_card",
    ] {
        worker.activity(step, move |_: ActivityContext, _: Value| async move {
            Ok::<_, ActivityError>(format!("{step} done"))
        });
    }
    for step in ["charge_card", "cancel_hotel"] {
        worker.activity(step, move |_: ActivityContext, _: Value| async move {
            Err::<String, _>(ActivityError::non_retryable(
                "Declined",
                format!("{step} declined"),
            ))
        });
    }
    tokio::spawn(async move {
        worker
            .run("default", 32, std::future::pending())
            .await
            .unwrap();
    })
}

/// What every console test starts from: the examples uploaded, their workers running.
struct Fixture {
    server: ServerProcess,
    http: String,
    client: WorkflowServiceClient<tonic::transport::Channel>,
    _workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Fixture {
    async fn new(database: &str) -> Self {
        let server = ServerProcess::start(database, free_port()).await;
        let mut client = server.client().await;
        upload(&mut client, "Approval", weft_tests::APPROVAL).await;
        upload(&mut client, "Saga", weft_tests::SAGA).await;
        upload(&mut client, "FanOut", weft_tests::FAN_OUT).await;
        let workers = vec![
            // The first greeting's first attempt fails, so its run shows a retried attempt.
            spawn_hello_worker(&server.url, 1, false).await,
            spawn_default_worker(&server.url).await,
        ];
        Fixture {
            http: server.url.clone(),
            server,
            client,
            _workers: workers,
        }
    }

    async fn start(&self, workflow_type: &str, id: &str, input: Value) -> String {
        let started = ok(
            "POST",
            &format!("{}/api/v1/workflows", self.http),
            Some(json!({"workflow_type": workflow_type, "workflow_id": id, "input": input})),
        )
        .await;
        started["run_id"].as_str().unwrap().to_owned()
    }

    async fn result(&self, id: &str) -> Value {
        ok(
            "GET",
            &format!(
                "{}/api/v1/workflows/{}/result?wait=true&timeout_ms=60000",
                self.http,
                enc(id)
            ),
            None,
        )
        .await
    }

    /// What `weft history ID --json` prints.
    fn cli_history(&self, id: &str) -> Vec<u8> {
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["--server", &self.server.url, "history", id, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

async fn the_json_api_mirrors_grpc(database: &str) {
    let f = Fixture::new(database).await;
    let base = format!("{}/api/v1", f.http);

    // Upload through HTTP: a good component, then one that imports WASI.
    let component = std::fs::read(weft_tests::HELLO_ACTIVITY).unwrap();
    let (status, body) = http(
        "POST",
        &format!("{base}/modules?type=GreetingWorkflow"),
        Some(component),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let wasi = weft_tests::component_importing("wasi:http/outgoing-handler@0.2.0");
    let (status, body) = http("POST", &format!("{base}/modules?type=Bad"), Some(wasi)).await;
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "INVALID_ARGUMENT");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wasi:http/outgoing-handler@0.2.0"),
        "{err}"
    );

    f.start("GreetingWorkflow", "greet-1", json!("World")).await;
    f.start(
        "Approval",
        "approval-1",
        json!({"request": "laptop", "timeout_ms": 600000}),
    )
    .await;
    f.start("Saga", "saga-1", json!({"traveller": "ann"})).await;
    f.start("GreetingWorkflow", HOSTILE_ID, json!("x")).await;

    let greet = f.result("greet-1").await;
    assert_eq!(greet["status"], "completed");
    assert_eq!(greet["output"], "Hello, World! (attempt 2)");
    let saga = f.result("saga-1").await;
    assert_eq!(saga["status"], "failed", "{saga}");
    assert_eq!(saga["error"]["kind"], "Declined", "{saga}");

    // The run page's data: the retried attempt, the awaited signal and its timer.
    let d = ok("GET", &format!("{base}/workflows/greet-1"), None).await;
    assert_eq!(d["run"]["status"], "completed");
    assert_eq!(d["input"], "World");
    assert_eq!(d["output"], "Hello, World! (attempt 2)");
    let attempts = d["retried_attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{d}");
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["error_kind"], "Flaky");
    assert!(attempts[0]["started_at_ms"].as_u64().is_some(), "{d}");
    let d = ok("GET", &format!("{base}/workflows/approval-1"), None).await;
    assert_eq!(d["run"]["status"], "running");
    assert_eq!(
        d["awaited_signals"],
        json!([{"handle": 0, "name": "approve"}])
    );
    assert_eq!(d["pending_timers"].as_array().unwrap().len(), 1, "{d}");
    assert!(
        d["pending_timers"][0]["fire_at_ms"].as_u64().unwrap()
            > d["run"]["started_at_ms"].as_u64().unwrap() + 500_000
    );

    // A signal for a workflow that does not exist is NOT_FOUND; one without a name is
    // INVALID_ARGUMENT naming the field.
    let (status, code, message) = api_error(
        "POST",
        &format!("{base}/workflows/nope/signal"),
        Some(json!({"name": "approve"})),
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"), "{message}");
    assert!(message.contains("nope"), "{message}");
    let (status, code, message) = api_error(
        "POST",
        &format!("{base}/workflows/approval-1/signal"),
        Some(json!({"payload": 1})),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (400, "INVALID_ARGUMENT"),
        "{message}"
    );
    assert!(message.contains("name"), "{message}");
    ok(
        "POST",
        &format!("{base}/workflows/approval-1/signal"),
        Some(json!({"name": "approve", "payload": {"approver": "ann"}})),
    )
    .await;
    let approved = f.result("approval-1").await;
    assert_eq!(approved["status"], "completed");
    assert_eq!(approved["output"]["approver"], "ann");
    let (status, code, _) = api_error(
        "POST",
        &format!("{base}/workflows/approval-1/cancel"),
        Some(json!({})),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "FAILED_PRECONDITION"));

    // Lists, filters, counts.
    let all = ok("GET", &format!("{base}/runs"), None).await;
    assert_eq!(all["runs"].as_array().unwrap().len(), 4);
    let failed = ok("GET", &format!("{base}/runs?status=failed"), None).await;
    let ids: Vec<&str> = failed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["workflow_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["saga-1"]);
    let prefixed = ok("GET", &format!("{base}/runs?prefix=gre"), None).await;
    assert_eq!(prefixed["runs"].as_array().unwrap().len(), 1);
    let paged = ok("GET", &format!("{base}/runs?page_size=3"), None).await;
    let token = paged["next_page_token"].as_str().unwrap();
    assert!(!token.is_empty());
    let rest = ok(
        "GET",
        &format!("{base}/runs?page_size=3&page_token={}", enc(token)),
        None,
    )
    .await;
    assert_eq!(rest["runs"].as_array().unwrap().len(), 1);
    let _ = f.result(HOSTILE_ID).await;
    let counts = ok("GET", &format!("{base}/runs/counts"), None).await;
    assert_eq!(counts["counts"], json!({"completed": 3, "failed": 1}));
    assert_eq!(counts["total"], 4);
    let counts = ok("GET", &format!("{base}/runs/counts?type=Saga"), None).await;
    assert_eq!(counts["counts"], json!({"failed": 1}));
    let (status, code, message) = api_error("GET", &format!("{base}/runs?status=done"), None).await;
    assert_eq!((status, code.as_str()), (400, "INVALID_ARGUMENT"));
    assert!(message.contains("`done`"), "{message}");

    // The hostile id is an id like any other.
    let d = ok(
        "GET",
        &format!("{base}/workflows/{}", enc(HOSTILE_ID)),
        None,
    )
    .await;
    assert_eq!(d["run"]["workflow_id"], HOSTILE_ID);

    // The history download is byte for byte `weft history --json`, and replays clean.
    let (status, file) = http(
        "GET",
        &format!("{base}/workflows/greet-1/history.json"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8_lossy(&file),
        String::from_utf8_lossy(&f.cli_history("greet-1"))
    );
    let dir = tempfile::tempdir().unwrap();
    let h = weft_history::History::from_json(&file).unwrap();
    replays_clean(dir.path(), &h, weft_tests::HELLO_ACTIVITY);

    // The guest's log lines, from a replay on the server.
    let h = ok(
        "GET",
        &format!("{base}/workflows/saga-1/history?logs=true"),
        None,
    )
    .await;
    assert_eq!(h["logs_error"], Value::Null);
    let logs = h["logs"].as_array().unwrap();
    assert!(
        logs.iter().any(|l| l["level"] == "warn"
            && l["message"]
                .as_str()
                .unwrap()
                .contains("charge_card failed")),
        "{logs:?}"
    );

    // Modules and queues.
    let m = ok("GET", &format!("{base}/modules"), None).await;
    let modules = m["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 4, "{m}");
    let greeting = modules
        .iter()
        .find(|m| m["workflow_type"] == "GreetingWorkflow")
        .unwrap();
    assert_eq!(
        (
            &greeting["newest"],
            &greeting["closed_runs"],
            &greeting["running_runs"]
        ),
        (&json!(true), &json!(2), &json!(0))
    );
    let q = ok("GET", &format!("{base}/queues"), None).await;
    let hello = q["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "hello-activity-task-queue")
        .unwrap_or_else(|| panic!("{q}"));
    assert_eq!(hello["workers"].as_array().unwrap().len(), 1, "{hello}");
    let greet_stats = &hello["activities"][0];
    assert_eq!(greet_stats["activity_name"], "compose_greeting");
    assert_eq!(
        (&greet_stats["completed"], &greet_stats["failed"]),
        (&json!(2), &json!(1))
    );

    // The CLI says the same in words.
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["--server", &f.server.url, "describe", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: not found: no workflow with id `nope`\n"
    );

    // What is not an endpoint says so, as JSON.
    let (status, code, _) = api_error("GET", &format!("{base}/nothing-here"), None).await;
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
    let (status, code, message) = api_error(
        "POST",
        &format!("{base}/workflows"),
        Some(json!({"workflow_id": "x"})),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "INVALID_ARGUMENT"));
    assert!(message.contains("workflow_type"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_mirrors_grpc_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    the_json_api_mirrors_grpc(&format!("sqlite:{}", dir.path().join("weft.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_mirrors_grpc_on_postgres() {
    let db = PgDatabase::create();
    the_json_api_mirrors_grpc(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_moves_to_its_own_listener_with_http() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    // Two ports: another process (the browser test's Chrome) may take one of them before the
    // server binds it; then the server exits, and it is started again on two others.
    let (server, http_port) = 'started: {
        for _ in 0..5 {
            let http_port = free_port();
            let Some(mut server) = ServerProcess::try_start_with_env(
                &database,
                free_port(),
                &["--http", &format!("127.0.0.1:{http_port}")],
                &[],
            )
            .await
            else {
                continue;
            };
            // The gRPC port answers first; the console's comes up as the server finishes.
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(("127.0.0.1", http_port))
                    .await
                    .is_ok()
                {
                    break 'started (server, http_port);
                }
                if server.exited() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("the server with --http did not come up in 5 tries");
    };
    let console = format!("http://127.0.0.1:{http_port}");
    let (status, page) = http("GET", &format!("{console}/"), None).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("<title>weft console</title>"));
    let runs = ok("GET", &format!("{console}/api/v1/runs"), None).await;
    assert_eq!(runs["runs"], json!([]));
    // gRPC stays where it was, and the console is not served there any more.
    let mut client = server.client().await;
    upload(&mut client, "Approval", weft_tests::APPROVAL).await;
    let (_, page) = http("GET", &format!("{}/", server.url), None).await;
    assert!(!String::from_utf8_lossy(&page).contains("weft console"));
}

// ---------- the browser ----------

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session, or `None` outside CI when the browser is not installed.
async fn browser() -> Option<(Driver, Client)> {
    let installed = Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromedriver is missing: apt-get install chromium chromium-driver (.ci/run does)"
        );
        eprintln!(
            "SKIPPED: the console's browser test needs `apt-get install chromium chromium-driver`"
        );
        return None;
    }
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let mut caps = serde_json::Map::new();
    // Chrome's DevTools port from the tests' own ports: left to chromedriver, it is a random
    // one, which may be the port a server of another test is about to bind.
    let devtools = format!("--remote-debugging-port={}", free_port());
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1400,1000", devtools]}),
    );
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        if let Ok(client) = ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            return Some((driver, client));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {}", driver.url);
}

/// Evaluates `expr` in the page until it is true (the console updates itself by polling).
async fn wait_until(browser: &Client, what: &str, expr: &str) {
    let script = format!("try {{ return Boolean({expr}); }} catch (e) {{ return false; }}");
    for _ in 0..300 {
        if browser
            .execute(&script, vec![])
            .await
            .ok()
            .and_then(|v| v.as_bool())
            == Some(true)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = browser
        .execute("return document.getElementById('main').innerText", vec![])
        .await
        .unwrap_or_default();
    panic!("waited 30 s for {what} ({expr}); the page shows:\n{page}");
}

/// Opens a console page and waits until `ready` holds on it.
async fn visit(browser: &Client, base: &str, page: &str, what: &str, ready: &str) {
    browser.goto(&format!("{base}/{page}")).await.unwrap();
    wait_until(browser, what, ready).await;
}

async fn eval(browser: &Client, expr: &str) -> Value {
    browser
        .execute(&format!("return {expr};"), vec![])
        .await
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let Some((_driver, browser)) = browser().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(&format!("sqlite:{}", dir.path().join("weft.db").display())).await;
    let mut client = f.client.clone();
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    f.start("GreetingWorkflow", "greet-1", json!("World")).await;
    f.start(
        "Approval",
        "approval-1",
        json!({"request": "laptop", "timeout_ms": 600000}),
    )
    .await;
    f.start(
        "Approval",
        "approval-2",
        json!({"request": "desk", "timeout_ms": 600000}),
    )
    .await;
    f.start("Saga", "saga-1", json!({"traveller": "ann"})).await;
    f.start("FanOut", "fan-20", json!({"n": 20})).await;
    f.start("GreetingWorkflow", HOSTILE_ID, json!("x")).await;
    for id in ["greet-1", "saga-1", "fan-20", HOSTILE_ID] {
        f.result(id).await;
    }

    // Runs: every run with its status, the counts, and the status filter.
    visit(
        &browser,
        &f.http,
        "#/runs",
        "six runs",
        "document.querySelectorAll('#runs tbody tr').length === 6",
    )
    .await;
    let statuses = eval(
        &browser,
        "Object.fromEntries([...document.querySelectorAll('#runs tbody tr')].map(r => [r.dataset.workflowId, r.dataset.status]))",
    )
    .await;
    assert_eq!(
        statuses,
        json!({"greet-1": "completed", "approval-1": "running", "approval-2": "running",
               "saga-1": "failed", "fan-20": "completed", HOSTILE_ID: "completed"})
    );
    let counts = eval(
        &browser,
        "Object.fromEntries([...document.querySelectorAll('.counts button')].map(b => [b.dataset.status, b.querySelector('.n').textContent]))",
    )
    .await;
    assert_eq!(
        counts,
        json!({"": "6", "running": "2", "completed": "3", "failed": "1"})
    );
    // The hostile id is shown as its characters, and nothing ran.
    let shown = eval(
        &browser,
        "[...document.querySelectorAll('#runs td.id a')].map(a => a.textContent)",
    )
    .await;
    assert!(
        shown.as_array().unwrap().contains(&json!(HOSTILE_ID)),
        "{shown}"
    );
    assert_eq!(
        eval(&browser, "document.querySelectorAll('main img').length").await,
        0
    );
    assert!(browser.get_alert_text().await.is_err(), "an alert opened");
    browser
        .find(Locator::Css(".counts button[data-status='failed']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &browser,
        "only the failed run",
        "document.querySelectorAll('#runs tbody tr').length === 1 && document.querySelector('#runs tbody tr').dataset.workflowId === 'saga-1'",
    )
    .await;

    // A failed saga: its error, and the guest's log line among the events.
    visit(
        &browser,
        &f.http,
        "#/run/saga-1",
        "the saga's events",
        "document.querySelectorAll('#event-table tbody tr').length > 0",
    )
    .await;
    let error = eval(&browser, "document.getElementById('run-error').textContent").await;
    assert!(
        error.as_str().unwrap().contains("cancel_hotel declined"),
        "{error}"
    );
    let logs = eval(
        &browser,
        "[...document.querySelectorAll('#event-table tr.log .log-message')].map(t => t.textContent)",
    )
    .await;
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("charge_card failed")),
        "{logs}"
    );

    // The approval run: the awaited signal; a payload that is not JSON is refused on the
    // page; `approve` sent from the page turns the run completed without a reload.
    visit(
        &browser,
        &f.http,
        "#/run/approval-1",
        "the awaited signal",
        "document.querySelector('#awaited-signals .signal-name').textContent === 'approve'",
    )
    .await;
    browser
        .execute("window.__sameDocument = true; return 0;", vec![])
        .await
        .unwrap();
    let name = browser.find(Locator::Id("signal-name")).await.unwrap();
    name.send_keys("approve").await.unwrap();
    let payload = browser.find(Locator::Id("signal-payload")).await.unwrap();
    payload.send_keys("{approver: ann}").await.unwrap();
    browser
        .find(Locator::Id("signal-send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &browser,
        "the JSON error",
        "document.getElementById('signal-error').textContent.includes('not JSON')",
    )
    .await;
    assert_eq!(
        eval(
            &browser,
            "document.querySelector('#run-status .badge').dataset.status"
        )
        .await,
        "running"
    );
    payload.clear().await.unwrap();
    payload.send_keys(r#"{"approver": "ann"}"#).await.unwrap();
    browser
        .find(Locator::Id("signal-send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &browser,
        "the run to complete",
        "document.querySelector('#run-status .badge').dataset.status === 'completed'",
    )
    .await;
    assert_eq!(
        eval(&browser, "window.__sameDocument === true").await,
        true,
        "the page reloaded"
    );
    let output = eval(
        &browser,
        "JSON.parse(document.getElementById('run-output').textContent)",
    )
    .await;
    assert_eq!(output["approver"], "ann");

    // The fan-out's timeline: one bar per activity.
    visit(
        &browser,
        &f.http,
        "#/run/fan-20",
        "the timeline",
        "document.querySelector('#timeline svg')",
    )
    .await;
    assert_eq!(
        eval(
            &browser,
            "document.querySelectorAll('#timeline rect.bar[data-kind=activity]').length"
        )
        .await,
        20
    );
    assert_eq!(
        eval(
            &browser,
            "document.querySelectorAll('#timeline rect.bar.ok').length"
        )
        .await,
        20
    );

    // A fan-out of 1,000: grouped into one row per name, every bar there on asking.
    f.start("FanOut", "fan-1000", json!({"n": 1000})).await;
    f.result("fan-1000").await;
    visit(
        &browser,
        &f.http,
        "#/run/fan-1000",
        "the timeline",
        "document.querySelector('#timeline svg')",
    )
    .await;
    assert_eq!(
        eval(
            &browser,
            "document.querySelectorAll('#timeline g.row').length"
        )
        .await,
        1,
        "1,000 activities of one name make one row"
    );
    let label = eval(
        &browser,
        "document.querySelector('#timeline g.row text').textContent",
    )
    .await;
    assert!(label.as_str().unwrap().contains("×1000"), "{label}");
    let grouped_ms = eval(
        &browser,
        "document.getElementById('timeline-section').dataset.renderMs",
    )
    .await;
    browser
        .find(Locator::Id("timeline-toggle"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &browser,
        "every bar",
        "document.querySelectorAll('#timeline g.row').length === 1000",
    )
    .await;
    let all_ms = eval(
        &browser,
        "document.getElementById('timeline-section').dataset.renderMs",
    )
    .await;
    // A figure for BENCHMARKS.md, not an assertion.
    eprintln!(
        "timeline of 1,000 activities rendered in {grouped_ms} ms grouped, {all_ms} ms expanded"
    );

    // A retried activity shows each attempt; the history download is `weft history --json`.
    visit(
        &browser,
        &f.http,
        "#/run/greet-1",
        "the timeline",
        "document.querySelector('#timeline svg')",
    )
    .await;
    let attempts = eval(
        &browser,
        "[...document.querySelectorAll('#timeline rect.bar[data-kind=activity]')].map(r => [r.dataset.attempt, r.dataset.outcome])",
    )
    .await;
    assert_eq!(attempts, json!([["1", "failed"], ["2", "ok"]]));
    let downloaded = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.getElementById('download-history').href).then(r => r.text()).then(done);",
            vec![],
        )
        .await
        .unwrap();
    let downloaded = downloaded.as_str().unwrap();
    assert_eq!(
        downloaded,
        String::from_utf8_lossy(&f.cli_history("greet-1"))
    );
    let h = weft_history::History::from_json(downloaded.as_bytes()).unwrap();
    replays_clean(dir.path(), &h, weft_tests::HELLO_ACTIVITY);

    // The hostile run's own page shows the id as text.
    visit(
        &browser,
        &f.http,
        &format!("#/run/{}", enc(HOSTILE_ID)),
        "the hostile run",
        "document.getElementById('run-title')",
    )
    .await;
    assert_eq!(
        eval(&browser, "document.getElementById('run-title').textContent").await,
        HOSTILE_ID
    );
    assert_eq!(
        eval(&browser, "document.querySelectorAll('main img').length").await,
        0
    );

    // Upload from the browser: a component importing WASI is refused with the CLI's error.
    let wasi = dir.path().join("wasi-http.wasm");
    std::fs::write(
        &wasi,
        weft_tests::component_importing("wasi:http/outgoing-handler@0.2.0"),
    )
    .unwrap();
    visit(
        &browser,
        &f.http,
        "#/modules",
        "the modules",
        "document.querySelectorAll('#modules tbody tr').length === 4",
    )
    .await;
    browser
        .find(Locator::Id("upload-type"))
        .await
        .unwrap()
        .send_keys("Clocky")
        .await
        .unwrap();
    browser
        .find(Locator::Id("upload-file"))
        .await
        .unwrap()
        .send_keys(wasi.to_str().unwrap())
        .await
        .unwrap();
    browser
        .find(Locator::Css("#upload-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &browser,
        "the upload's error",
        "document.getElementById('upload-result').textContent.includes('wasi:http/outgoing-handler@0.2.0')",
    )
    .await;

    // Task queues: the hello worker and its outcomes.
    visit(
        &browser,
        &f.http,
        "#/queues",
        "the hello queue",
        "document.querySelector(\"section.queue[data-queue='hello-activity-task-queue']\")",
    )
    .await;
    browser.close().await.unwrap();
}

/// `cargo test -p weft --test console -- --ignored screenshots` writes the README's pictures
/// of the runs page and a run page to `docs/screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "regenerates docs/screenshots; run on purpose"]
async fn screenshots() {
    let (_driver, browser) = browser()
        .await
        .expect("chromium and chromedriver are installed");
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(&format!("sqlite:{}", dir.path().join("weft.db").display())).await;
    let mut client = f.client.clone();
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    for i in 1..=3 {
        f.start(
            "GreetingWorkflow",
            &format!("greet-{i}"),
            json!(format!("user {i}")),
        )
        .await;
    }
    f.start(
        "Approval",
        "approval-7",
        json!({"request": "laptop", "timeout_ms": 600000}),
    )
    .await;
    f.start("Saga", "trip-42", json!({"traveller": "ann"}))
        .await;
    f.start("FanOut", "fan-40", json!({"n": 40})).await;
    for id in ["greet-1", "greet-2", "greet-3", "trip-42", "fan-40"] {
        f.result(id).await;
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&out).unwrap();
    for (page, file, height, ready) in [
        (
            "#/runs",
            "runs.png",
            600,
            "document.querySelectorAll('#runs tbody tr').length === 6",
        ),
        (
            "#/run/greet-1",
            "run.png",
            1500,
            "document.querySelector('#timeline svg')",
        ),
        (
            "#/run/approval-7",
            "run-waiting.png",
            1500,
            "document.querySelector('#awaited-signals')",
        ),
        (
            "#/run/trip-42",
            "run-failed.png",
            1900,
            "document.querySelector('#event-table tr.log')",
        ),
    ] {
        browser.set_window_size(1400, height).await.unwrap();
        visit(&browser, &f.http, page, page, ready).await;
        let png = browser.screenshot().await.unwrap();
        std::fs::write(out.join(file), png).unwrap();
    }
    browser.close().await.unwrap();
}

/// On a server with --auth the console asks for a token, keeps it in an HttpOnly cookie
/// (the page's script cannot read it), and then shows the runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_with_a_token_on_a_server_with_auth() {
    let Some((_driver, browser)) = browser().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["token", "create", "--role", "reader", "--name", "viewer"])
        .args(["--database", &database])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let server = ServerProcess::start_with(&database, free_port(), &["--auth"]).await;
    visit(
        &browser,
        &server.url,
        "#/runs",
        "the sign-in form",
        "document.getElementById('login-token') !== null",
    )
    .await;
    // A wrong token is refused on the form.
    let field = browser.find(Locator::Id("login-token")).await.unwrap();
    field.send_keys("weft_wrong").await.unwrap();
    browser
        .find(Locator::Css("#login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &browser,
        "the refusal",
        "document.getElementById('login-error').innerText.includes('unknown token')",
    )
    .await;
    field.clear().await.unwrap();
    field.send_keys(&token).await.unwrap();
    browser
        .find(Locator::Css("#login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &browser,
        "the runs page after sign-in",
        "document.getElementById('login') === null && document.getElementById('main').innerText.includes('No runs match')",
    )
    .await;
    assert_eq!(
        eval(&browser, "document.cookie").await,
        json!(""),
        "the token cookie is HttpOnly"
    );
}
