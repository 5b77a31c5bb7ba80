//! Who may do what, against a real `weft server --auth` process: every RPC without a token,
//! each role against the rights table, queue and type scopes, task tokens bound to their
//! claim, revoked and expired tokens, the JSON API's header and cookie, the audit log after a
//! scripted sequence, the first admin token, and the refusal to serve beyond loopback
//! unprotected. On SQLite and PostgreSQL.

use std::process::{Command, Stdio};
use std::time::Duration;

use tonic::Code;
use weft_proto::admin_service_client::AdminServiceClient;
use weft_proto::credentials::{Authorized, Bearer};
use weft_proto::worker_service_client::WorkerServiceClient;
use weft_proto::workflow_service_client::WorkflowServiceClient;
use weft_proto::{self as proto};

mod common;
use common::*;

const QUEUE: &str = "hello-activity-task-queue";

/// `weft <args>`: its stdout, or a panic with its stderr.
fn weft(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "weft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn channel(url: &str, token: Option<&str>) -> Authorized {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::service::interceptor::InterceptedService::new(channel, Bearer::new(token).unwrap())
}

struct As {
    workflows: WorkflowServiceClient<Authorized>,
    workers: WorkerServiceClient<Authorized>,
    admin: AdminServiceClient<Authorized>,
}

async fn as_(url: &str, token: Option<&str>) -> As {
    let channel = channel(url, token).await;
    As {
        workflows: WorkflowServiceClient::new(channel.clone())
            .max_encoding_message_size(weft_server::MAX_COMPONENT_BYTES + 1024),
        workers: WorkerServiceClient::new(channel.clone()),
        admin: AdminServiceClient::new(channel),
    }
}

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

fn denied<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>, says: &[&str]) {
    let status = r.expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    for word in says {
        assert!(
            status.message().contains(word),
            "`{word}` in {:?}",
            status.message()
        );
    }
}

fn start_request(workflow_type: &str, id: &str) -> proto::StartWorkflowRequest {
    proto::StartWorkflowRequest {
        workflow_type: workflow_type.into(),
        workflow_id: id.into(),
        input: b"\"ann\"".to_vec(),
        ..Default::default()
    }
}

fn poll(queue: &str) -> proto::PollActivityTaskRequest {
    proto::PollActivityTaskRequest {
        task_queue: queue.into(),
        worker_id: "w".into(),
        max_tasks: 1,
        poll_timeout_ms: 3_000,
    }
}

fn create(name: &str, role: &str) -> proto::CreateTokenRequest {
    proto::CreateTokenRequest {
        name: name.into(),
        role: role.into(),
        ..Default::default()
    }
}

/// Every RPC, with default arguments, as `c`'s caller: the codes it answers.
async fn every_rpc(c: &mut As) -> [Code; 22] {
    let (w, k, a) = (&mut c.workflows, &mut c.workers, &mut c.admin);
    [
        code(w.upload_module(proto::UploadModuleRequest::default()).await),
        code(w.vet_module(proto::VetModuleRequest::default()).await),
        code(w.migrate_runs(proto::MigrateRunsRequest::default()).await),
        code(
            w.start_workflow(proto::StartWorkflowRequest::default())
                .await,
        ),
        code(
            w.get_workflow_result(proto::GetWorkflowResultRequest::default())
                .await,
        ),
        code(
            w.describe_workflow(proto::DescribeWorkflowRequest::default())
                .await,
        ),
        code(
            w.list_workflows(proto::ListWorkflowsRequest::default())
                .await,
        ),
        code(w.get_history(proto::GetHistoryRequest::default()).await),
        code(
            w.signal_workflow(proto::SignalWorkflowRequest::default())
                .await,
        ),
        code(
            w.cancel_workflow(proto::CancelWorkflowRequest::default())
                .await,
        ),
        code(
            w.terminate_workflow(proto::TerminateWorkflowRequest::default())
                .await,
        ),
        code(
            w.count_workflows(proto::CountWorkflowsRequest::default())
                .await,
        ),
        code(w.list_modules(proto::ListModulesRequest::default()).await),
        code(
            w.list_task_queues(proto::ListTaskQueuesRequest::default())
                .await,
        ),
        code(
            k.poll_activity_task(proto::PollActivityTaskRequest {
                poll_timeout_ms: 1,
                ..poll("any-queue")
            })
            .await,
        ),
        code(
            k.complete_activity_task(proto::CompleteActivityTaskRequest::default())
                .await,
        ),
        code(
            k.fail_activity_task(proto::FailActivityTaskRequest::default())
                .await,
        ),
        code(
            k.record_heartbeat(proto::RecordHeartbeatRequest::default())
                .await,
        ),
        code(a.create_token(proto::CreateTokenRequest::default()).await),
        code(a.list_tokens(proto::ListTokensRequest::default()).await),
        code(a.revoke_token(proto::RevokeTokenRequest::default()).await),
        code(a.list_audit(proto::ListAuditRequest::default()).await),
    ]
}

