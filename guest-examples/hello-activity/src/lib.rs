//! The classic sample: `GreetingWorkflow("World")` returns "Hello, World!" from an activity.

use std::time::Duration;

use serde::Serialize;
use weft_sdk::{Ctx, WorkflowResult};

/// The input of the `compose_greeting` activity.
#[derive(Serialize)]
struct ComposeGreeting<'a> {
    greeting: &'a str,
    name: &'a str,
}

fn greeting_workflow(ctx: &Ctx, name: String) -> WorkflowResult<String> {
    weft_sdk::info!("greeting {name}");
    let greeting = ctx
        .activity(
            "compose_greeting",
            &ComposeGreeting {
                greeting: "Hello",
                name: &name,
            },
        )
        .task_queue("hello-activity-task-queue")
        .start_to_close(Duration::from_secs(10))
        .call()?;
    Ok(greeting)
}

weft_sdk::workflow!(greeting_workflow);
