//! Guest log lines: emitted once, never again for the replayed part of a run.

use std::sync::{Arc, Mutex};

use serde_json::json as j;
use weft_engine::LogRecord;
use weft_engine::harness::ResumeMode;
use weft_engine::weft_history::ErrorInfo;

use crate::support::*;

fn greeting_logs(mode: ResumeMode) -> Vec<String> {
    let engine = engine();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink_lines = lines.clone();
    let mut h = harness(&engine);
    h.register(
        "GreetingWorkflow",
        load(&engine, weft_tests::HELLO_ACTIVITY),
    )
    .mode(mode)
    .log_sink(Arc::new(move |r: &LogRecord| {
        sink_lines.lock().unwrap().push(format!(
            "{} {} {}",
            r.level.as_str(),
            r.workflow_id,
            r.message
        ))
    }))
    .activity(
        "compose_greeting",
        |_: serde_json::Value| -> Result<String, ErrorInfo> { Ok("hi".into()) },
    );
    h.run("GreetingWorkflow", "greet-7", json(j!("World")))
        .unwrap();
    lines.lock().unwrap().clone()
}

#[test]
fn a_log_line_is_emitted_once_even_when_the_run_is_rebuilt_by_replay() {
    assert_eq!(
        greeting_logs(ResumeMode::KeepInstance),
        ["info greet-7 greeting World"]
    );
    assert_eq!(
        greeting_logs(ResumeMode::ReplayEachActivation),
        ["info greet-7 greeting World"]
    );
}
