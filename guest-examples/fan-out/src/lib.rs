//! Starts N `square` activities at once (N up to 1,000) and sums their results.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_sdk::{Ctx, WorkflowError, WorkflowResult};

const MAX_ACTIVITIES: u32 = 1_000;

#[derive(Deserialize)]
struct Input {
    n: u32,
}

#[derive(Serialize)]
struct Output {
    n: u32,
    sum: u64,
}

fn fan_out(ctx: &Ctx, input: Input) -> WorkflowResult<Output> {
    if input.n > MAX_ACTIVITIES {
        return Err(WorkflowError::new(
            "BadInput",
            format!(
                "n is {}, at most {MAX_ACTIVITIES} activities may fan out",
                input.n
            ),
        ));
    }
    let pending = (0..input.n)
        .map(|i| {
            ctx.activity::<_, u64>("square", &i)
                // A worker that dies holding some of them: those are retried after 10 s.
                .start_to_close(Duration::from_secs(10))
                .start()
        })
        .collect();
    let mut sum = 0;
    for result in ctx.join_all(pending) {
        sum += result?;
    }
    Ok(Output { n: input.n, sum })
}

weft_sdk::workflow!(fan_out);
