//! Offline replay: re-execute a recorded history on a module (any version) and report whether
//! the module still makes the same decisions. This is `weft replay`.

use std::sync::{Arc, Mutex};

use weft_history::{History, NonDeterminism};

use crate::clock::ManualClock;
use crate::engine::{Engine, WorkflowModule};
use crate::log::LogRecord;
use crate::run::{Activation, RunError, RunOptions, WorkflowRun};
use crate::stack::Probe;

/// What a replay found.
#[derive(Debug)]
pub enum ReplayVerdict {
    /// Every recorded decision was made again.
    Clean,
    /// The module diverged from the history.
    NonDeterminism(NonDeterminism),
}

/// The result of [`replay`].
#[derive(Debug)]
pub struct ReplayReport {
    pub verdict: ReplayVerdict,
    /// Events in the history.
    pub events: usize,
    /// True when the module is the one the run was recorded on.
    pub same_module: bool,
    /// The guest's log lines, each placed after the events that preceded it.
    pub logs: Vec<LogRecord>,
}

/// Replays `history` on `module` with no server and no database.
pub fn replay(
    engine: &Engine,
    module: &WorkflowModule,
    history: History,
) -> Result<ReplayReport, RunError> {
    replay_with(engine, module, history, None)
}

/// [`replay`] with the debugger's `probe` called at the host calls it picks.
pub fn replay_with(
    engine: &Engine,
    module: &WorkflowModule,
    history: History,
    probe: Option<Probe>,
) -> Result<ReplayReport, RunError> {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink_logs = logs.clone();
    let options = RunOptions {
        clock: Arc::new(ManualClock::new(0)),
        log_sink: Some(Arc::new(move |record: &LogRecord| {
            if let Ok(mut logs) = sink_logs.lock() {
                logs.push(record.clone());
            }
        })),
        logs_during_replay: true,
        probe,
    };
    let events = history.events.len();
    let same_module = history.header.module_sha256 == module.sha256();
    let mut run = WorkflowRun::replay_only(engine, module, history, options)?;
    let verdict = match run.activate() {
        Ok(Activation::Finished(_) | Activation::ReplayEnded) => ReplayVerdict::Clean,
        Ok(Activation::Suspended) => {
            return Err(RunError::Engine(
                "a replay-only run suspended; it should have ended with the history".into(),
            ));
        }
        Err(RunError::NonDeterminism(nd)) => ReplayVerdict::NonDeterminism(nd),
        Err(other) => return Err(other),
    };
    drop(run);
    let logs = std::mem::take(&mut *logs.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(ReplayReport {
        verdict,
        events,
        same_module,
        logs,
    })
}

/// One history's replay in [`replay_many`]: how long it took and what it found.
pub struct Replayed {
    pub took: std::time::Duration,
    pub report: Result<ReplayReport, RunError>,
}

/// Replays every history on `module` with `jobs` threads (vetting a new module against many
/// runs); the results keep the histories' order.
pub fn replay_many(
    engine: &Engine,
    module: &WorkflowModule,
    histories: Vec<History>,
    jobs: usize,
) -> Vec<Replayed> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let inputs: Vec<Mutex<Option<History>>> =
        histories.into_iter().map(|h| Mutex::new(Some(h))).collect();
    let outputs: Vec<Mutex<Option<Replayed>>> = inputs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(inputs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = inputs.get(i) else { break };
                    let taken = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
                    let Some(history) = taken else { continue };
                    let started = std::time::Instant::now();
                    let report = replay(engine, module, history);
                    *outputs[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(Replayed {
                        took: started.elapsed(),
                        report,
                    });
                }
            });
        }
    });
    outputs
        .into_iter()
        .filter_map(|o| o.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect()
}
