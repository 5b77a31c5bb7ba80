//! `weft`: run a workflow in-process, replay a history offline, build a guest crate.

mod admin_cmd;
mod bench_cmd;
mod build_cmd;
mod client_cmd;
mod dev_cmd;
mod migrate_cmd;
mod replay_cmd;
mod run_cmd;
mod server_cmd;
mod vet_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// glibc malloc took about 11 % of the server's tokio threads under load, mostly
// consolidating and splitting chunks that many threads freed (BENCHMARKS.md, issue 12).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit codes, as documented in the README.
pub(crate) mod exit {
    /// Bad arguments, unreadable files, rejected modules.
    pub const USAGE: u8 = 1;
    /// `weft run`: the workflow ran and failed.
    pub const RUN_FAILED: u8 = 2;
    /// `weft replay`: the module diverged from the history.
    pub const NON_DETERMINISM: u8 = 3;
}

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Durable workflows as WebAssembly components"
)]
struct Cli {
    #[command(flatten)]
    server: client_cmd::Server,
    /// Log lines as `text` (for people) or `json` (one object per line, for log shippers);
    /// the level is set by WEFT_LOG (e.g. `info`, `weft_server=debug`).
    #[arg(long, global = true, env = "WEFT_LOG_FORMAT", default_value = "text")]
    log_format: weft_telemetry::logs::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workflow in-process to completion, activities stubbed, timers skipped.
    Run(run_cmd::RunArgs),
    /// Replay a recorded history on a module, offline, and report any divergence.
    Replay(replay_cmd::ReplayArgs),
    /// Replay many histories (a folder of files, or a type's stored runs) on a new module;
    /// exit 3 if any diverges.
    Vet(vet_cmd::VetArgs),
    /// Move running runs of a workflow type to another uploaded module, each only if its
    /// history replays clean on it (recorded as `RunMigrated`); exit 3 if any is left behind.
    Migrate(migrate_cmd::MigrateArgs),
    /// A server on embedded SQLite with the examples uploaded and their workers running.
    Dev(dev_cmd::DevArgs),
    /// The examples' activity workers (as `weft dev` runs them) against --server.
    Workers(dev_cmd::WorkersArgs),
    /// Load a running server with hello-activity and 10-activity workflows; report rates and latencies.
    Bench(bench_cmd::BenchArgs),
    /// Serve the gRPC API and the web console (embedded SQLite by default).
    Server(server_cmd::ServerArgs),
    #[command(flatten)]
    Client(client_cmd::ClientCommand),
    /// Make, list and revoke bearer tokens (for servers started with --auth).
    #[command(subcommand)]
    Token(admin_cmd::TokenCommand),
    /// The audit log: module uploads, terminations, token changes, refused tokens.
    Audit(admin_cmd::AuditArgs),
    /// Build a workflow crate (or a workspace of them), or a Python workflow project (a
    /// pyproject.toml with `[tool.weft] workflow = "module:Class"`), into Wasm components.
    Build {
        /// The crate, workspace or Python project directory.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Where to write the components (default: <path>/target/components, or
        /// <path>/target/components/debug with --debug; <path>/build for Python).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Build with cargo's dev profile and keep DWARF in the components, so that guest
        /// stacks (non-determinism errors, panics, `weft replay --until`) name `file:line`.
        /// A different module from the release build: replay with it, do not deploy it.
        #[arg(long)]
        debug: bool,
        /// Where cargo keeps its build files (default: <path>/target/weft-guests).
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Server(_) | Command::Dev(_) | Command::Workers(_)
    ) {
        end_quietly_on_a_closed_pipe();
    }
    weft_telemetry::logs::init(cli.log_format, "warn");
    let result = match cli.command {
        Command::Run(args) => run_cmd::run(args),
        Command::Replay(args) => replay_cmd::replay(args),
        Command::Vet(args) => vet_cmd::vet(&cli.server, args),
        Command::Migrate(args) => migrate_cmd::migrate(&cli.server, args),
        Command::Build {
            path,
            out,
            debug,
            target_dir,
        } => build_cmd::build(&path, out, debug, target_dir),
        Command::Server(args) => server_cmd::server(args),
        Command::Dev(args) => dev_cmd::dev(args),
        Command::Workers(args) => dev_cmd::workers(&cli.server, args),
        Command::Bench(args) => bench_cmd::bench(&cli.server, args),
        Command::Client(command) => client_cmd::client(cli.server, command),
        Command::Token(command) => admin_cmd::token(cli.server, command),
        Command::Audit(args) => admin_cmd::audit(cli.server, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            match e.downcast_ref::<tonic::Status>() {
                Some(status) => eprintln!("error: {}", status_in_words(status)),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::from(exit::USAGE)
        }
    }
}

/// `weft list | head` ends as Unix tools do when the reader goes away: the Rust runtime ignores
/// SIGPIPE, so the next `println!` would panic on the closed pipe instead. Not for the
/// commands that serve: they run until stopped and must outlive any one reader.
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: called on the main thread before any other thread runs, and only resets the
    // signal's disposition to the default the process would have had without Rust's runtime.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Reads a file, saying which one failed.
pub(crate) fn read_file(path: &std::path::Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {what} `{}`: {e}", path.display()))
}

/// Loads and checks a workflow component.
pub(crate) fn load_module(
    engine: &weft_engine::Engine,
    path: &std::path::Path,
) -> anyhow::Result<weft_engine::WorkflowModule> {
    let bytes = read_file(path, "module")?;
    engine
        .load(&bytes)
        .map_err(|e| anyhow::anyhow!("module `{}` rejected: {e}", path.display()))
}

/// Reads and parses a history file (format 1), saying which one failed.
pub(crate) fn load_history(path: &std::path::Path) -> anyhow::Result<weft_history::History> {
    let bytes = read_file(path, "history")?;
    weft_history::History::from_json(&bytes)
        .map_err(|e| anyhow::anyhow!("history `{}` rejected: {e}", path.display()))
}

/// `not found: no module is registered ...`: a gRPC status as a person reads it.
fn status_in_words(status: &tonic::Status) -> String {
    let code = format!("{:?}", status.code());
    let mut words = String::new();
    for (i, c) in code.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
        }
        words.push(c.to_ascii_lowercase());
    }
    format!("{words}: {}", status.message())
}
