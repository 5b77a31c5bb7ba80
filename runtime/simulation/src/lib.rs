//! Deterministic simulation of the weft server.
//!
//! One seed makes one world: one to three server nodes (the real executor, sweeper and
//! gRPC services of `weft-server`, called in-process) on one real SQLite store, activity
//! workers, and clients starting a mix of workflows (activities, a fan-out, timers,
//! children, continue-as-new, a failure, a signal, a cancel racing its activity). For a few simulated seconds the seed
//! injects faults: node processes that crash (before a database call, or after a write took
//! effect and before its reply), stall past their lease, or restart under a new id;
//! database calls whose connection drops or whose reply is lost; workers that die holding
//! tasks, run past their lease, fail, or report twice. Then the world heals and must settle,
//! and [`invariants`] checks what it left.
//!
//! Determinism: everything runs on one thread, on a tokio current-thread runtime whose clock
//! is paused (time moves only when every task waits, straight to the next timer); each
//! database call runs to its end while the simulation waits ([`database`]); the server's
//! ids come from the seed (`weft_server::entropy`); and every choice of the world is drawn
//! from the seed. A seed therefore replays exactly: [`Report::trace`] is equal for two runs.

pub mod database;
pub mod faults;
pub mod invariants;
pub mod rng;
pub mod workload;
pub mod world;

use std::path::PathBuf;
use std::sync::Arc;

use weft_engine::{Engine, EngineConfig};
use weft_store::Store;

pub use database::Sabotage;
pub use faults::Trace;

use crate::database::Database;
use crate::faults::{Chaos, Rates};
use crate::rng::Rng;
use crate::world::{Shape, World};

/// Why a simulation could not run at all (not a broken invariant: see [`Failure`]).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot set up the engine: {0}")]
    Engine(#[from] weft_engine::EngineError),
    #[error("guest component {path}: {reason}")]
    Component { path: String, reason: String },
    #[error("cannot start a runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("the simulation's database: {0}")]
    Store(#[from] weft_store::StoreError),
}

/// What every seed of a process shares: the engine with the modules compiled once, and the
/// runtime the databases run on.
pub struct Setup {
    engine: Engine,
    components: Vec<(&'static str, String, Vec<u8>)>,
    db_runtime: tokio::runtime::Runtime,
    dir: PathBuf,
}

impl Setup {
    pub fn new() -> Result<Setup, SimError> {
        let engine = Engine::new(EngineConfig::default())?;
        let mut components = Vec::new();
        for module in workload::MODULES {
            let bytes = std::fs::read(module.component).map_err(|e| SimError::Component {
                path: module.component.into(),
                reason: e.to_string(),
            })?;
            engine.load(&bytes).map_err(|e| SimError::Component {
                path: module.component.into(),
                reason: e.to_string(),
            })?;
            let id = weft_engine::module_sha256(&bytes);
            components.push((module.workflow_type, id, bytes));
        }
        let db_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        // In memory where the machine has a tmpfs: the files live for one seed.
        let shm = PathBuf::from("/dev/shm");
        let dir = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        Ok(Setup {
            engine,
            components,
            db_runtime,
            dir,
        })
    }
}

/// A seed whose world settled with every invariant holding.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub trace: Trace,
    pub shape: String,
    pub runs: usize,
    pub events: usize,
    /// Simulated milliseconds the world took.
    pub simulated_ms: u64,
}

/// A seed that broke an invariant, with what broke.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub trace: Trace,
    pub shape: String,
    pub broken: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} broke {} invariant(s) ({})",
            self.seed,
            self.broken.len(),
            self.shape
        )?;
        for line in self.broken.iter().take(20) {
            writeln!(f, "  - {line}")?;
        }
        write!(
            f,
            "replay it with: cargo run --release -p weft-simulation -- --seed {}",
            self.seed
        )
    }
}

/// Simulates the world of `seed` and checks it. `Ok(Err(failure))` when an invariant broke.
pub fn simulate(
    setup: &Setup,
    seed: u64,
    sabotage: Option<Sabotage>,
) -> Result<Result<Report, Failure>, SimError> {
    let mut rng = Rng::new(seed);
    let shape = Shape::draw(&mut rng);
    let rates = Rates::draw(&mut rng);
    let described = format!("{shape:?} {rates:?}");
    weft_server::entropy::seed_this_thread(Some(rng.next_u64()));
    let path = setup.dir.join(format!(
        "weft-sim-{}-{seed}.db",
        std::process::id() as u64 * 1_000 + thread_index()
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    let engine = setup.engine.clone();
    let handle = setup.db_runtime.handle().clone();
    let outcome = runtime.block_on(async {
        let chaos = Arc::new(Chaos::new(rng, rates));
        let db = Arc::new(Database::open(&path, handle, chaos.clone(), sabotage)?);
        for (workflow_type, id, bytes) in &setup.components {
            let (t, id, bytes) = (*workflow_type, id.clone(), bytes.clone());
            db.call(move |s| async move { s.put_module(t, &id, &bytes, 0).await })?;
        }
        let world = World::new(chaos, db, engine, shape);
        let settled = world.run().await;
        let simulated_ms = world.chaos.elapsed_ms();
        Ok::<_, SimError>((world, settled, simulated_ms))
    });
    // Every task of the world (executors, sweepers, workers) ends here.
    drop(runtime);
    weft_server::entropy::seed_this_thread(None);
    let result = outcome.map(|(world, settled, simulated_ms)| {
        let mut broken = invariants::check(&world, &setup.engine);
        if !settled {
            broken.insert(
                0,
                format!(
                    "the world did not settle within {} s of healing",
                    world::HEAL_LIMIT.as_secs()
                ),
            );
        }
        let trace = world.chaos.trace();
        let ledger = world.db.ledger();
        let (runs, events) = (
            ledger.events.len(),
            ledger.events.values().map(Vec::len).sum(),
        );
        drop(ledger);
        world.db.close();
        if broken.is_empty() {
            Ok(Report {
                seed,
                trace,
                shape: described.clone(),
                runs,
                events,
                simulated_ms,
            })
        } else {
            Err(Failure {
                seed,
                trace,
                shape: described.clone(),
                broken,
            })
        }
    });
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    result
}

/// A small number per thread, so that parallel seeds get files of their own.
fn thread_index() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static INDEX: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}

/// Runs seeds `first..first + count` on `jobs` threads; calls `each` with every outcome.
pub fn simulate_many(
    first: u64,
    count: u64,
    jobs: usize,
    sabotage: Option<Sabotage>,
    each: &(dyn Fn(&Result<Report, Failure>) + Sync),
) -> Result<Vec<Failure>, SimError> {
    let setup = Setup::new()?;
    let next = std::sync::atomic::AtomicU64::new(first);
    let failures = std::sync::Mutex::new(Vec::new());
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if seed >= first.saturating_add(count) {
                        return;
                    }
                    match simulate(&setup, seed, sabotage) {
                        Ok(outcome) => {
                            each(&outcome);
                            if let Err(failure) = outcome {
                                failures
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .push(failure);
                            }
                        }
                        Err(e) => {
                            errors
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = errors
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .next()
    {
        return Err(e);
    }
    let mut failures = failures
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    failures.sort_by_key(|f| f.seed);
    Ok(failures)
}
