//! `weft-simulation`: runs seeds of the deterministic simulation and reports the ones that
//! break an invariant.
//!
//! ```text
//! cargo run --release -p weft-simulation -- --seeds 1000000      # a million seeds
//! cargo run --release -p weft-simulation -- --seed 4242          # one seed, replayed exactly
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use weft_simulation::{Sabotage, Setup, simulate, simulate_many};

#[derive(Parser)]
#[command(about = "Deterministic simulation of the weft server: seeds in, broken invariants out")]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 1_000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Run this one seed and print its report (the way to replay a failure).
    #[arg(long, conflicts_with_all = ["seeds", "from"])]
    seed: Option<u64>,
    /// Seeds run at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Break the server on purpose to see the invariants catch it.
    #[arg(long, value_enum)]
    sabotage: Option<SabotageArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SabotageArg {
    /// The store now and then drops an event the server believes it wrote.
    DropEvent,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The server's own logs, for replaying one seed: WEFT_SIM_LOG=weft_server=debug.
    if let Ok(filter) = std::env::var("WEFT_SIM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let sabotage = args
        .sabotage
        .map(|SabotageArg::DropEvent| Sabotage::DropEvent);
    if let Some(seed) = args.seed {
        let setup = Setup::new()?;
        return match simulate(&setup, seed, sabotage)? {
            Ok(report) => {
                println!("{report:#?}");
                Ok(())
            }
            Err(failure) => {
                println!("{failure}");
                std::process::exit(1);
            }
        };
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = Instant::now();
    let done = AtomicU64::new(0);
    let failures = simulate_many(args.from, args.seeds, jobs, sabotage, &|outcome| {
        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
        if let Err(failure) = outcome {
            println!("{failure}");
        }
        if n.is_multiple_of(1_000) {
            eprintln!("{n} seeds in {:.0} s", started.elapsed().as_secs_f64());
        }
    })?;
    eprintln!(
        "{} seeds from {} in {:.1} s on {jobs} threads: {} broke an invariant",
        args.seeds,
        args.from,
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        eprintln!(
            "failing seeds: {:?}",
            failures.iter().map(|f| f.seed).collect::<Vec<_>>()
        );
        std::process::exit(1);
    }
}
