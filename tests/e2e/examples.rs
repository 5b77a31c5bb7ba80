//! Each example runs to completion in-process with closure activities.

use weft_engine::RunOutcome;
use weft_engine::harness::ResumeMode;
use weft_engine::weft_history::{ErrorInfo, Payload};

use crate::support::*;

#[test]
fn hello_activity_greets_the_world() {
    let engine = engine();
    let module = load(&engine, weft_tests::HELLO_ACTIVITY);
    let mut h = harness(&engine);
    h.register("GreetingWorkflow", module).activity(
        "compose_greeting",
        |input: serde_json::Value| -> Result<String, ErrorInfo> {
            Ok(format!("{}, {}!", input["greeting"].as_str().unwrap(), input["name"].as_str().unwrap()))
        },
    );
    let report = h.run("GreetingWorkflow", "greet-1", json(serde_json::json!("World"))).unwrap();
    assert_eq!(report.outcome, RunOutcome::Completed(Payload::from("\"Hello, World!\"")));
    let names: Vec<&str> = report.history().events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["RunStarted", "ActivityScheduled", "ActivityCompleted", "RunCompleted"]);
    let _ = ResumeMode::KeepInstance;
}
