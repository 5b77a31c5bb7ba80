//! `weft server`: serve the API on embedded SQLite (default) or PostgreSQL.

use std::net::SocketAddr;

use anyhow::Context;
use weft_server::{ServerConfig, serve};

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Address to serve gRPC on.
    #[arg(long, env = "WEFT_LISTEN", default_value = "127.0.0.1:7233")]
    listen: SocketAddr,
    /// `sqlite:PATH` (created if missing) or `postgres://user@host/db`.
    #[arg(long, env = "WEFT_DATABASE", default_value = "sqlite:weft.db")]
    database: String,
    /// Runs kept in memory between steps; others are rebuilt from history when needed.
    #[arg(long, env = "WEFT_MAX_CACHED_RUNS", default_value_t = 10_000)]
    max_cached_runs: usize,
}

pub fn server(args: ServerArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!("weft server on {} with {}", args.listen, args.database);
        let config = ServerConfig {
            database: args.database,
            max_cached_runs: args.max_cached_runs,
            ..ServerConfig::default()
        };
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve(config, listener, shutdown).await?;
        Ok(0)
    })
}
