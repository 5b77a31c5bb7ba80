//! `weft vet`: replay many histories on a new module before it goes live, from a folder of
//! history files or from the server's stored runs of a workflow type, on every core.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use weft_engine::replay::{ReplayVerdict, replay_many};
use weft_engine::{Engine, EngineConfig, WorkflowModule};
use weft_history::History;
use weft_proto::RunStatus;

use crate::exit;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Runs {
    Running,
    Closed,
    All,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["workflow_type", "histories"])))]
pub struct VetArgs {
    /// The new workflow component.
    #[arg(long)]
    module: PathBuf,
    /// Vet the server's stored runs of this workflow type (see --server, --limit, --status).
    #[arg(
        long = "type",
        value_name = "TYPE",
        required_unless_present = "histories"
    )]
    workflow_type: Option<String>,
    /// Vet every `*.json` history file in this folder, offline.
    #[arg(long)]
    histories: Option<PathBuf>,
    /// With --type: the most recent runs to vet.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// With --type: which runs.
    #[arg(long, value_enum, default_value = "all")]
    status: Runs,
    /// Replays at once [default: the machine's cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

/// One history to vet and where it came from.
struct Source {
    /// `workflow_id/run_id`, or the file's name.
    name: String,
    history: History,
}

enum Verdict {
    Clean,
    Diverged(weft_history::NonDeterminism),
    Error(String),
}

struct Outcome {
    name: String,
    events: usize,
    same_module: bool,
    verdict: Verdict,
    took: Duration,
}

pub fn vet(server: &crate::client_cmd::Server, args: VetArgs) -> anyhow::Result<u8> {
    let engine = Engine::new(EngineConfig::default())?;
    let module = crate::load_module(&engine, &args.module)?;
    let sources = match (&args.histories, &args.workflow_type) {
        (Some(dir), _) => from_folder(dir)?,
        (None, Some(workflow_type)) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(from_server(server, workflow_type, &args))?
        }
        (None, None) => anyhow::bail!("give --type TYPE (stored runs) or --histories DIR"),
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let started = Instant::now();
    let outcomes = vet_all(&engine, &module, sources, jobs);
    let took = started.elapsed();
    let clean = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Clean))
        .count();
    let failed = outcomes.len() - clean;
    if args.json {
        let runs: Vec<serde_json::Value> = outcomes.iter().map(outcome_json).collect();
        println!(
            "{}",
            json!({
                "module": module.sha256(), "histories": outcomes.len(), "clean": clean,
                "diverged": failed, "seconds": took.as_secs_f64(), "runs": runs,
            })
        );
    } else {
        print_table(&outcomes);
        let rate = outcomes.len() as f64 / took.as_secs_f64().max(1e-9);
        println!(
            "vetted {} histories on module {} in {:.2} s ({rate:.0}/s, {jobs} at once): {clean} clean, {failed} diverged",
            outcomes.len(),
            &module.sha256()[..12],
            took.as_secs_f64(),
        );
    }
    Ok(if failed == 0 {
        0
    } else {
        exit::NON_DETERMINISM
    })
}

fn from_folder(dir: &std::path::Path) -> anyhow::Result<Vec<Source>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the history folder `{}`", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        anyhow::bail!("no `*.json` history files in `{}`", dir.display());
    }
    paths
        .into_iter()
        .map(|path| {
            let history = crate::load_history(&path)?;
            Ok(Source {
                name: path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                history,
            })
        })
        .collect()
}

