//! The deterministic simulation as CI runs it: a bounded number of seeds keep every
//! invariant, a seed replays exactly, and the invariants catch a server that loses events.
//! `WEFT_SIM_SEEDS` sets how many seeds (the documented long run is the `weft-simulation`
//! binary with `--seeds 1000000`).

use weft_simulation::{Sabotage, Setup, simulate, simulate_many};

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn every_seed_keeps_every_invariant() {
    let seeds: u64 = std::env::var("WEFT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let started = std::time::Instant::now();
    let failures = simulate_many(0, seeds, jobs(), None, &|_| {}).expect("the simulation runs");
    eprintln!("{seeds} seeds in {:.1} s", started.elapsed().as_secs_f64());
    let report: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert!(report.is_empty(), "{}", report.join("\n\n"));
}

#[test]
fn a_seed_replays_exactly_and_seeds_differ() {
    let setup = Setup::new().expect("setup");
    let mut traces = Vec::new();
    for seed in [3, 11, 12] {
        let first = simulate(&setup, seed, None).expect("runs");
        let again = simulate(&setup, seed, None).expect("runs");
        let (first, again) = (trace(first), trace(again));
        assert_eq!(first, again, "seed {seed} did not replay the same way");
        assert!(
            first.steps > 100,
            "seed {seed} did almost nothing: {first:?}"
        );
        traces.push(first);
    }
    assert_ne!(traces[0], traces[1]);
    assert_ne!(traces[1], traces[2]);
}

fn trace(
    outcome: Result<weft_simulation::Report, weft_simulation::Failure>,
) -> weft_simulation::Trace {
    match outcome {
        Ok(report) => report.trace,
        Err(failure) => panic!("{failure}"),
    }
}

#[test]
fn the_invariants_catch_a_server_that_loses_events() {
    let failures = simulate_many(0, 40, jobs(), Some(Sabotage::DropEvent), &|_| {})
        .expect("the simulation runs");
    assert!(
        failures
            .iter()
            .any(|f| f.broken.iter().any(|b| b.contains("the server committed"))),
        "a store that drops events went unnoticed in 40 seeds: {failures:?}"
    );
}

#[test]
fn the_seed_that_lost_an_inbox_cancel_keeps_every_invariant() {
    // Seed 21353 (beyond CI's range) lost a routed cancel to a dropped connection before the
    // executor failed such batches; it must stay fixed.
    let setup = Setup::new().expect("setup");
    if let Err(failure) = simulate(&setup, 21_353, None).expect("runs") {
        panic!("{failure}");
    }
}
