//! The embedded SQLite backend: one file, WAL journal, `synchronous=FULL` (a commit is on
//! disk when it returns).

use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

use crate::StoreError;
use crate::sql::{Dialect, SqlStore};
use crate::sqlite_thread::SqliteThreads;

/// Opens (creating if missing) the SQLite database at `url` (`sqlite:path` or a bare path)
/// and applies the migrations.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    sqlx::any::install_default_drivers();
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let url = format!("sqlite://{path}?mode=rwc");
    let pool = AnyPoolOptions::new()
        // One writer at a time is SQLite's rule; readers share the WAL.
        .max_connections(4)
        // The log is checkpointed by its own thread (`sqlite_thread`), which keeps it to a few
        // MiB; at SQLite's default of 1,000 pages the occasional write made here (the node's
        // lease, a heartbeat) checkpointed inline while holding the write gate, stalling the
        // batch writer. 16,384 pages (64 MiB) only bounds a log that no batch writes.
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 16384;")
                    .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    let threads = SqliteThreads::open(path)?;
    Ok(SqlStore::new(pool, Dialect::Sqlite, Some(threads)))
}