async fn from_server(
    server: &crate::client_cmd::Server,
    workflow_type: &str,
    args: &VetArgs,
) -> anyhow::Result<Vec<Source>> {
    let mut client = server.connect().await?;
    let status = match args.status {
        Runs::Running => RunStatus::Running,
        Runs::Closed | Runs::All => RunStatus::Unspecified,
    };
    let mut runs = Vec::new();
    let mut page_token = String::new();
    while runs.len() < args.limit {
        let page = client
            .list_workflows(weft_proto::ListWorkflowsRequest {
                status: status as i32,
                workflow_type: workflow_type.to_owned(),
                page_size: 1000,
                page_token,
                workflow_id_prefix: String::new(),
            })
            .await?
            .into_inner();
        runs.extend(page.runs.into_iter().filter(|r| {
            !matches!(args.status, Runs::Closed) || r.status != RunStatus::Running as i32
        }));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    runs.truncate(args.limit);
    if runs.is_empty() {
        anyhow::bail!("the server has no runs of type `{workflow_type}` to vet");
    }
    // Sixteen fetches in flight: histories arrive while others are asked for.
    let mut sources = Vec::with_capacity(runs.len());
    for chunk in runs.chunks(16) {
        let mut fetches = tokio::task::JoinSet::new();
        for (i, run) in chunk.iter().cloned().enumerate() {
            let mut client = client.clone();
            fetches.spawn(async move {
                let reply = client
                    .get_history(weft_proto::GetHistoryRequest {
                        workflow_id: run.workflow_id.clone(),
                        run_id: run.run_id.clone(),
                        include_logs: false,
                    })
                    .await?
                    .into_inner();
                let name = format!("{}/{}", run.workflow_id, run.run_id);
                let history = History::from_json(reply.history_json.as_bytes())
                    .map_err(|e| anyhow::anyhow!("the history of {name} does not load: {e}"))?;
                anyhow::Ok((i, Source { name, history }))
            });
        }
        let mut fetched = Vec::with_capacity(chunk.len());
        while let Some(joined) = fetches.join_next().await {
            fetched.push(joined??);
        }
        fetched.sort_by_key(|(i, _)| *i);
        sources.extend(fetched.into_iter().map(|(_, s)| s));
    }
    Ok(sources)
}

/// Replays every source on `jobs` threads; the outcomes keep the sources' order.
fn vet_all(
    engine: &Engine,
    module: &WorkflowModule,
    sources: Vec<Source>,
    jobs: usize,
) -> Vec<Outcome> {
    let (names, histories): (Vec<String>, Vec<History>) =
        sources.into_iter().map(|s| (s.name, s.history)).unzip();
    let facts: Vec<(usize, bool)> = histories
        .iter()
        .map(|h| (h.events.len(), h.header.module_sha256 == module.sha256()))
        .collect();
    replay_many(engine, module, histories, jobs)
        .into_iter()
        .zip(names.into_iter().zip(facts))
        .map(|(replayed, (name, (events, same_module)))| Outcome {
            name,
            events,
            same_module,
            took: replayed.took,
            verdict: match replayed.report {
                Ok(report) => match report.verdict {
                    ReplayVerdict::Clean => Verdict::Clean,
                    ReplayVerdict::NonDeterminism(nd) => Verdict::Diverged(nd),
                },
                Err(e) => Verdict::Error(e.to_string()),
            },
        })
        .collect()
}

fn verdict_text(o: &Outcome) -> String {
    let same = if o.same_module { " (same module)" } else { "" };
    match &o.verdict {
        Verdict::Clean => format!("clean{same}"),
        Verdict::Diverged(nd) => {
            // The innermost frame of the workflow's own code: where the new call was made.
            let at = nd
                .guest_stack
                .first()
                .map(|f| format!(", in {f}"))
                .unwrap_or_default();
            format!(
                "non-determinism at seq {}: recorded {}, new {}{at}{same}",
                nd.seq, nd.recorded, nd.new
            )
        }
        Verdict::Error(e) => format!("error: {e}"),
    }
}

fn print_table(outcomes: &[Outcome]) {
    let width = outcomes
        .iter()
        .map(|o| o.name.len())
        .max()
        .unwrap_or(3)
        .max(3);
    println!("{:<width$}  {:>6}  {:>9}  VERDICT", "RUN", "EVENTS", "TIME");
    for o in outcomes {
        println!(
            "{:<width$}  {:>6}  {:>7.1}ms  {}",
            o.name,
            o.events,
            o.took.as_secs_f64() * 1000.0,
            verdict_text(o)
        );
    }
}

fn outcome_json(o: &Outcome) -> serde_json::Value {
    let mut v = json!({
        "run": o.name, "events": o.events, "same_module": o.same_module,
        "ms": o.took.as_secs_f64() * 1000.0,
    });
    match &o.verdict {
        Verdict::Clean => v["verdict"] = json!("clean"),
        Verdict::Diverged(nd) => {
            v["verdict"] = json!("non_determinism");
            v["seq"] = json!(nd.seq);
            v["recorded"] = json!(nd.recorded);
            v["new"] = json!(nd.new);
            v["message"] = json!(nd.to_string());
            v["guest_stack"] = json!(nd.guest_stack);
        }
        Verdict::Error(e) => {
            v["verdict"] = json!("error");
            v["message"] = json!(e);
        }
    }
    v
}