/// Every RPC as `c`'s caller: refused for lack of rights (`PERMISSION_DENIED`) or not
/// (anything else: served, or refused for its arguments).
async fn rights_of(c: &mut As) -> Vec<bool> {
    let codes = every_rpc(c).await;
    for c in codes {
        assert_ne!(c, Code::Unauthenticated);
    }
    codes.iter().map(|c| *c != Code::PermissionDenied).collect()
}

/// The rights table, RPC by RPC: upload, vet, migrate, start, result, describe, list, history, signal,
/// cancel, terminate, count, modules, queues | poll, complete, fail, heartbeat | token
/// create, list, revoke, audit.
#[tokio::test]
async fn every_rpc_for_every_role_is_allowed_or_denied_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let mut tokens = Vec::new();
    for role in ["admin", "operator", "reader", "worker"] {
        tokens.push(weft(&[
            "token",
            "create",
            "--role",
            role,
            "--name",
            role,
            "--database",
            &database,
        ]));
    }
    let server = ServerProcess::start_with(&database, free_port(), &["--auth"]).await;
    let (t, f) = (true, false);
    let table = [
        ("admin", [t; 22]),
        (
            "operator",
            [
                f, f, f, t, t, t, t, t, t, t, t, t, t, t, f, f, f, f, f, f, f, f,
            ],
        ),
        (
            "reader",
            [
                f, f, f, f, t, t, t, t, f, f, f, t, t, t, f, f, f, f, f, f, f, f,
            ],
        ),
        (
            "worker",
            [
                f, f, f, f, f, f, f, f, f, f, f, f, f, f, t, t, t, t, f, f, f, f,
            ],
        ),
    ];
    for ((role, expected), token) in table.iter().zip(&tokens) {
        let mut c = as_(&server.url, Some(token)).await;
        assert_eq!(rights_of(&mut c).await, expected, "{role}");
    }
}

