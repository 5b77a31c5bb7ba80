//! A trip booking saga: when a step fails, the steps done so far are compensated in reverse.

use serde::{Deserialize, Serialize};
use weft_sdk::{Ctx, WorkflowResult};

#[derive(Deserialize, Serialize)]
struct Trip {
    traveller: String,
}

#[derive(Serialize)]
struct Outcome {
    booked: bool,
    done: Vec<String>,
    compensated: Vec<String>,
    error: Option<String>,
}

/// Each step and the activity that undoes it.
const STEPS: [(&str, &str); 3] = [
    ("reserve_flight", "cancel_flight"),
    ("reserve_hotel", "cancel_hotel"),
    ("charge_card", "refund_card"),
];

fn saga(ctx: &Ctx, trip: Trip) -> WorkflowResult<Outcome> {
    let mut done = Vec::new();
    for (step, _) in STEPS {
        if let Err(failure) = ctx.activity::<_, String>(step, &trip).call() {
            weft_sdk::warn!("{step} failed ({failure}); compensating");
            let mut compensated = Vec::new();
            for (step, undo) in STEPS.iter().take(done.len()).rev() {
                ctx.activity::<_, String>(undo, &trip).call()?;
                compensated.push(format!("{undo} (for {step})"));
            }
            return Ok(Outcome {
                booked: false,
                done,
                compensated,
                error: Some(failure.to_string()),
            });
        }
        done.push(step.to_string());
    }
    Ok(Outcome {
        booked: true,
        done,
        compensated: Vec::new(),
        error: None,
    })
}

weft_sdk::workflow!(saga);
