//! `weft migrate`: move running runs of a workflow type to another uploaded module. The server
//! replays each run's history on the module first and moves only the runs that replay clean.

use anyhow::Context;
use weft_proto::{self as proto, MigrationOutcome};

use crate::exit;

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The workflow type whose running runs move.
    #[arg(long = "type", value_name = "TYPE")]
    workflow_type: String,
    /// The module to move them to: the id `weft upload` printed (a unique prefix will do).
    #[arg(long = "to", value_name = "MODULE_ID")]
    to: String,
    /// Only the running run of this workflow id (repeat for several).
    #[arg(long = "workflow-id", value_name = "ID")]
    workflow_ids: Vec<String>,
    /// Vet only: say which runs would move, move nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn migrate(server: &crate::client_cmd::Server, args: MigrateArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut client = server.connect().await?;
        let to = resolve_module(&mut client, &args.workflow_type, &args.to).await?;
        let r = client
            .migrate_runs(proto::MigrateRunsRequest {
                workflow_type: args.workflow_type.clone(),
                to_module_id: to,
                workflow_ids: args.workflow_ids.clone(),
                dry_run: args.dry_run,
            })
            .await?
            .into_inner();
        let left = r
            .runs
            .iter()
            .filter(|run| {
                matches!(
                    run.outcome(),
                    MigrationOutcome::Diverged | MigrationOutcome::Skipped
                )
            })
            .count();
        if args.json {
            print_json(&r, args.dry_run);
        } else {
            print_table(&r, &args.workflow_type, args.dry_run);
        }
        Ok(if left == 0 { 0 } else { exit::NON_DETERMINISM })
    })
}

/// A full module id from a prefix of one of the type's uploaded modules.
async fn resolve_module(
    client: &mut crate::client_cmd::Client,
    workflow_type: &str,
    prefix: &str,
) -> anyhow::Result<String> {
    if prefix.len() == 64 {
        return Ok(prefix.to_owned());
    }
    let modules = client
        .list_modules(proto::ListModulesRequest {})
        .await
        .context("cannot list the server's modules to find --to")?
        .into_inner()
        .modules;
    let matching: Vec<&proto::ModuleVersion> = modules
        .iter()
        .filter(|m| m.workflow_type == workflow_type && m.module_id.starts_with(prefix))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.module_id.clone()),
        [] => anyhow::bail!(
            "no module of `{workflow_type}` starts with `{prefix}`; upload it with \
             `weft upload --type {workflow_type} FILE`, which prints its id"
        ),
        many => anyhow::bail!(
            "`{prefix}` is the start of {} modules of `{workflow_type}`; give more of the id",
            many.len()
        ),
    }
}

fn outcome_name(outcome: MigrationOutcome) -> &'static str {
    match outcome {
        MigrationOutcome::Migrated => "migrated",
        MigrationOutcome::WouldMigrate => "would_migrate",
        MigrationOutcome::Diverged => "diverged",
        MigrationOutcome::AlreadyOnModule => "already_on_module",
        MigrationOutcome::Skipped => "skipped",
        MigrationOutcome::Unspecified => "unknown",
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn print_json(r: &proto::MigrateRunsResponse, dry_run: bool) {
    let runs: Vec<serde_json::Value> = r
        .runs
        .iter()
        .map(|run| {
            serde_json::json!({
                "workflow_id": run.workflow_id, "run_id": run.run_id,
                "from": run.from_module_id, "events": run.events,
                "outcome": outcome_name(run.outcome()), "seq": run.seq,
                "recorded": run.recorded, "new": run.new, "message": run.message,
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "to": r.to_module_id, "dry_run": dry_run, "runs": runs,
            "migrated": r.migrated, "diverged": r.diverged,
        })
    );
}

fn print_table(r: &proto::MigrateRunsResponse, workflow_type: &str, dry_run: bool) {
    if r.runs.is_empty() {
        println!("no running runs of `{workflow_type}` to move");
        return;
    }
    let name = |run: &proto::RunMigration| format!("{}/{}", run.workflow_id, run.run_id);
    let width = r.runs.iter().map(|run| name(run).len()).max().unwrap_or(3);
    println!("{:width$}  {:>6}  {:12}  outcome", "run", "events", "from");
    for run in &r.runs {
        let outcome = match run.outcome() {
            MigrationOutcome::Diverged if run.seq > 0 => format!(
                "diverged at seq {}: recorded {}, new {}",
                run.seq, run.recorded, run.new
            ),
            MigrationOutcome::Diverged | MigrationOutcome::Skipped => {
                format!("{}: {}", outcome_name(run.outcome()), run.message)
            }
            other => outcome_name(other).replace('_', " "),
        };
        println!(
            "{:width$}  {:>6}  {:12}  {outcome}",
            name(run),
            run.events,
            short(&run.from_module_id)
        );
    }
    let count = |o: MigrationOutcome| r.runs.iter().filter(|run| run.outcome() == o).count();
    let moved = if dry_run {
        format!(
            "{} would move (dry run)",
            count(MigrationOutcome::WouldMigrate)
        )
    } else {
        format!("{} migrated", r.migrated)
    };
    let runs = if r.runs.len() == 1 { "run" } else { "runs" };
    println!(
        "{} running {runs} of `{workflow_type}`, to module {}: {moved}, {} diverged, {} already there, {} skipped",
        r.runs.len(),
        short(&r.to_module_id),
        r.diverged,
        count(MigrationOutcome::AlreadyOnModule),
        count(MigrationOutcome::Skipped),
    );
}
