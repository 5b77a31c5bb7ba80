//! `weft replay`: vet a module against a recorded history, offline.

use std::path::PathBuf;

use serde_json::json;
use weft_engine::replay::{ReplayVerdict, replay as replay_history};
use weft_engine::{Engine, EngineConfig};

use crate::exit;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The history file (JSON, format 1), from `weft run --history-out` or the server.
    #[arg(long)]
    history: PathBuf,
    /// The workflow component to replay it on.
    #[arg(long)]
    module: PathBuf,
    /// Print a machine-readable result instead of the timeline.
    #[arg(long)]
    json: bool,
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
    let history = crate::load_history(&args.history)?;
    let engine = Engine::new(EngineConfig::default())?;
    let module = crate::load_module(&engine, &args.module)?;
    let events = history.events.clone();
    let recorded_on = history.header.module_sha256.clone();
    let report = replay_history(&engine, &module, history)?;

    if args.json {
        let value = match &report.verdict {
            ReplayVerdict::Clean => json!({
                "result": "ok", "events": report.events, "same_module": report.same_module
            }),
            ReplayVerdict::NonDeterminism(nd) => json!({
                "result": "non_determinism", "seq": nd.seq, "recorded": nd.recorded,
                "new": nd.new, "message": nd.to_string(), "same_module": report.same_module
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
        }
        for log in logs {
            println!("          [{}] {}", log.level.as_str(), log.message);
        }
    }
    match report.verdict {
        ReplayVerdict::Clean => {
            if !args.json {
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
