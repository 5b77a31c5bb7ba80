//! `weft replay`: vet a module against a recorded history, offline.

use std::path::PathBuf;

use std::sync::{Arc, Mutex};

use serde_json::json;
use weft_engine::replay::{ReplayVerdict, replay_with};
use weft_engine::weft_history::{Event, EventKind};
use weft_engine::{Engine, EngineConfig, Probe, ProbeHit};

use crate::exit;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The history file (JSON, format 1), from `weft run --history-out` or the server.
    #[arg(long)]
    history: PathBuf,
    /// The workflow component to replay it on.
    #[arg(long)]
    module: PathBuf,
    /// Stop at event SEQ and print the guest's call stack at the host call that issued or
    /// consumed it (function names; `file:line` for modules from `weft build --debug`).
    #[arg(long, value_name = "SEQ")]
    until: Option<u64>,
    /// Print the guest's stack at each such call: `activity[:NAME]`, `timer`,
    /// `signal[:NAME]`, `child[:TYPE]`, `marker[:CHANGE_ID]` (repeatable).
    #[arg(long = "break-on", value_name = "WHAT")]
    break_on: Vec<Breakpoint>,
    /// Print a machine-readable result instead of the timeline.
    #[arg(long)]
    json: bool,
}

/// Which host calls `--break-on` stops at.
#[derive(Clone, Debug)]
pub enum Breakpoint {
    Activity(Option<String>),
    Timer,
    Signal(Option<String>),
    Child(Option<String>),
    Marker(Option<String>),
}

impl std::str::FromStr for Breakpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = match s.split_once(':') {
            Some((kind, name)) if !name.is_empty() => (kind, Some(name.to_owned())),
            Some((kind, _)) => (kind, None),
            None => (s, None),
        };
        match (kind, name) {
            ("activity", name) => Ok(Breakpoint::Activity(name)),
            ("timer", None) => Ok(Breakpoint::Timer),
            ("signal", name) => Ok(Breakpoint::Signal(name)),
            ("child", name) => Ok(Breakpoint::Child(name)),
            ("marker", name) => Ok(Breakpoint::Marker(name)),
            _ => Err(format!(
                "`{s}` is not a breakpoint; use activity[:NAME], timer, signal[:NAME], \
                 child[:TYPE] or marker[:CHANGE_ID]"
            )),
        }
    }
}

