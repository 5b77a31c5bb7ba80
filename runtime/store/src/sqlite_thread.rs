//! SQLite's hot path on threads of its own: one thread owns a write connection and one a
//! read connection, and each takes a whole call (a batch commit, a claim, a lookup) per
//! message.
//!
//! Why: sqlx's SQLite driver also runs each connection on a thread, but it hands every
//! statement and every row across with a channel message and a wake-up, and a batch of a
//! hundred steps is a few hundred statements. `perf` on the server put a quarter of its time
//! in those hand-offs. Here a batch crosses once each way. The statements are the ones the
//! sqlx path runs (`sql::batch_statements` and friends), prepared once and cached, and the
//! interpreter that runs them is the same one too (`sql::write_plan`).
//!
//! Only the calls made per workflow go here (commit, claim, and the run and task lookups);
//! the rest stay on sqlx's pool. Both write through the store's one write gate, so SQLite
//! sees one writer at a time either way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;

use rusqlite::config::DbConfig;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

use crate::StoreError;
use crate::model::TaskRecord;
use crate::sql::{self, BatchStatement, Columns, Param, Statement};

/// Statements kept prepared per connection: a batch's multi-row statements take one of nine
/// row counts (`sql::statement_chunks`) for each of eight kinds, with the updates and reads
/// about a hundred shapes in all.
const PREPARED_STATEMENTS: usize = 256;

/// The store's write gate, held (`sql::SqlStore`'s `gate`).
pub(crate) type WriteGate = Option<tokio::sync::OwnedMutexGuard<()>>;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

enum Message {
    Run(Job),
    /// Close the connection and end the thread, then say so.
    Stop(oneshot::Sender<()>),
}

/// One connection, owned by one thread, that runs the closures sent to it in order.
#[derive(Debug)]
struct ConnectionThread {
    jobs: mpsc::Sender<Message>,
}

