//! Waits for signal `approve` or a timer, whichever comes first.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_sdk::{Ctx, Either, WorkflowResult};

#[derive(Deserialize)]
struct Input {
    request: String,
    timeout_ms: u64,
}

#[derive(Deserialize)]
struct Approval {
    approver: String,
}

#[derive(Serialize)]
struct Decision {
    request: String,
    approved: bool,
    approver: Option<String>,
}

fn approval(ctx: &Ctx, input: Input) -> WorkflowResult<Decision> {
    let signal = ctx.signal::<Approval>("approve");
    let timer = ctx.timer(Duration::from_millis(input.timeout_ms));
    let approver = match ctx.select2(signal, timer) {
        Either::Left((approval, timer)) => {
            timer.cancel();
            Some(approval?.approver)
        }
        Either::Right((_, signal)) => {
            signal.cancel();
            weft_sdk::warn!(
                "no approval for {} within {} ms",
                input.request,
                input.timeout_ms
            );
            None
        }
    };
    Ok(Decision {
        request: input.request,
        approved: approver.is_some(),
        approver,
    })
}

weft_sdk::workflow!(approval);
