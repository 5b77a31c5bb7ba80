//! What must hold after every simulated world, whatever faults it saw:
//!
//! - every started run ended, and every client got its answer;
//! - every history is numbered 1..n without gaps or duplicates, is exactly what the server
//!   committed (nothing lost, nothing added), and replays clean on its module;
//! - no run was stepped by a node it did not belong to (checked as each commit lands);
//! - each activity completed at most once, only after it was scheduled, and only with a
//!   result a worker sent; no attempt was handed to workers twice; retried attempts are
//!   numbered 1..k;
//! - every answered result is the one in the store, and each workflow ended as it must.

use std::collections::{BTreeMap, BTreeSet};

use weft_engine::Engine;
use weft_engine::replay::{ReplayVerdict, replay};
use weft_history::{Completion, EventKind};
use weft_proto::RunStatus as ProtoStatus;
use weft_store::{RunFilter, RunRecord, RunStatus, Store};

use crate::workload::{Expected, Workflow};
use crate::world::World;

/// Checks the world once it has stopped; one line per broken rule.
pub fn check(world: &World, engine: &Engine) -> Vec<String> {
    let mut broken = world.db.ledger().violations.clone();
    let observed = world
        .observed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for workflow_id in &observed.unanswered {
        broken.push(format!("the client of {workflow_id} never got its result"));
    }
    for ((key, attempt), times) in &observed.attempts {
        if *times > 1 {
            broken.push(format!(
                "attempt {attempt} of activity {key} was handed to workers {times} times"
            ));
        }
    }
    let runs = match all_runs(world) {
        Ok(runs) => runs,
        Err(e) => {
            broken.push(format!("cannot list the runs: {e}"));
            return broken;
        }
    };
    let by_id: BTreeMap<&str, &RunRecord> = runs.iter().map(|r| (r.run_id.as_str(), r)).collect();
    let mut modules = BTreeMap::new();
    for run in &runs {
        check_run(
            world,
            engine,
            run,
            &observed.completed,
            &mut modules,
            &mut broken,
        );
        if run.parent.is_none()
            && let Some(workflow) = observed.started.get(&run.workflow_id)
        {
            check_outcome(run, workflow, &mut broken);
        }
        // A child whose handle was cancelled, or whose parent closed, ends as that says.
        if let Some((parent_run, _)) = &run.parent
            && let Some(parent) = by_id.get(parent_run.as_str())
            && parent.parent.is_none()
            && let Some(workflow) = observed.started.get(&parent.workflow_id)
            && let Some(status) = workflow.children_end()
            && run.status != RunStatus::Running
            && run.status != status
        {
            broken.push(format!(
                "child {} run {} of {} ({workflow:?}) ended {:?} {:?}; it must end {status:?}",
                run.workflow_id, run.run_id, parent.workflow_id, run.status, run.error
            ));
        }
    }
    for workflow_id in observed.started.keys() {
        if !runs.iter().any(|r| &r.workflow_id == workflow_id) {
            broken.push(format!(
                "{workflow_id} was started but has no run in the store"
            ));
        }
    }
    for answer in &observed.answers {
        let Some(run) = by_id.get(answer.run_id.as_str()) else {
            broken.push(format!(
                "{} was answered with run {}, which is not in the store",
                answer.workflow_id, answer.run_id
            ));
            continue;
        };
        let status = match run.status {
            RunStatus::Running => ProtoStatus::Running,
            RunStatus::Completed => ProtoStatus::Completed,
            RunStatus::Failed => ProtoStatus::Failed,
            RunStatus::ContinuedAsNew => ProtoStatus::ContinuedAsNew,
            RunStatus::Terminated => ProtoStatus::Terminated,
            RunStatus::Cancelled => ProtoStatus::Cancelled,
        };
        let output = run
            .output
            .as_ref()
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default();
        let kind = run.error.as_ref().map(|e| e.kind.clone());
        if answer.status != status || answer.output != output || answer.error_kind != kind {
            broken.push(format!(
                "{} run {} was answered {:?} {} {:?}, but the store has {:?} {} {:?}",
                answer.workflow_id,
                answer.run_id,
                answer.status,
                String::from_utf8_lossy(&answer.output),
                answer.error_kind,
                run.status,
                String::from_utf8_lossy(&output),
                kind
            ));
        }
    }
    broken
}

fn all_runs(world: &World) -> Result<Vec<RunRecord>, weft_store::StoreError> {
    let mut runs = Vec::new();
    let mut before = None;
    loop {
        let page = world
            .db
            .call(move |s| async move { s.list_runs(&RunFilter::default(), before, 500).await })?;
        let Some(last) = page.last() else {
            return Ok(runs);
        };
        before = Some((last.started_at_ms, last.run_id.clone()));
        runs.extend(page);
    }
}

