//! `weft run`: one workflow in-process, for a quick try and for scripted checks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use weft_engine::harness::Harness;
use weft_engine::{Engine, EngineConfig, LogRecord, RunOutcome};
use weft_history::Payload;

use crate::exit;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The workflow component (.wasm).
    #[arg(long)]
    module: PathBuf,
    /// The run's input, as JSON text.
    #[arg(long, default_value = "null")]
    input: String,
    /// Stub activity NAME to return JSON on every call (repeatable). Unstubbed activities fail.
    #[arg(long = "activity", value_name = "NAME=JSON")]
    activities: Vec<String>,
    /// Write the run's history (format 1) to this file, for `weft replay`.
    #[arg(long)]
    history_out: Option<PathBuf>,
    /// Workflow type name (default: the module file's stem).
    #[arg(long = "type")]
    workflow_type: Option<String>,
    /// Workflow id.
    #[arg(long, default_value = "weft-run")]
    workflow_id: String,
    /// Seed for run ids and the workflow's random generator (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

/// Parses `NAME=JSON` into the name and the JSON's compact bytes.
fn parse_stub(stub: &str) -> anyhow::Result<(String, Payload)> {
    let Some((name, json)) = stub.split_once('=') else {
        bail!(
            "--activity `{stub}` must be NAME=JSON, e.g. --activity compose_greeting='\"Hello, World!\"'"
        );
    };
    if name.is_empty() {
        bail!("--activity `{stub}` has an empty activity name");
    }
    let value: serde_json::Value = serde_json::from_str(json)
        .with_context(|| format!("--activity {name}: `{json}` is not valid JSON"))?;
    Ok((name.to_owned(), Payload(serde_json::to_vec(&value)?)))
}

pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    serde_json::from_str::<serde_json::Value>(&args.input)
        .with_context(|| format!("--input `{}` is not valid JSON", args.input))?;
    let stubs = args
        .activities
        .iter()
        .map(|s| parse_stub(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let engine = Engine::new(EngineConfig::default())?;
    let module = crate::load_module(&engine, &args.module)?;
    let workflow_type = match args.workflow_type {
        Some(t) => t,
        None => args
            .module
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workflow".into()),
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let seed = args
        .seed
        .unwrap_or(now_ms ^ u64::from(std::process::id()).rotate_left(32));
    let mut harness = Harness::new(engine, now_ms, seed);
    harness.register(&workflow_type, module);
    harness.log_sink(Arc::new(|r: &LogRecord| {
        eprintln!("[{}] {}", r.level.as_str(), r.message);
    }));
    for (name, output) in stubs {
        harness.raw_activity(&name, move |_| Ok(output.clone()));
    }
    let report = harness.run(
        &workflow_type,
        &args.workflow_id,
        Payload(args.input.into_bytes()),
    )?;
    if let Some(path) = &args.history_out {
        std::fs::write(path, report.history().to_json_pretty())
            .with_context(|| format!("cannot write history to `{}`", path.display()))?;
        if report.runs.len() > 1 {
            eprintln!(
                "note: the workflow continued as new {} times; {} holds the last run's history",
                report.runs.len() - 1,
                path.display()
            );
        }
    }
    match report.outcome {
        RunOutcome::Completed(output) => {
            println!("{output}");
            Ok(0)
        }
        RunOutcome::Failed(error) => {
            eprintln!("workflow failed: {error}");
            Ok(exit::RUN_FAILED)
        }
        RunOutcome::ContinuedAsNew(_) | RunOutcome::Terminated { .. } => {
            unreachable!("the harness follows continue-as-new and never terminates")
        }
    }
}
