//! `weft vet`: many histories, from a folder or from a server's stored runs, replayed on a new
//! module; exit 0 when all are clean, 3 when any diverges, 1 on bad input.

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn vet_replays_a_types_stored_runs_and_names_the_diverging_event() {
    let (_dir, server, mut client) = sqlite_server().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    let worker = spawn_hello_worker(&server.url, 0, false).await;
    for i in 0..12 {
        start(
            &mut client,
            "GreetingWorkflow",
            &format!("hello-{i}"),
            &format!("\"n{i}\""),
        )
        .await;
    }
    for i in 0..12 {
        wait_result(&mut client, &format!("hello-{i}")).await;
    }
    worker.abort();

    // The module the runs were recorded on: all clean.
    let same = weft(&[
        "vet",
        "--server",
        &server.url,
        "--type",
        "GreetingWorkflow",
        "--module",
        weft_tests::HELLO_ACTIVITY,
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(
        text(&same).contains("vetted 12 histories") && text(&same).contains("12 clean, 0 diverged"),
        "{}",
        text(&same)
    );

    // A version that sleeps before the activity diverges at event 2 of every run.
    let v2 = weft(&[
        "vet",
        "--server",
        &server.url,
        "--type",
        "GreetingWorkflow",
        "--module",
        weft_tests::HELLO_ACTIVITY_V2,
        "--limit",
        "5",
        "--json",
    ]);
    assert_eq!(v2.status.code(), Some(3), "{}", text(&v2));
    let report: serde_json::Value = serde_json::from_slice(&v2.stdout).unwrap();
    assert_eq!(report["histories"], 5, "{report}");
    assert_eq!(report["diverged"], 5, "{report}");
    for run in report["runs"].as_array().unwrap() {
        assert_eq!(run["verdict"], "non_determinism", "{run}");
        assert_eq!(run["seq"], 2, "{run}");
        assert!(
            run["recorded"]
                .as_str()
                .unwrap()
                .starts_with("ActivityScheduled"),
            "{run}"
        );
        assert!(
            run["new"].as_str().unwrap().starts_with("TimerStarted"),
            "{run}"
        );
    }

    // The same change behind `patched` keeps the old path for these runs: all clean.
    let v3 = weft(&[
        "vet",
        "--server",
        &server.url,
        "--type",
        "GreetingWorkflow",
        "--module",
        weft_tests::HELLO_ACTIVITY_V3,
    ]);
    assert_eq!(v3.status.code(), Some(0), "{}", text(&v3));
    assert!(text(&v3).contains("12 clean, 0 diverged"), "{}", text(&v3));

    // The server does the same: VetModule, and uploads that vet first.
    let v2_bytes = std::fs::read(weft_tests::HELLO_ACTIVITY_V2).unwrap();
    let vet_v2 = |running_only| {
        let mut client = client.clone();
        let component = v2_bytes.clone();
        async move {
            client
                .vet_module(weft_proto::VetModuleRequest {
                    workflow_type: "GreetingWorkflow".into(),
                    component,
                    limit: 0,
                    running_only,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let vetted = vet_v2(false).await;
    assert_eq!((vetted.vetted, vetted.clean), (12, 0), "{vetted:?}");
    assert_eq!(vetted.divergences.len(), 12);
    assert!(vetted.divergences.iter().all(|d| d.seq == 2
        && d.recorded.starts_with("ActivityScheduled")
        && d.message.contains("non-determinism at event 2")));
    let running = vet_v2(true).await;
    assert_eq!((running.vetted, running.divergences.len()), (0, 0));
    let refused = client
        .upload_module(weft_proto::UploadModuleRequest {
            vet_recent: 3,
            workflow_type: "GreetingWorkflow".into(),
            component: v2_bytes,
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused
            .message()
            .contains("cannot replay 3 of the 3 most recent runs")
            && refused.message().contains("hello-11/"),
        "{}",
        refused.message()
    );
    let cli = weft(&[
        "upload",
        "--server",
        &server.url,
        "--type",
        "GreetingWorkflow",
        "--vet-recent",
        "3",
        weft_tests::HELLO_ACTIVITY_V2,
    ]);
    assert_eq!(cli.status.code(), Some(3), "{}", text(&cli));
    assert!(
        text(&cli).contains("non-determinism at event 2"),
        "{}",
        text(&cli)
    );
    // Nothing was stored: new runs still get version 1.
    let modules = client
        .list_modules(weft_proto::ListModulesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(modules.modules.len(), 1, "{modules:?}");
    let cli = weft(&[
        "upload",
        "--server",
        &server.url,
        "--type",
        "GreetingWorkflow",
        "--vet-recent",
        "12",
        weft_tests::HELLO_ACTIVITY,
    ]);
    assert_eq!(cli.status.code(), Some(0), "{}", text(&cli));

    // No running runs of the type: nothing to vet is bad input, not a pass.
    let none = weft(&[
        "vet",
        "--server",
        &server.url,
        "--type",
        "GreetingWorkflow",
        "--module",
        weft_tests::HELLO_ACTIVITY,
        "--status",
        "running",
    ]);
    assert_eq!(none.status.code(), Some(1), "{}", text(&none));
    assert!(
        text(&none).contains("no runs of type `GreetingWorkflow`"),
        "{}",
        text(&none)
    );
}

#[test]
fn vet_a_folder_of_history_files() {
    let dir = tempfile::tempdir().unwrap();
    let golden = weft_tests::histories_dir();
    for name in ["hello-activity.json", "approval.json"] {
        std::fs::copy(golden.join(name), dir.path().join(name)).unwrap();
    }
    let folder = dir.path().to_str().unwrap();
    // hello-activity's history is clean on its module; approval's diverges on it at once.
    let out = weft(&[
        "vet",
        "--histories",
        folder,
        "--module",
        weft_tests::HELLO_ACTIVITY,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let table = text(&out);
    let line = |file: &str| {
        table
            .lines()
            .find(|l| l.starts_with(file))
            .unwrap_or_else(|| panic!("no row for {file}: {table}"))
            .to_owned()
    };
    // The golden file may have been recorded on another build of the guest: "clean", with or
    // without "(same module)".
    assert!(line("hello-activity.json").contains("  clean"), "{table}");
    assert!(
        line("approval.json").contains("non-determinism at seq 2"),
        "{table}"
    );
    assert!(table.contains("1 clean, 1 diverged"), "{table}");

    // A file that is not a history is refused, by name, before anything is replayed.
    std::fs::write(dir.path().join("broken.json"), "{\"format\": 1").unwrap();
    let out = weft(&[
        "vet",
        "--histories",
        folder,
        "--module",
        weft_tests::HELLO_ACTIVITY,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("broken.json"), "{}", text(&out));
    let empty = tempfile::tempdir().unwrap();
    let out = weft(&[
        "vet",
        "--histories",
        empty.path().to_str().unwrap(),
        "--module",
        weft_tests::HELLO_ACTIVITY,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no `*.json` history files"),
        "{}",
        text(&out)
    );
}
