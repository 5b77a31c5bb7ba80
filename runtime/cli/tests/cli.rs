//! The `weft` binary as users run it: `weft run`, `weft replay`, golden histories.

use std::path::Path;
use std::process::{Command, Output};

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("weft runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn record_hello(dir: &Path) -> String {
    let history = dir.join("hello.json").display().to_string();
    let out = weft(&[
        "run",
        "--module",
        weft_tests::HELLO_ACTIVITY,
        "--type",
        "GreetingWorkflow",
        "--input",
        "\"World\"",
        "--activity",
        "compose_greeting=\"Hello, World!\"",
        "--history-out",
        &history,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "\"Hello, World!\"\n");
    assert!(
        stderr(&out).contains("[info] greeting World"),
        "{}",
        stderr(&out)
    );
    history
}

#[test]
fn run_prints_the_output_and_writes_a_history_that_replays_clean() {
    let dir = tempfile::tempdir().unwrap();
    let history = record_hello(dir.path());
    let out = weft(&[
        "replay",
        "--history",
        &history,
        "--module",
        weft_tests::HELLO_ACTIVITY,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.ends_with("replay OK: 4 events\n"), "{text}");
    // The timeline interleaves the guest's log line with the events.
    let log = text
        .find("[info] greeting World")
        .expect("log line in timeline");
    let scheduled = text
        .find("ActivityScheduled #0 compose_greeting")
        .expect("event");
    assert!(log < scheduled, "{text}");
}

#[test]
fn replay_on_a_changed_module_exits_3_naming_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let history = record_hello(dir.path());
    let out = weft(&[
        "replay",
        "--history",
        &history,
        "--module",
        weft_tests::HELLO_ACTIVITY_V2,
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).contains("error: non-determinism at event 2: the history has `ActivityScheduled #0 compose_greeting"),
        "{}",
        stdout(&out)
    );
    let out = weft(&[
        "replay",
        "--json",
        "--history",
        &history,
        "--module",
        weft_tests::HELLO_ACTIVITY_V2,
    ]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "non_determinism");
    assert_eq!(v["seq"], 2);
    assert_eq!(v["new"], "TimerStarted #0 1000ms");
}

#[test]
fn replay_rejects_truncated_corrupt_and_unknown_format_histories() {
    let dir = tempfile::tempdir().unwrap();
    let history = record_hello(dir.path());
    let good = std::fs::read_to_string(&history).unwrap();
    let cases = [
        (
            "truncated",
            good[..good.len() / 2].to_string(),
            "not valid JSON",
        ),
        (
            "unknown-format",
            good.replace("\"format\": 1", "\"format\": 2"),
            "history has format 2, but this weft reads formats [1]",
        ),
        (
            "renumbered",
            good.replace("\"seq\": 3", "\"seq\": 9"),
            "inconsistent at event 3",
        ),
        ("not-json", "\u{0}\u{1}binary".to_string(), "not valid JSON"),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        let out = weft(&[
            "replay",
            "--history",
            &path,
            "--module",
            weft_tests::HELLO_ACTIVITY,
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&path),
            "{name} names the file: {}",
            stderr(&out)
        );
        let out = weft(&[
            "replay",
            "--json",
            "--history",
            &path,
            "--module",
            weft_tests::HELLO_ACTIVITY,
        ]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["result"], "error", "{name}");
    }
}

#[test]
fn run_of_a_failing_workflow_exits_2_with_its_error() {
    let out = weft(&[
        "run",
        "--module",
        weft_tests::HELLO_ACTIVITY,
        "--input",
        "\"World\"",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("workflow failed: ActivityNotRegistered: activity failed after 1 attempt(s): no implementation of activity `compose_greeting` is registered"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_rejects_bad_modules_and_arguments_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"garbage").unwrap();
    let garbage = garbage.display().to_string();
    let cases: [(&[&str], &str); 5] = [
        (
            &["run", "--module", &garbage],
            "rejected: not a WebAssembly file",
        ),
        (
            &["run", "--module", "/no/such/file.wasm"],
            "cannot read module `/no/such/file.wasm`",
        ),
        (
            &[
                "run",
                "--module",
                weft_tests::HELLO_ACTIVITY,
                "--input",
                "{oops",
            ],
            "--input `{oops` is not valid JSON",
        ),
        (
            &[
                "run",
                "--module",
                weft_tests::HELLO_ACTIVITY,
                "--activity",
                "noequals",
            ],
            "must be NAME=JSON",
        ),
        (
            &[
                "run",
                "--module",
                weft_tests::HELLO_ACTIVITY,
                "--activity",
                "a=[1,",
            ],
            "--activity a: `[1,` is not valid JSON",
        ),
    ];
    for (args, expected) in cases {
        let out = weft(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn run_skips_time_so_now_after_sleep_is_later() {
    let out = weft(&[
        "run",
        "--module",
        weft_tests::TIMERS_AND_RANDOM,
        "--input",
        "{\"sleep_ms\": 50}",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let slept = v["woke_ms"].as_u64().unwrap() - v["started_ms"].as_u64().unwrap();
    assert!(slept >= 50, "{v}");
}

/// Histories recorded from the examples and kept in the repository: a change to the runtime
/// or the SDK that would break runs in flight fails here.
#[test]
fn golden_histories_replay_clean() {
    let dir = weft_tests::histories_dir();
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let package = path.file_stem().unwrap().to_str().unwrap();
        let (_, component) = weft_tests::ALL_GUESTS
            .iter()
            .find(|(p, _)| *p == package)
            .unwrap_or_else(|| panic!("no guest named like {}", path.display()));
        let history = path.display().to_string();
        let out = weft(&["replay", "--history", &history, "--module", component]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{history}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("replay OK"), "{history}");
        replayed += 1;
    }
    assert!(
        replayed >= 6,
        "found only {replayed} golden histories in {}",
        dir.display()
    );
}

/// `weft --help` is pinned by `tests/snapshots/help.txt`; after changing a command's help,
/// rewrite the file with `WEFT_UPDATE_SNAPSHOTS=1 cargo test -p weft --test cli help`.
#[test]
fn help_says_what_each_command_does() {
    let out = weft(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    // clap wraps help to the width of a terminal when there is one: compare unwrapped.
    let unwrap = |text: &str| {
        let mut lines: Vec<String> = Vec::new();
        for line in text.lines() {
            match lines.last_mut() {
                Some(last) if line.starts_with("          ") => {
                    last.push(' ');
                    last.push_str(line.trim_start());
                }
                _ => lines.push(line.to_owned()),
            }
        }
        lines.join("\n") + "\n"
    };
    let help = unwrap(&stdout(&out));
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/help.txt");
    if std::env::var_os("WEFT_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &help).unwrap();
    }
    let pinned = unwrap(&std::fs::read_to_string(&snapshot).unwrap_or_default());
    assert_eq!(
        help, pinned,
        "weft --help changed; see this test's doc to update the snapshot"
    );
    for line in help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
    {
        if line.trim().is_empty() {
            break;
        }
        let (command, text) = line
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((line, ""));
        assert!(!text.trim().is_empty(), "`weft {command}` has no help text");
    }
    let dev = stdout(&weft(&["dev", "--help"]));
    assert!(dev.starts_with("A server on embedded SQLite"), "{dev}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let history = record_hello(dir.path());
    // `weft replay ... | head -0`: the reader is gone before the first line is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["replay", "--history", &history, "--module"])
        .arg(weft_tests::HELLO_ACTIVITY)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("weft runs");
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
}

#[test]
fn a_client_that_cannot_reach_the_server_says_why_once() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = weft(&["--server", &format!("http://127.0.0.1:{port}"), "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot connect to the weft server"), "{err}");
    assert_eq!(err.matches("tcp connect error").count(), 1, "{err}");
    assert_eq!(err.matches("Connection refused").count(), 1, "{err}");
}