async fn rights_table(database: &str) {
    // The first admin token, straight on the database; then the server with auth on.
    let root = weft(&[
        "token",
        "create",
        "--role",
        "admin",
        "--name",
        "root",
        "--database",
        database,
    ]);
    assert!(root.starts_with("weft_") && root.len() == 69, "{root}");
    let server = ServerProcess::start_with(database, free_port(), &["--auth"]).await;
    let url = server.url.clone();
    let mut admin = as_(&url, Some(&root)).await;

    // Tokens made through the server, by the CLI and by the API.
    let reader = weft(&[
        "--server", &url, "--token", &root, "token", "create", "--role", "reader", "--name",
        "reader",
    ]);
    let operator = weft(&[
        "--server",
        &url,
        "--token",
        &root,
        "token",
        "create",
        "--role",
        "operator",
        "--types",
        "GreetingWorkflow",
        "--name",
        "ops",
    ]);
    let worker = admin
        .admin
        .create_token(proto::CreateTokenRequest {
            queues: vec![QUEUE.into()],
            ..create("hello-worker", "worker")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(worker.info.as_ref().unwrap().queues, [QUEUE]);
    let worker = worker.token;
    let cpu = admin
        .admin
        .create_token(proto::CreateTokenRequest {
            queues: vec!["cpu".into()],
            ..create("cpu-worker", "worker")
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let short = admin
        .admin
        .create_token(proto::CreateTokenRequest {
            expires_in_ms: 1,
            ..create("short", "reader")
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let taken = admin.admin.create_token(create("reader", "reader")).await;
    assert_eq!(code(taken), Code::AlreadyExists);
    let bad_role = admin
        .admin
        .create_token(create("x", "superuser"))
        .await
        .unwrap_err();
    assert_eq!(bad_role.code(), Code::InvalidArgument);
    assert!(
        bad_role
            .message()
            .contains("admin, operator, reader or worker")
    );

    for (workflow_type, path) in [
        ("GreetingWorkflow", weft_tests::HELLO_ACTIVITY),
        ("EdgeCases", weft_tests::EDGE_CASES),
    ] {
        admin
            .workflows
            .upload_module(proto::UploadModuleRequest {
                vet_recent: 0,
                workflow_type: workflow_type.into(),
                component: std::fs::read(path).unwrap(),
            })
            .await
            .unwrap();
    }

    // Every RPC without a token: UNAUTHENTICATED.
    let mut anon = as_(&url, None).await;
    assert_eq!(every_rpc(&mut anon).await, [Code::Unauthenticated; 22]);

    // No token, or one the server never made: UNAUTHENTICATED, on every service.
    for token in [None, Some("weft_not-a-token")] {
        let mut c = as_(&url, token).await;
        let list = c
            .workflows
            .list_workflows(proto::ListWorkflowsRequest::default())
            .await;
        let status = list.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(
            status.message().contains(if token.is_none() {
                "Bearer"
            } else {
                "unknown token"
            }),
            "{status:?}"
        );
        assert_eq!(
            code(
                c.workflows
                    .start_workflow(start_request("GreetingWorkflow", "x"))
                    .await
            ),
            Code::Unauthenticated
        );
        assert_eq!(
            code(c.workers.poll_activity_task(poll(QUEUE)).await),
            Code::Unauthenticated
        );
        assert_eq!(
            code(c.admin.list_tokens(proto::ListTokensRequest {}).await),
            Code::Unauthenticated
        );
    }

    // reader: reads, nothing else.
    let mut r = as_(&url, Some(&reader)).await;
    assert_eq!(
        code(
            r.workflows
                .list_workflows(proto::ListWorkflowsRequest::default())
                .await
        ),
        Code::Ok
    );
    assert_eq!(
        code(r.workflows.list_modules(proto::ListModulesRequest {}).await),
        Code::Ok
    );
    denied(
        r.workflows
            .start_workflow(start_request("GreetingWorkflow", "r-1"))
            .await,
        &["reader", "operate"],
    );
    denied(r.workers.poll_activity_task(poll(QUEUE)).await, &["reader"]);
    denied(
        r.admin.list_tokens(proto::ListTokensRequest {}).await,
        &["administer"],
    );

    // operator scoped to GreetingWorkflow: starts it, not another type; no uploads.
    let mut o = as_(&url, Some(&operator)).await;
    o.workflows
        .start_workflow(start_request("GreetingWorkflow", "greet-1"))
        .await
        .unwrap();
    denied(
        o.workflows
            .start_workflow(proto::StartWorkflowRequest {
                input: br#"{"mode":"sleep","ms":60000}"#.to_vec(),
                ..start_request("EdgeCases", "edge-1")
            })
            .await,
        &["ops", "EdgeCases", "GreetingWorkflow"],
    );
    admin
        .workflows
        .start_workflow(proto::StartWorkflowRequest {
            input: br#"{"mode":"sleep","ms":60000}"#.to_vec(),
            ..start_request("EdgeCases", "edge-1")
        })
        .await
        .unwrap();
    denied(
        o.workflows
            .terminate_workflow(proto::TerminateWorkflowRequest {
                workflow_id: "edge-1".into(),
                reason: "no".into(),
            })
            .await,
        &["EdgeCases"],
    );
    denied(
        o.workflows
            .upload_module(proto::UploadModuleRequest {
                vet_recent: 0,
                workflow_type: "GreetingWorkflow".into(),
                component: std::fs::read(weft_tests::HELLO_ACTIVITY).unwrap(),
            })
            .await,
        &["administer"],
    );
    assert_eq!(
        code(
            o.workflows
                .list_workflows(proto::ListWorkflowsRequest::default())
                .await
        ),
        Code::Ok
    );

    // worker scoped to the hello queue: polls it, not `cpu`, reads nothing.
    let mut w = as_(&url, Some(&worker)).await;
    denied(
        w.workers.poll_activity_task(poll("cpu")).await,
        &["hello-worker", "`cpu`"],
    );
    denied(
        w.workflows
            .list_workflows(proto::ListWorkflowsRequest::default())
            .await,
        &["worker"],
    );
    let task = w
        .workers
        .poll_activity_task(poll(QUEUE))
        .await
        .unwrap()
        .into_inner()
        .tasks
        .pop()
        .expect("greet-1's task");
    // A task token is bound to its claim: made up from the task's id and attempt, it fails.
    let (claim, _) = task.task_token.rsplit_once('#').unwrap();
    assert!(
        task.task_token.len() > claim.len() + 30,
        "{}",
        task.task_token
    );
    let forged = w
        .workers
        .complete_activity_task(proto::CompleteActivityTaskRequest {
            task_token: format!("{claim}#00000000000000000000000000000000"),
            output: b"\"forged\"".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::NotFound, "{forged:?}");
    // A worker of another queue cannot complete it even with the real token.
    let mut c = as_(&url, Some(&cpu)).await;
    denied(
        c.workers
            .complete_activity_task(proto::CompleteActivityTaskRequest {
                task_token: task.task_token.clone(),
                output: b"\"stolen\"".to_vec(),
            })
            .await,
        &["cpu-worker", QUEUE],
    );
    w.workers
        .complete_activity_task(proto::CompleteActivityTaskRequest {
            task_token: task.task_token.clone(),
            output: b"\"Hello, ann!\"".to_vec(),
        })
        .await
        .unwrap();
    let result = admin
        .workflows
        .get_workflow_result(proto::GetWorkflowResultRequest {
            workflow_id: "greet-1".into(),
            wait: true,
            wait_timeout_ms: 30_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result.output, b"\"Hello, ann!\"");

    // The JSON API: the same check, from the header or the console's cookie.
    let runs = format!("{url}/api/v1/runs");
    assert_eq!(http("GET", &runs, None).await.0, 401);
    let bearer = format!("Bearer {reader}");
    assert_eq!(
        http_with("GET", &runs, None, &[("authorization", &bearer)])
            .await
            .0,
        200
    );
    let cookie = format!("theme=dark; weft_token={reader}");
    assert_eq!(
        http_with("GET", &runs, None, &[("cookie", &cookie)])
            .await
            .0,
        200
    );
    let start = format!("{url}/api/v1/workflows");
    let body = br#"{"workflow_type":"GreetingWorkflow","workflow_id":"h-1"}"#.to_vec();
    let (status, body) = http_with("POST", &start, Some(body), &[("authorization", &bearer)]).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert_eq!(http("GET", &format!("{url}/metrics"), None).await.0, 401);
    assert_eq!(
        http_with(
            "GET",
            &format!("{url}/metrics"),
            None,
            &[("authorization", &bearer)]
        )
        .await
        .0,
        200
    );

    // The console's sign-in: a token in, an HttpOnly same-site cookie out.
    let login = format!("{url}/api/v1/login");
    let (status, _) = http("POST", &login, Some(br#"{"token":"weft_wrong"}"#.to_vec())).await;
    assert_eq!(status, 401);
    let (status, headers, body) = http_response(
        "POST",
        &login,
        Some(format!(r#"{{"token":"{operator}"}}"#).into_bytes()),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        cookie.starts_with(&format!("weft_token={operator};"))
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // Expired and revoked tokens are refused at once.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let expired = as_(&url, Some(&short))
        .await
        .workflows
        .list_workflows(proto::ListWorkflowsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert!(expired.message().contains("expired"), "{expired:?}");
    weft(&[
        "--server", &url, "--token", &root, "token", "revoke", "reader",
    ]);
    let revoked = r
        .workflows
        .list_workflows(proto::ListWorkflowsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated);
    assert!(revoked.message().contains("revoked"), "{revoked:?}");

    admin
        .workflows
        .terminate_workflow(proto::TerminateWorkflowRequest {
            workflow_id: "edge-1".into(),
            reason: "done".into(),
        })
        .await
        .unwrap();

    // `weft token list` shows names, roles, scopes; never a secret.
    let listed = weft(&[
        "--server", &url, "--token", &root, "token", "list", "--json",
    ]);
    let tokens: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let names: Vec<&str> = tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "cpu-worker",
            "hello-worker",
            "ops",
            "reader",
            "root",
            "short"
        ]
    );
    assert!(!listed.contains(&root[5..]) && !listed.contains(&worker[5..]));
    assert!(tokens[3]["revoked_at_ms"].as_u64().unwrap() > 0);
    assert!(
        tokens[4]["last_used_ms"].as_u64().unwrap() > 0,
        "root was used"
    );

    // The audit log, through the server and on the database: the admin actions in order.
    drop(server);
    let log = weft(&["audit", "--database", database, "--json"]);
    let actions: Vec<(String, String, String)> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e["target"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let expected = [
        ("database", "token_create", "root"),
        ("root", "token_create", "reader"),
        ("root", "token_create", "ops"),
        ("root", "token_create", "hello-worker"),
        ("root", "token_create", "cpu-worker"),
        ("root", "token_create", "short"),
        ("root", "token_create", "reader"),
        ("root", "token_create", "x"),
        ("root", "upload_module", "GreetingWorkflow"),
        ("root", "upload_module", "EdgeCases"),
        // One entry per burst and host: the gRPC callers on 127.0.0.1, the JSON API's.
        ("unknown", "auth_failure", ""),
        ("unknown", "auth_failure", ""),
        ("root", "token_revoke", "reader"),
        ("root", "terminate", "edge-1"),
    ];
    let got: Vec<(&str, &str, &str)> = actions
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    assert_eq!(got, expected, "{log}");
    assert!(
        log.contains("refused"),
        "the taken name and the bad role are audited as refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_role_may_do_what_the_table_says_on_sqlite_and_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    rights_table(&format!("sqlite:{}", dir.path().join("weft.db").display())).await;
    let pg = PgDatabase::create();
    rights_table(&pg.url).await;
}

#[tokio::test]
async fn auth_on_an_empty_database_prints_one_admin_token_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["server", "--auth", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database", &database])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let token = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("weft_"))
    })
    .await
    .unwrap()
    .expect("the admin token is printed");
    let url = format!("http://127.0.0.1:{port}");
    let mut admin = None;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            admin = Some(as_(&url, Some(&token)).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut admin = admin.expect("the server comes up");
    let tokens = admin
        .admin
        .list_tokens(proto::ListTokensRequest {})
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        (tokens[0].name.as_str(), tokens[0].role.as_str()),
        ("admin", "admin")
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn serving_beyond_loopback_unprotected_is_refused_and_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["server", "--listen", &format!("0.0.0.0:{}", free_port())])
        .arg("--database")
        .arg(format!("sqlite:{}", dir.path().join("weft.db").display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for word in ["0.0.0.0", "--auth", "--insecure", "127.0.0.1"] {
        assert!(stderr.contains(word), "`{word}` in: {stderr}");
    }
}

#[tokio::test]
async fn insecure_serves_beyond_loopback_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "server",
            "--insecure",
            "--listen",
            &format!("0.0.0.0:{port}"),
        ])
        .arg("--database")
        .arg(format!("sqlite:{}", dir.path().join("weft.db").display()))
        .env("WEFT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if WorkflowServiceClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(up, "the server came up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--insecure"),
        "the risk is logged: {stderr}"
    );
}
