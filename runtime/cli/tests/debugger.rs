//! The replay debugger: `weft build --debug` keeps DWARF in the component, and guest stacks
//! with `file:line` show up in non-determinism errors (`weft replay`, `weft vet`), at
//! `weft replay --until` / `--break-on` stops, and in a guest panic's message.

use std::path::{Path, PathBuf};

mod common;
use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `weft build --debug` of one guest crate of guest-examples; cargo's files are kept between
/// test runs so that only the first build is slow.
fn build_debug(fixture: &str, out: &Path) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debug-guests");
    let crate_dir = repo().join("guest-examples").join(fixture);
    let built = weft(&[
        "build",
        "--debug",
        crate_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--target-dir",
        target.to_str().unwrap(),
    ]);
    assert_eq!(built.status.code(), Some(0), "{}", text(&built));
    let package = Path::new(fixture).file_name().unwrap().to_str().unwrap();
    let component = out.join(format!("{package}.wasm"));
    assert_eq!(
        String::from_utf8_lossy(&built.stdout).trim(),
        component.to_str().unwrap(),
        "it prints the component it wrote"
    );
    component
}

/// The 1-based line of `fixture`'s `src/lib.rs` that contains `needle`.
fn line_of(fixture: &str, needle: &str) -> usize {
    let source = std::fs::read_to_string(
        repo()
            .join("guest-examples")
            .join(fixture)
            .join("src/lib.rs"),
    )
    .unwrap();
    source
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in {fixture}"))
        + 1
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_builds_put_the_guests_file_and_line_in_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = build_debug("fixtures/hello-activity-v2", dir.path());
    let v2 = v2.to_str().unwrap();
    let golden = weft_tests::histories_dir().join("hello-activity.json");
    let golden = golden.to_str().unwrap();
    let sleep_line = format!(
        "hello-activity-v2/src/lib.rs:{})",
        line_of("fixtures/hello-activity-v2", "ctx.sleep(")
    );

    // Version 1's history on version 2: the error names the event and the guest's line.
    let out = weft(&["replay", "--history", golden, "--module", v2]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("non-determinism at event 2")
            && printed.contains("the workflow made that call at:")
            && printed.contains("hello_activity_v2::greeting_workflow (")
            && printed.contains(&sleep_line),
        "{printed}"
    );
    let out = weft(&["replay", "--history", golden, "--module", v2, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = report["guest_stack"][0].as_str().unwrap_or_default();
    assert!(
        top.starts_with("hello_activity_v2::greeting_workflow") && top.ends_with(&sleep_line),
        "{report}"
    );
    // `weft vet` says where, in its table.
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(golden, folder.path().join("hello-activity.json")).unwrap();
    let out = weft(&[
        "vet",
        "--histories",
        folder.path().to_str().unwrap(),
        "--module",
        v2,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(", in hello_activity_v2::greeting_workflow (")
            && text(&out).contains(&sleep_line),
        "{}",
        text(&out)
    );

    // The server's vetting says where too.
    let (_db, _server, mut client) = sqlite_server().await;
    upload(&mut client, "GreetingWorkflow", weft_tests::HELLO_ACTIVITY).await;
    start(&mut client, "GreetingWorkflow", "waits", "\"World\"").await;
    let vetted = client
        .vet_module(weft_proto::VetModuleRequest {
            workflow_type: "GreetingWorkflow".into(),
            component: std::fs::read(v2).unwrap(),
            limit: 0,
            running_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(vetted.divergences.len(), 1, "{vetted:?}");
    let message = &vetted.divergences[0].message;
    assert!(
        message.contains("the workflow made that call at:") && message.contains(&sleep_line),
        "{message}"
    );

    // A history of version 2 itself, then stops in it.
    let history = dir.path().join("v2.json");
    let out = weft(&[
        "run",
        "--module",
        v2,
        "--input",
        "\"World\"",
        "--activity",
        "compose_greeting=\"Hello, World!\"",
        "--history-out",
        history.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let history = history.to_str().unwrap();
    let out = weft(&[
        "replay",
        "--history",
        history,
        "--module",
        v2,
        "--until",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("TimerStarted #0 1000ms")
            && printed.contains("at the host call `sleep`:")
            && printed.contains(&sleep_line)
            && printed.contains("replay stopped at event 2")
            && !printed.contains("ActivityScheduled"),
        "{printed}"
    );
    let out = weft(&[
        "replay",
        "--history",
        history,
        "--module",
        v2,
        "--break-on",
        "activity:compose_greeting",
        "--break-on",
        "timer",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stops = report["stops"].as_array().unwrap();
    let calls: Vec<&str> = stops
        .iter()
        .map(|s| s["host_call"].as_str().unwrap())
        .collect();
    assert_eq!(calls, ["sleep", "start-activity"], "{report}");
    let activity_top = stops[1]["stack"][0].as_str().unwrap();
    assert!(
        activity_top.starts_with("hello_activity_v2::greeting_workflow (")
            && activity_top.contains("hello-activity-v2/src/lib.rs:"),
        "{report}"
    );
    // Bad stops are refused, saying what would do.
    let out = weft(&[
        "replay",
        "--history",
        history,
        "--module",
        v2,
        "--until",
        "99",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("it has events 1 to "), "{}", text(&out));
    let out = weft(&[
        "replay",
        "--history",
        history,
        "--module",
        v2,
        "--break-on",
        "activty",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("use activity[:NAME], timer"),
        "{}",
        text(&out)
    );

    // A guest panic's message says where it panicked.
    let edge = build_debug("fixtures/edge-cases", dir.path());
    let out = weft(&[
        "run",
        "--module",
        edge.to_str().unwrap(),
        "--input",
        r#"{"mode": "panic", "message": "boom"}"#,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let panic_line = format!(
        "edge-cases/src/lib.rs:{})",
        line_of("fixtures/edge-cases", "Input::Panic { message } => panic!")
    );
    assert!(
        text(&out).contains("panicked at") && text(&out).contains(&panic_line),
        "{}",
        text(&out)
    );
}

#[test]
fn release_builds_name_functions_and_say_how_to_get_lines() {
    let out = weft(&[
        "replay",
        "--history",
        weft_tests::histories_dir()
            .join("hello-activity.json")
            .to_str()
            .unwrap(),
        "--module",
        weft_tests::HELLO_ACTIVITY,
        "--until",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("ActivityCompleted #0")
            && printed
                .contains("at the host call `wait-any` (no frames of the workflow's own code)")
            && printed.contains("build it with `weft build --debug` for file:line")
            && !printed.contains("RunCompleted"),
        "{printed}"
    );
}
