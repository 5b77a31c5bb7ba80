//! Sleeps, reads the clock and draws random values: all recorded, so replay gives the same output.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_sdk::{Ctx, WorkflowResult};

#[derive(Deserialize)]
struct Input {
    sleep_ms: u64,
}

#[derive(Serialize)]
struct Output {
    started_ms: u64,
    woke_ms: u64,
    slept_at_least_ms: bool,
    random: u64,
    uuid: String,
    timer_vs_timer: &'static str,
}

fn timers_and_random(ctx: &Ctx, input: Input) -> WorkflowResult<Output> {
    let started_ms = ctx.now_ms();
    ctx.sleep(Duration::from_millis(input.sleep_ms));
    let woke_ms = ctx.now_ms();
    let random = ctx.random();
    let uuid = ctx.uuid();
    // Two timers race; the shorter one wins and the other is cancelled.
    let short = ctx.timer(Duration::from_millis(input.sleep_ms / 2));
    let long = ctx.timer(Duration::from_millis(input.sleep_ms * 2));
    let timer_vs_timer = match ctx.select2(short, long) {
        weft_sdk::Either::Left((_, long)) => {
            long.cancel();
            "short"
        }
        weft_sdk::Either::Right((_, short)) => {
            short.cancel();
            "long"
        }
    };
    weft_sdk::info!("slept {} ms, drew {random}", woke_ms - started_ms);
    Ok(Output {
        started_ms,
        woke_ms,
        slept_at_least_ms: woke_ms - started_ms >= input.sleep_ms,
        random,
        uuid,
        timer_vs_timer,
    })
}

weft_sdk::workflow!(timers_and_random);
