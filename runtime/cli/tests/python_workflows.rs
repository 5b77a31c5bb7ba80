//! Python workflows (componentize-py components on weft's deterministic WASI) on real server
//! processes: asleep across a SIGKILL, Python and Rust children of each other, replayed by
//! `weft replay`, and built by `weft build`.

mod common;

use common::*;
use weft_proto::RunStatus;

#[tokio::test(flavor = "multi_thread")]
async fn python_runs_asleep_survive_a_sigkill_of_the_server_with_exact_histories() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let port = free_port();
    let server = ServerProcess::start(&database, port).await;
    let mut client = server.client().await;
    upload(&mut client, "SdkProbe", weft_tests::PY_SDK_PROBE).await;
    for i in 0..20 {
        start(
            &mut client,
            "SdkProbe",
            &format!("nap-{i}"),
            r#"{"case": "nap", "seconds": 2}"#,
        )
        .await;
    }
    server.kill();

    let server = ServerProcess::start(&database, port).await;
    let mut client = server.client().await;
    let worker = spawn_hello_worker(&server.url, 0, false).await;
    for i in 0..20 {
        let id = format!("nap-{i}");
        let r = wait_result(&mut client, &id).await;
        assert_eq!(r.status, RunStatus::Completed as i32, "{id}: {r:?}");
        let out: serde_json::Value = serde_json::from_slice(&r.output).unwrap();
        assert_eq!(out, serde_json::json!(format!("Hello, {id}! (attempt 1)")));
        let h = history(&mut client, &id).await;
        h.check().expect("numbered 1..n, one terminal event");
        let count = |name: &str| h.events.iter().filter(|e| e.kind.name() == name).count();
        for (name, n) in [
            ("RunStarted", 1),
            ("TimerStarted", 1),
            ("TimerFired", 1),
            ("ActivityScheduled", 1),
            ("ActivityCompleted", 1),
            ("RunCompleted", 1),
        ] {
            assert_eq!(count(name), n, "{id}: {name} in {:?}", h.events);
        }
        if i == 0 {
            let printed = replays_clean(dir.path(), &h, weft_tests::PY_SDK_PROBE);
            assert!(printed.contains("replay OK: 6 events"), "{printed}");
        }
    }
    worker.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_parent_runs_a_rust_child_and_a_rust_parent_a_python_child() {
    let (_dir, server, mut client) = sqlite_server().await;
    upload(&mut client, "SdkProbe", weft_tests::PY_SDK_PROBE).await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    upload(&mut client, "EdgeCases", weft_tests::EDGE_CASES).await;
    let worker = spawn_hello_worker(&server.url, 0, false).await;

    start(
        &mut client,
        "SdkProbe",
        "py-parent",
        r#"{"case": "rust-child"}"#,
    )
    .await;
    let r = wait_result(&mut client, "py-parent").await;
    assert_eq!(r.status, RunStatus::Completed as i32, "{r:?}");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&r.output).unwrap(),
        serde_json::json!("Hello, from Python! (attempt 1)")
    );

    start(
        &mut client,
        "EdgeCases",
        "rust-parent",
        r#"{"mode": "child_of", "workflow_type": "SdkProbe", "input": {"case": "leaf"}}"#,
    )
    .await;
    let r = wait_result(&mut client, "rust-parent").await;
    assert_eq!(r.status, RunStatus::Completed as i32, "{r:?}");
    let out: serde_json::Value = serde_json::from_slice(&r.output).unwrap();
    assert!(
        out.as_str().is_some_and(|s| s.starts_with("leaf of ")),
        "{out}"
    );
    worker.abort();
}

#[test]
fn weft_build_builds_a_python_project_and_names_a_missing_module() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("greeter");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("pyproject.toml"),
        "[project]\nname = \"greeter\"\nversion = \"0.1.0\"\n\n[tool.weft]\nworkflow = \"greeter:Greeter\"\n",
    )
    .unwrap();
    std::fs::write(
        project.join("greeter.py"),
        "from weft import workflow\n\n\n@workflow.defn\nclass Greeter:\n    @workflow.run\n    async def run(self, name: str) -> str:\n        return f\"Hello, {name}!\"\n",
    )
    .unwrap();
    let out = weft(&["build", project.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let component = project.join("build").join("greeter.wasm");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        component.display().to_string()
    );
    let run = weft(&[
        "run",
        "--module",
        component.to_str().unwrap(),
        "--input",
        "\"Ada\"",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("Hello, Ada!"),
        "{}",
        text(&run)
    );

    // numpy cannot load in a component: the build says so, and what to do instead.
    std::fs::write(
        project.join("greeter.py"),
        "import numpy\nfrom weft import workflow\n\n\n@workflow.defn\nclass Greeter:\n    async def run(self) -> None:\n        pass\n",
    )
    .unwrap();
    let out = weft(&["build", project.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("the workflow imports `numpy`"), "{said}");
    assert!(said.contains("call `numpy` from an activity"), "{said}");

    std::fs::write(project.join("greeter.py"), "def broken(:\n    pass\n").unwrap();
    let out = weft(&["build", project.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("a syntax error"), "{said}");
    assert!(said.contains("greeter.py\", line 1"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_python_run_raises_cancelled_error_in_it_and_closes_it_as_cancelled() {
    let (_dir, _server, mut client) = sqlite_server().await;
    upload(&mut client, "SdkProbe", weft_tests::PY_SDK_PROBE).await;
    start(
        &mut client,
        "SdkProbe",
        "napping",
        r#"{"case": "nap", "seconds": 3600}"#,
    )
    .await;
    // Asleep in `asyncio.sleep(3600)` once its timer is in the history.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !history(&mut client, "napping")
        .await
        .events
        .iter()
        .any(|e| e.kind.name() == "TimerStarted")
    {
        assert!(std::time::Instant::now() < deadline, "the run never slept");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    client
        .cancel_workflow(weft_proto::CancelWorkflowRequest {
            workflow_id: "napping".into(),
            reason: "no longer needed".into(),
        })
        .await
        .unwrap();
    let r = wait_result(&mut client, "napping").await;
    assert_eq!(r.status, RunStatus::Cancelled as i32, "{r:?}");
    let h = history(&mut client, "napping").await;
    let names: Vec<&str> = h.events.iter().map(|e| e.kind.name()).collect();
    assert!(
        names.contains(&"RunCancelRequested") && !names.contains(&"ActivityScheduled"),
        "{names:?}"
    );
}