impl ConnectionThread {
    fn open(path: &str, name: &str, flags: OpenFlags) -> Result<Self, StoreError> {
        let connection = Connection::open_with_flags(path, flags)?;
        // As the sqlx pool's connections (`sqlite::open`): a commit is on disk when it returns.
        // Statement journals (a multi-row statement inside the batch's transaction keeps the
        // pages it changes, to undo itself alone) stay in memory: they went to a temporary
        // file, 6.6 % of the server's time under load. The log is copied into the database by
        // the checkpoint thread, not by the commit that filled it.
        connection.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
             PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 0;",
        )?;
        // Plans that do not depend on bound values: SQLite otherwise re-prepares a statement
        // whose `LIMIT ?` (the claim's) is bound again, on every claim.
        connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        connection.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
        let (jobs, queue) = mpsc::channel::<Message>();
        std::thread::Builder::new()
            .name(format!("weft-sqlite-{name}"))
            .spawn(move || {
                let mut connection = connection;
                // Ends when the store is closed or every sender is gone (the store dropped).
                for message in queue {
                    match message {
                        Message::Run(job) => job(&mut connection),
                        Message::Stop(done) => {
                            drop(connection);
                            let _ = done.send(());
                            return;
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the {name} thread: {e}")))?;
        Ok(ConnectionThread { jobs })
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            // The caller may have gone (its request was cancelled): the work stands anyway.
            let _ = reply.send(f(connection));
        });
        let stopped = || {
            StoreError::Unavailable("the SQLite connection thread stopped (store closed)".into())
        };
        self.jobs.send(Message::Run(job)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `f` on the connection's thread without waiting for it.
    fn post(&self, f: impl FnOnce(&mut Connection) + Send + 'static) {
        // A stopped thread means a closed store: there is nothing left to do.
        let _ = self.jobs.send(Message::Run(Box::new(f)));
    }

    /// Closes the connection once the calls sent before are done.
    async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Message::Stop(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

/// The write and read connections of one SQLite file.
#[derive(Debug)]
pub(crate) struct SqliteThreads {
    writer: ConnectionThread,
    reader: ConnectionThread,
    /// Copies the write-ahead log into the database file (`PRAGMA wal_checkpoint(PASSIVE)`),
    /// which SQLite would otherwise do inside the commit that filled the log (3.5 % of the
    /// server's time under load, all of it while the executor waits for that commit).
    checkpointer: ConnectionThread,
    /// Write transactions since the last checkpoint was asked for.
    writes: AtomicU32,
    /// A checkpoint is asked for and not yet done.
    checkpointing: Arc<AtomicBool>,
    /// A checkpoint is done: the writer copies what was committed meanwhile, after its next
    /// commit. A passive checkpoint beside a busy writer never catches up with it, and the
    /// writer starts the log over only once all of it is copied (without this last step the
    /// log grew by 80 KiB per commit).
    tail: Arc<AtomicBool>,
}

/// Write transactions between two checkpoints: a batch writes a few to a few dozen pages,
/// so the log stays near SQLite's own threshold of 1,000 pages.
const WRITES_PER_CHECKPOINT: u32 = 64;

impl SqliteThreads {
    /// Opens both connections to the (already migrated) database file at `path`.
    pub(crate) fn open(path: &str) -> Result<Self, StoreError> {
        // Each connection is used by its one thread only.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Ok(SqliteThreads {
            writer: ConnectionThread::open(path, "writer", flags)?,
            reader: ConnectionThread::open(path, "reader", flags)?,
            checkpointer: ConnectionThread::open(path, "checkpoint", flags)?,
            writes: Default::default(),
            checkpointing: Default::default(),
            tail: Default::default(),
        })
    }

    /// Counts a write transaction; every [`WRITES_PER_CHECKPOINT`], asks the checkpoint
    /// thread to copy the log into the database. A passive checkpoint takes no writer lock:
    /// commits go on meanwhile, and the writer starts the log over once it is all copied.
    fn wrote(&self) {
        if self.writes.fetch_add(1, Ordering::Relaxed) % WRITES_PER_CHECKPOINT
            != WRITES_PER_CHECKPOINT - 1
            || self.checkpointing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (checkpointing, tail) = (self.checkpointing.clone(), self.tail.clone());
        self.checkpointer.post(move |connection| {
            checkpoint(connection);
            tail.store(true, Ordering::Release);
            checkpointing.store(false, Ordering::Release);
        });
    }

    /// Closes both connections (calls after this fail with [`StoreError::Unavailable`]).
    pub(crate) async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
        self.checkpointer.close().await;
    }

    /// [`crate::Store::commit`]: the whole batch in one `BEGIN IMMEDIATE` transaction,
    /// under the store's write gate (`gate`), which is let go when the thread is done with
    /// it, even if the caller stopped waiting.
    /// `statements` are the batch's (`sql::batch_statements`, made by the caller so that the
    /// writer thread only writes), `node` the node committing it.
    pub(crate) async fn commit(
        &self,
        statements: Vec<BatchStatement>,
        node: String,
        gate: WriteGate,
    ) -> Result<(), StoreError> {
        let tail = self.tail.clone();
        self.writer
            .call(move |connection| {
                let _gate = gate;
                let mut tx =
                    connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                ready(sql::write_plan(&mut tx, &node, statements))??;
                tx.commit()?;
                if tail.swap(false, Ordering::AcqRel) {
                    checkpoint(connection);
                }
                Ok(())
            })
            .await?;
        self.wrote();
        Ok(())
    }

    /// [`crate::Store::claim_tasks`] on SQLite, under the write gate as `commit`.
    pub(crate) async fn claim(
        &self,
        statement: Statement,
        gate: WriteGate,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let claimed = self
            .writer
            .call(move |connection| {
                let _gate = gate;
                rows(connection, &statement, |row| sql::task_from_row(row))
            })
            .await?;
        if !claimed.is_empty() {
            self.wrote();
        }
        Ok(claimed)
    }

    /// The rows a `SELECT` finds, each read by `read` (`sql::run_from_row` and its kin).
    pub(crate) async fn select<T: Send + 'static>(
        &self,
        statement: Statement,
        read: sql::Read<T>,
    ) -> Result<Vec<T>, StoreError> {
        self.reader
            .call(move |connection| rows(connection, &statement, |row| read(row)))
            .await
    }
}

/// Copies the write-ahead log into the database file as far as no reader needs it, without
/// waiting for any lock.
fn checkpoint(connection: &Connection) {
    // Busy (another connection is checkpointing) or failed: the next one copies it.
    if let Err(error) = connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
        tracing::debug!(%error, "SQLite checkpoint not done");
    }
}

/// Prepares (or takes from the cache) and binds a statement.
fn prepare<'c>(
    connection: &'c Connection,
    statement: &Statement,
) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
    let mut prepared = connection.prepare_cached(&statement.sql)?;
    // `Statement` numbers its `$n` in order of appearance, which is how SQLite numbers them.
    for (n, param) in statement.params.iter().enumerate() {
        prepared.raw_bind_parameter(n + 1, Bound(param))?;
    }
    Ok(prepared)
}