impl Breakpoint {
    fn matches(&self, kind: &EventKind) -> bool {
        let named = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        match (self, kind) {
            (Breakpoint::Activity(want), EventKind::ActivityScheduled { name, .. }) => {
                named(want, name)
            }
            (Breakpoint::Timer, EventKind::TimerStarted { .. }) => true,
            (Breakpoint::Signal(want), EventKind::SignalAwaited { name, .. }) => named(want, name),
            (Breakpoint::Child(want), EventKind::ChildWorkflowStarted { workflow_type, .. }) => {
                named(want, workflow_type)
            }
            (Breakpoint::Marker(want), EventKind::MarkerRecorded { change_id }) => {
                named(want, change_id)
            }
            _ => false,
        }
    }
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<u8> {
    match check(&args) {
        Ok(code) => Ok(code),
        Err(e) if args.json => {
            println!(
                "{}",
                json!({"result": "error", "message": format!("{e:#}")})
            );
            Ok(exit::USAGE)
        }
        Err(e) => Err(e),
    }
}

fn check(args: &ReplayArgs) -> anyhow::Result<u8> {
    let mut history = crate::load_history(&args.history)?;
    let engine = Engine::new(EngineConfig::default())?;
    let module = crate::load_module(&engine, &args.module)?;
    if let Some(until) = args.until {
        let len = history.events.len() as u64;
        if until == 0 || until > len {
            anyhow::bail!(
                "--until {until} is not an event of this history; it has events 1 to {len}"
            );
        }
        // The replay ends where the history does.
        history.events.truncate(until as usize);
    }
    let events = history.events.clone();
    let recorded_on = history.header.module_sha256.clone();
    let hits: Arc<Mutex<Vec<ProbeHit>>> = Arc::default();
    let probe = (args.until.is_some() || !args.break_on.is_empty()).then(|| {
        let (until, breakpoints) = (args.until, args.break_on.clone());
        let sink = hits.clone();
        Probe {
            wants: Arc::new(move |e: &Event| {
                Some(e.seq) == until || breakpoints.iter().any(|b| b.matches(&e.kind))
            }),
            hit: Arc::new(move |hit| sink.lock().unwrap_or_else(|p| p.into_inner()).push(hit)),
        }
    });
    let report = replay_with(&engine, &module, history, probe)?;
    let hits = std::mem::take(&mut *hits.lock().unwrap_or_else(|p| p.into_inner()));

    if args.json {
        let stops: Vec<serde_json::Value> = hits
            .iter()
            .map(|h| {
                json!({
                    "seq": h.event.seq, "event": h.event.kind.to_string(),
                    "host_call": h.host_call,
                    "stack": h.stack.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        let value = match &report.verdict {
            ReplayVerdict::Clean => json!({
                "result": "ok", "events": report.events, "same_module": report.same_module,
                "stops": stops,
            }),
            ReplayVerdict::NonDeterminism(nd) => json!({
                "result": "non_determinism", "seq": nd.seq, "recorded": nd.recorded,
                "new": nd.new, "message": nd.to_string(), "same_module": report.same_module,
                "guest_stack": nd.guest_stack, "stops": stops,
            }),
        };
        println!("{value}");
    } else {
        if !report.same_module {
            println!(
                "note: the history was recorded on module {recorded_on}, replaying on {}",
                module.sha256()
            );
        }
        let stop = match &report.verdict {
            ReplayVerdict::NonDeterminism(nd) => nd.seq,
            ReplayVerdict::Clean => u64::MAX,
        };
        let start = events.first().map(|e| e.timestamp_ms).unwrap_or(0);
        let mut logs = report.logs.iter().peekable();
        for event in events.iter().take_while(|e| e.seq <= stop) {
            while let Some(log) = logs.next_if(|l| l.after_event < event.seq) {
                println!("          [{}] {}", log.level.as_str(), log.message);
            }
            let mark = if event.seq == stop { "!!" } else { "  " };
            let offset = event.timestamp_ms.saturating_sub(start);
            println!("{mark}{:>4}  +{offset}ms  {}", event.seq, event.kind);
            for hit in hits.iter().filter(|h| h.event.seq == event.seq) {
                if hit.stack.is_empty() {
                    println!(
                        "          at the host call `{}` (no frames of the workflow's own code)",
                        hit.host_call
                    );
                } else {
                    println!("          at the host call `{}`:", hit.host_call);
                }
                for frame in &hit.stack {
                    println!("            {frame}");
                }
            }
        }
        for log in logs {
            println!("          [{}] {}", log.level.as_str(), log.message);
        }
        let no_lines = |frames: &[weft_engine::GuestFrame]| frames.iter().all(|f| f.line.is_none());
        if hits.iter().any(|h| no_lines(&h.stack)) {
            println!(
                "note: this module has no DWARF, so stacks name functions only; build it with \
                 `weft build --debug` for file:line"
            );
        }
    }
    match report.verdict {
        ReplayVerdict::Clean if args.json => Ok(0),
        ReplayVerdict::Clean => {
            if let Some(until) = args.until {
                if !hits.iter().any(|h| h.event.seq == until) {
                    println!(
                        "event {until} was not issued or consumed by a call of the workflow \
                         (the run's start and outside events such as a termination are not)"
                    );
                }
                println!("replay stopped at event {until}, as asked; it is clean up to there");
            } else {
                println!("replay OK: {} events", report.events);
            }
            Ok(0)
        }
        ReplayVerdict::NonDeterminism(nd) => {
            if !args.json {
                println!("error: {nd}");
            }
            Ok(exit::NON_DETERMINISM)
        }
    }
}
