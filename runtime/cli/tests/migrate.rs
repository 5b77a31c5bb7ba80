//! `weft migrate`: running runs move to a new module only where their history replays clean on
//! it; a moved run goes on with the new code (after a server crash too), on SQLite and across
//! two nodes on PostgreSQL (the owner does it).

use weft_proto::{self as proto, RunStatus};

mod common;
use common::*;

/// `weft migrate --json` against `url`: the exit code and the report.
fn migrate(url: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec![
        "migrate",
        "--server",
        url,
        "--type",
        "GreetingWorkflow",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = weft(&args);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {}", text(&out)));
    (out.status.code(), report)
}

async fn upload_id(
    client: &mut weft_proto::workflow_service_client::WorkflowServiceClient<
        tonic::transport::Channel,
    >,
    path: &str,
) -> String {
    client
        .upload_module(proto::UploadModuleRequest {
            vet_recent: 0,
            workflow_type: "GreetingWorkflow".into(),
            component: std::fs::read(path).unwrap(),
        })
        .await
        .unwrap()
        .into_inner()
        .module_id
}

fn outcomes(report: &serde_json::Value) -> Vec<(String, String)> {
    report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["workflow_id"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// What a moved run's history looks like once it has finished on version 4.
const MIGRATED_KINDS: [&str; 7] = [
    "RunStarted",
    "ActivityScheduled",
    "RunMigrated",
    "ActivityCompleted",
    "ActivityScheduled",
    "ActivityCompleted",
    "RunCompleted",
];

#[tokio::test(flavor = "multi_thread")]
async fn waiting_runs_move_to_a_version_that_replays_them_and_take_its_new_step() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("weft.db").display());
    let port = free_port();
    let server = ServerProcess::start(&database, port).await;
    let mut client = server.client().await;
    let v1 = upload_id(&mut client, weft_tests::HELLO_ACTIVITY).await;
    // No worker yet: every run waits on its first activity.
    for i in 0..4 {
        start(
            &mut client,
            "GreetingWorkflow",
            &format!("m-{i}"),
            &format!("\"n{i}\""),
        )
        .await;
    }

    // Version 2 sleeps before the activity: every run diverges at event 2 and stays put.
    let v2 = upload_id(&mut client, weft_tests::HELLO_ACTIVITY_V2).await;
    let (code, report) = migrate(&server.url, &["--to", &v2]);
    assert_eq!(code, Some(3), "{report}");
    assert_eq!(
        (report["migrated"].as_u64(), report["diverged"].as_u64()),
        (Some(0), Some(4))
    );
    for run in report["runs"].as_array().unwrap() {
        assert_eq!(run["outcome"], "diverged", "{run}");
        assert_eq!(run["seq"], 2, "{run}");
        assert_eq!(run["from"], v1.as_str(), "{run}");
        assert!(
            run["new"].as_str().unwrap().starts_with("TimerStarted"),
            "{run}"
        );
    }

    // Version 4 adds a step after the wait. A dry run moves nothing.
    let v4 = upload_id(&mut client, weft_tests::HELLO_ACTIVITY_V4).await;
    let (code, report) = migrate(&server.url, &["--to", &v4[..12], "--dry-run"]);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        outcomes(&report).iter().all(|(_, o)| o == "would_migrate"),
        "{report}"
    );
    let running_on = |modules: &proto::ListModulesResponse, id: &str| {
        modules
            .modules
            .iter()
            .find(|m| m.module_id == id)
            .map(|m| m.running_runs)
            .unwrap()
    };
    let modules = client
        .list_modules(proto::ListModulesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (running_on(&modules, &v1), running_on(&modules, &v4)),
        (4, 0)
    );

    // One run by id, then the rest; the first is already there the second time.
    let (code, report) = migrate(&server.url, &["--to", &v4, "--workflow-id", "m-0"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        outcomes(&report),
        [("m-0".to_owned(), "migrated".to_owned())]
    );
    let out = weft(&[
        "migrate",
        "--server",
        &server.url,
        "--type",
        "GreetingWorkflow",
        "--to",
        &v4[..12],
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("4 running runs of `GreetingWorkflow`, to module")
            && text(&out).contains("3 migrated, 0 diverged, 1 already there, 0 skipped"),
        "{}",
        text(&out)
    );
    let h = history(&mut client, "m-1").await;
    assert_eq!(h.header.module_sha256, v4, "the run is pinned to version 4");
    assert_eq!(
        h.events.last().map(|e| e.kind.clone()),
        Some(weft_history::EventKind::RunMigrated {
            from: v1.clone(),
            to: v4.clone()
        })
    );

    // The crash path: a fresh process rebuilds the moved runs on version 4.
    server.kill();
    let server = ServerProcess::start(&database, port).await;
    let mut client = server.client().await;
    let worker = spawn_hello_worker(&server.url, 0, false).await;
    for i in 0..4 {
        let r = wait_result(&mut client, &format!("m-{i}")).await;
        assert_eq!(r.status, RunStatus::Completed as i32, "{r:?}");
        assert_eq!(
            String::from_utf8_lossy(&r.output),
            format!("\"Hello, n{i}! (attempt 1) Welcome back, n{i}! (attempt 1)\""),
        );
        let h = history(&mut client, &format!("m-{i}")).await;
        let kinds: Vec<&str> = h.events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, MIGRATED_KINDS, "m-{i}");
        // The whole history, before and after the move, replays on the module it is on.
        replays_clean(dir.path(), &h, weft_tests::HELLO_ACTIVITY_V4);
    }
    worker.abort();

    // Bad input says what to fix; closed runs do not move.
    let out = weft(&[
        "migrate",
        "--server",
        &server.url,
        "--type",
        "GreetingWorkflow",
        "--to",
        "ffff",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no module of `GreetingWorkflow` starts with `ffff`"),
        "{}",
        text(&out)
    );
    let err = client
        .migrate_runs(proto::MigrateRunsRequest {
            workflow_type: "GreetingWorkflow".into(),
            to_module_id: v4.clone(),
            workflow_ids: vec!["m-0".into()],
            dry_run: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("has no running run"), "{err:?}");
    let err = client
        .migrate_runs(proto::MigrateRunsRequest {
            workflow_type: "Other".into(),
            to_module_id: v4.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("was uploaded for workflow type `GreetingWorkflow`, not `Other`"),
        "{err:?}"
    );
    let (code, report) = migrate(&server.url, &["--to", &v4]);
    assert_eq!(
        (code, report["runs"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_two_nodes_the_owner_moves_its_runs_when_another_node_is_asked() {
    let db = PgDatabase::create();
    let a = ServerProcess::start(&db.url, free_port()).await;
    let b = ServerProcess::start(&db.url, free_port()).await;
    let mut client_a = a.client().await;
    let mut client_b = b.client().await;
    let v1 = upload_id(&mut client_a, weft_tests::HELLO_ACTIVITY).await;
    for i in 0..3 {
        start(
            &mut client_a,
            "GreetingWorkflow",
            &format!("owned-by-a-{i}"),
            &format!("\"a{i}\""),
        )
        .await;
    }
    let v4 = upload_id(&mut client_b, weft_tests::HELLO_ACTIVITY_V4).await;
    // Asked on B; A owns the runs, so A re-pins them, and B reports once it sees that.
    let (code, report) = migrate(&b.url, &["--to", &v4]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["migrated"], 3, "{report}");
    let worker = spawn_hello_worker(&b.url, 0, false).await;
    for i in 0..3 {
        let id = format!("owned-by-a-{i}");
        let r = wait_result(&mut client_b, &id).await;
        assert_eq!(
            String::from_utf8_lossy(&r.output),
            format!("\"Hello, a{i}! (attempt 1) Welcome back, a{i}! (attempt 1)\""),
        );
        let h = history(&mut client_a, &id).await;
        let kinds: Vec<&str> = h.events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, MIGRATED_KINDS, "{id}");
        assert_eq!(
            h.events[2].kind,
            weft_history::EventKind::RunMigrated {
                from: v1.clone(),
                to: v4.clone()
            }
        );
    }
    worker.abort();
}