/// Runs a statement; returns the rows it changed.
fn execute(connection: &Connection, statement: &Statement) -> Result<usize, StoreError> {
    Ok(prepare(connection, statement)?.raw_execute()?)
}

/// The batch interpreter's transaction on this thread. Each call does its work before it
/// returns and hands back a future that is ready, so [`ready`] runs the interpreter here
/// without an async runtime.
impl sql::Transact for rusqlite::Transaction<'_> {
    fn execute(
        &mut self,
        statement: Statement,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        std::future::ready(execute(self, &statement).map(|n| n as u64))
    }

    fn rows<T: Send + 'static>(
        &mut self,
        statement: Statement,
        read: sql::Read<T>,
    ) -> impl Future<Output = Result<Vec<T>, StoreError>> + Send {
        std::future::ready(rows(self, &statement, |row| read(row)))
    }
}

/// The output of a future whose every await is ready at once (the interpreter's over
/// rusqlite's [`sql::Transact`]), polled once on this thread.
fn ready<F: Future>(future: F) -> Result<F::Output, StoreError> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(output) => Ok(output),
        std::task::Poll::Pending => Err(StoreError::Unavailable(
            "a SQLite write waited on something other than SQLite (a defect in weft's store: \
             please report it)"
                .to_owned(),
        )),
    }
}

/// Runs a statement and reads each row it returns with `read`.
fn rows<T>(
    connection: &Connection,
    statement: &Statement,
    read: impl Fn(&Named<'_, '_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut prepared = prepare(connection, statement)?;
    // Looked up once per statement: rusqlite finds a column by name through SQLite's C API
    // and a case-insensitive compare per column, per lookup (3 % of the server in `perf`).
    let names: Vec<String> = prepared
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut rows = prepared.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(&Named { row, names: &names })?);
    }
    Ok(out)
}

/// A row with its statement's column names.
pub(crate) struct Named<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    names: &'r [String],
}

impl Named<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, name: &str) -> Result<T, StoreError> {
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or(rusqlite::Error::InvalidColumnName(name.to_owned()))?;
        Ok(self.row.get(index)?)
    }
}

/// A [`Param`] as rusqlite binds it.
struct Bound<'p>(&'p Param);

impl rusqlite::ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Param::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Param::Int(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            Param::Blob(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            Param::NullableText(v) => match v {
                Some(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
                None => ToSqlOutput::Owned(Value::Null),
            },
            Param::NullableInt(v) => match v {
                Some(v) => ToSqlOutput::Owned(Value::Integer(*v)),
                None => ToSqlOutput::Owned(Value::Null),
            },
            Param::NullableBlob(v) => match v {
                Some(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
                None => ToSqlOutput::Owned(Value::Null),
            },
        })
    }
}

impl Columns for Named<'_, '_> {
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.get(name)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.get(name)
    }
    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(name)
    }
}