fn check_run(
    world: &World,
    engine: &Engine,
    run: &RunRecord,
    completed: &BTreeSet<String>,
    modules: &mut BTreeMap<String, Option<weft_engine::WorkflowModule>>,
    broken: &mut Vec<String>,
) {
    let name = format!("{} run {}", run.workflow_id, run.run_id);
    if run.status == RunStatus::Running {
        // What it waits for, to start the search.
        let id = run.run_id.clone();
        let tasks = world
            .db
            .call(move |s| async move { s.run_tasks(&id).await });
        let id = run.run_id.clone();
        let timers = world
            .db
            .call(move |s| async move { s.run_timers(&id).await });
        broken.push(format!(
            "{name} never ended (owner {:?}; tasks {:?}; timers {:?})",
            run.owner,
            tasks.map(|t| t
                .into_iter()
                .map(|t| format!(
                    "{} {} #{} lease {:?} claim {:?}",
                    t.task_id, t.activity_name, t.attempt, t.lease_until_ms, t.claim_secret
                ))
                .collect::<Vec<_>>()),
            timers.map(|t| t.len())
        ));
    }
    let run_id = run.run_id.clone();
    let history = match world
        .db
        .call(move |s| async move { s.history(&run_id).await })
    {
        Ok(Some(history)) => history,
        Ok(None) => {
            broken.push(format!("{name} has no history"));
            return;
        }
        Err(e) => {
            broken.push(format!("{name}: cannot read its history: {e}"));
            return;
        }
    };
    if run.status == RunStatus::Running {
        for event in &history.events {
            let line = format!("{:?}", event.kind);
            broken.push(format!(
                "  {name} event {}: {}",
                event.seq,
                &line[..line.len().min(160)]
            ));
        }
    }
    for (i, event) in history.events.iter().enumerate() {
        if event.seq != i as u64 + 1 {
            broken.push(format!(
                "{name}: event {} of its history has seq {} (gap or duplicate)",
                i + 1,
                event.seq
            ));
            break;
        }
    }
    let committed = world
        .db
        .ledger()
        .events
        .get(&run.run_id)
        .cloned()
        .unwrap_or_default();
    if committed != history.events {
        let differs = committed
            .iter()
            .zip(&history.events)
            .position(|(a, b)| a != b)
            .map_or_else(|| committed.len().min(history.events.len()) + 1, |i| i + 1);
        broken.push(format!(
            "{name}: the store holds {} events, the server committed {}; they differ from seq {differs}",
            history.events.len(),
            committed.len()
        ));
    }
    // Activities: scheduled before completed, completed at most once, with a worker's result.
    let mut scheduled = BTreeSet::new();
    let mut done = BTreeSet::new();
    for event in &history.events {
        match &event.kind {
            EventKind::ActivityScheduled { handle, .. } => {
                scheduled.insert(*handle);
            }
            EventKind::ActivityCompleted { handle, completion } => {
                if !scheduled.contains(handle) {
                    broken.push(format!(
                        "{name}: activity {handle} completed at seq {} without being scheduled",
                        event.seq
                    ));
                }
                if !done.insert(*handle) {
                    broken.push(format!(
                        "{name}: activity {handle} completed twice (again at seq {})",
                        event.seq
                    ));
                }
                let key = format!("{}/{}/{handle}", run.workflow_id, run.run_id);
                if matches!(completion, Completion::Ok(_)) && !completed.contains(&key) {
                    broken.push(format!(
                        "{name}: activity {handle} has a result no worker sent (seq {})",
                        event.seq
                    ));
                }
            }
            _ => {}
        }
    }
    let run_id = run.run_id.clone();
    match world
        .db
        .call(move |s| async move { s.run_attempts(&run_id).await })
    {
        Ok(attempts) => {
            let mut by_handle: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            for a in attempts {
                by_handle.entry(a.handle).or_default().push(a.attempt);
            }
            for (handle, mut numbers) in by_handle {
                numbers.sort_unstable();
                if numbers.iter().enumerate().any(|(i, n)| *n != i as u32 + 1) {
                    broken.push(format!(
                        "{name}: the retried attempts of activity {handle} are {numbers:?}, not 1..k"
                    ));
                }
            }
        }
        Err(e) => broken.push(format!("{name}: cannot read its attempts: {e}")),
    }
    let module = modules.entry(run.module_id.clone()).or_insert_with(|| {
        let id = run.module_id.clone();
        let bytes = world.db.call(move |s| async move { s.module(&id).await });
        bytes.ok().flatten().and_then(|b| engine.load(&b).ok())
    });
    let Some(module) = module else {
        broken.push(format!(
            "{name}: its module {} cannot be loaded",
            run.module_id
        ));
        return;
    };
    match replay(engine, module, history) {
        Ok(report) => {
            if let ReplayVerdict::NonDeterminism(nd) = report.verdict {
                broken.push(format!("{name} does not replay: {nd}"));
            }
        }
        Err(e) => broken.push(format!("{name}: the replay failed: {e}")),
    }
}

fn check_outcome(run: &RunRecord, workflow: &Workflow, broken: &mut Vec<String>) {
    let name = format!("{} run {} ({workflow:?})", run.workflow_id, run.run_id);
    let output: Option<serde_json::Value> = run
        .output
        .as_ref()
        .and_then(|p| serde_json::from_slice(p.as_bytes()).ok());
    if run.status == RunStatus::Running
        || (run.status == RunStatus::ContinuedAsNew && matches!(workflow, Workflow::Count { .. }))
    {
        return;
    }
    let want = workflow.expected();
    if !ended_as(run, output.as_ref(), &want) {
        broken.push(format!(
            "{name} ended {:?} with {} {:?}; it must end with {want:?}",
            run.status,
            output.map(|v| v.to_string()).unwrap_or_default(),
            run.error
        ));
    }
}

fn ended_as(run: &RunRecord, output: Option<&serde_json::Value>, want: &Expected) -> bool {
    match want {
        Expected::Output(want) => run.status == RunStatus::Completed && output == Some(want),
        // A workflow that returns the cancellation it was asked for ends `Cancelled`.
        Expected::Failed { kind } => {
            let status = if *kind == "Cancelled" {
                RunStatus::Cancelled
            } else {
                RunStatus::Failed
            };
            run.status == status && run.error.as_ref().is_some_and(|e| e.kind == *kind)
        }
        Expected::Completed => run.status == RunStatus::Completed,
        Expected::Either(a, b) => ended_as(run, output, a) || ended_as(run, output, b),
    }
}
