//! The store's queries, written once for both backends through sqlx's `Any` driver. Where
//! the dialects differ (claiming tasks) [`Dialect`] says how.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};
use weft_history::{ErrorInfo, Event, History, Payload, RunHeader};

use crate::model::*;
use crate::sqlite_thread::SqliteThreads;
use crate::{Store, StoreError};

/// Most rows in one multi-row statement: a power of two, far below both backends' limits on
/// bound parameters.
const ROWS_PER_STATEMENT: usize = 256;

/// Splits `rows` into runs of power-of-two length, largest first (37 rows: 32, 4, 1). A
/// multi-row statement's text then takes one of a few shapes, which both drivers keep
/// prepared, instead of a new text (parsed and planned again) for every count of rows.
fn statement_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let take = ROWS_PER_STATEMENT.min(1 << rows.len().ilog2());
        let (chunk, rest) = rows.split_at(take);
        rows = rest;
        Some(chunk)
    })
}

/// Splits `rows` for a statement that may name a row twice (`IN (...)`, `OR`): runs of at
/// most [`ROWS_PER_STATEMENT`], each padded to a power of two by repeating its last row, so
/// one statement per 256 rows (not one per set bit of the count, as [`statement_chunks`]
/// needs for inserts) and still one of nine texts.
fn padded_chunks<T>(rows: &[T]) -> impl Iterator<Item = impl Iterator<Item = &T>> {
    rows.chunks(ROWS_PER_STATEMENT).map(|chunk| {
        let pad = chunk.len().next_power_of_two() - chunk.len();
        chunk
            .iter()
            .chain(chunk.last().into_iter().cycle().take(pad))
    })
}

/// A column of a multi-row insert: its name and, for PostgreSQL's one-statement form, its
/// type.
type Column = (&'static str, &'static str);

/// Rows to insert into a table, values in `columns`' order.
struct Rows {
    table: &'static str,
    columns: &'static [Column],
    rows: Vec<Vec<Param>>,
}

impl Rows {
    /// SQLite's form: multi-row `VALUES` in [`statement_chunks`] (a statement there is a
    /// function call), each statement with the count of rows it carries.
    fn values(self, suffix: &str) -> Vec<(Statement, usize)> {
        let names = self.names();
        let sizes: Vec<usize> = statement_chunks(&self.rows).map(<[_]>::len).collect();
        let mut rows = self.rows.into_iter();
        sizes
            .into_iter()
            .map(|size| {
                let mut insert =
                    Statement::new(&format!("INSERT INTO {} ({names}) VALUES ", self.table));
                for (n, row) in rows.by_ref().take(size).enumerate() {
                    insert.sep(n, ", ").sql("(");
                    for (c, value) in row.into_iter().enumerate() {
                        insert.sep(c, ", ").param(value);
                    }
                    insert.sql(")");
                }
                insert.sql(suffix);
                (insert, size)
            })
            .collect()
    }

    /// PostgreSQL's form: one statement whatever the count, reading the rows from one JSON
    /// parameter (`None` without rows). Each statement is a round trip there, and the
    /// power-of-two chunks made one per set bit of the count (2.4 event inserts per batch
    /// in session 11's log).
    fn recordset(&self, suffix: &str) -> Option<Statement> {
        if self.rows.is_empty() {
            return None;
        }
        let mut json = String::from("[");
        for (n, row) in self.rows.iter().enumerate() {
            json.push_str(if n == 0 { "{" } else { ",{" });
            for (c, ((name, _), value)) in self.columns.iter().zip(row).enumerate() {
                if c > 0 {
                    json.push(',');
                }
                json.push('"');
                json.push_str(name);
                json.push_str("\":");
                value.write_json(&mut json);
            }
            json.push('}');
        }
        json.push(']');
        // Binary columns travel as hex: JSON has no bytes.
        let select = self
            .columns
            .iter()
            .map(|(name, ty)| match *ty {
                "bytea" => format!("decode(x.{name}, 'hex')"),
                _ => format!("x.{name}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let record = self
            .columns
            .iter()
            .map(|(name, ty)| format!("{name} {}", if *ty == "bytea" { "text" } else { ty }))
            .collect::<Vec<_>>()
            .join(", ");
        let mut insert = Statement::new(&format!(
            "INSERT INTO {} ({}) SELECT {select} FROM json_to_recordset(",
            self.table,
            self.names()
        ));
        insert
            .param(Param::Text(json))
            .sql(&format!("::json) AS x({record}){suffix}"));
        Some(insert)
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        names.join(", ")
    }
}

/// PostgreSQL: `statements` as one, the first ones as data-modifying `WITH` queries of the
/// last, so that they cost one round trip. They share one snapshot: none may need another's
/// rows (inserts into different tables; deletes that come after them).
fn chained(statements: Vec<Statement>) -> Option<Statement> {
    let count = statements.len();
    let mut out = Statement::new(if count > 1 { "WITH " } else { "" });
    for (n, statement) in statements.into_iter().enumerate() {
        if n + 1 < count {
            out.sep(n, ", ").sql(&format!("w{n} AS ("));
            out.append(statement);
            out.sql(")");
        } else {
            out.sql(if n > 0 { " " } else { "" });
            out.append(statement);
        }
    }
    (count > 0).then_some(out)
}

/// A value bound to a statement built at run time.
pub(crate) enum Param {
    Text(String),
    Int(i64),
    Blob(Vec<u8>),
    NullableText(Option<String>),
    NullableInt(Option<i64>),
    NullableBlob(Option<Vec<u8>>),
}

impl Param {
    /// The value as JSON, bytes as a hex string (see [`Rows::recordset`]).
    fn write_json(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Param::Text(v) | Param::NullableText(Some(v)) => {
                out.push_str(&serde_json::Value::from(v.as_str()).to_string());
            }
            Param::Int(v) | Param::NullableInt(Some(v)) => {
                let _ = write!(out, "{v}");
            }
            Param::Blob(v) | Param::NullableBlob(Some(v)) => {
                out.push('"');
                for byte in v {
                    let _ = write!(out, "{byte:02x}");
                }
                out.push('"');
            }
            Param::NullableText(None) | Param::NullableInt(None) | Param::NullableBlob(None) => {
                out.push_str("null");
            }
        }
    }
}

/// SQL text and its parameters, built together so every `$n` gets its value. Each `$n`
/// appears once and in order, so SQLite (which numbers named parameters by first
/// appearance) binds them by position as PostgreSQL does: one statement serves both
/// drivers, sqlx's and the SQLite connection thread's.
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
}

impl Statement {
    fn new(sql: &str) -> Self {
        Statement {
            sql: sql.to_owned(),
            params: Vec::new(),
        }
    }

    fn sql(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    /// `separator` before every item but the first.
    fn sep(&mut self, index: usize, separator: &str) -> &mut Self {
        if index > 0 {
            self.sql.push_str(separator);
        }
        self
    }

    fn param(&mut self, value: Param) -> &mut Self {
        self.params.push(value);
        self.sql.push_str(&format!("${}", self.params.len()));
        self
    }

    /// Appends `other`, its `$n` numbered on after this one's.
    fn append(&mut self, other: Statement) {
        let offset = self.params.len();
        let mut rest = other.sql.as_str();
        while let Some(at) = rest.find('$') {
            self.sql.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            match rest[..digits].parse::<usize>() {
                Ok(n) => self.sql.push_str(&(n + offset).to_string()),
                Err(_) => self.sql.push_str(&rest[..digits]),
            }
            rest = &rest[digits..];
        }
        self.sql.push_str(rest);
        self.params.extend(other.params);
    }

    /// The statement as a sqlx query.
    fn query(self) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(AssertSqlSafe(self.sql));
        for param in self.params {
            query = match param {
                Param::Text(v) => query.bind(v),
                Param::Int(v) => query.bind(v),
                Param::Blob(v) => query.bind(v),
                Param::NullableText(v) => query.bind(v),
                Param::NullableInt(v) => query.bind(v),
                Param::NullableBlob(v) => query.bind(v),
            };
        }
        query
    }

    /// Runs it in `tx`; returns the rows affected.
    async fn execute(self, tx: &mut Transaction<'_, Any>) -> Result<u64, StoreError> {
        Ok(self.query().execute(&mut **tx).await?.rows_affected())
    }
}

/// Which database the pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The store on a SQL database (SQLite or PostgreSQL).
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite writers queue here rather than on SQLite's lock, whose busy handler sleeps
    /// up to 100 ms between tries.
    write_gate: Arc<Mutex<()>>,
    /// SQLite: the per-workflow calls' own connections (`None` on PostgreSQL).
    threads: Option<Arc<SqliteThreads>>,
}

const RUN_COLUMNS: &str = "run_id, workflow_id, workflow_type, task_queue, run_number, module_id, \
    input, seed, status, output, error_kind, error_message, started_at_ms, closed_at_ms, history_length, \
    parent_run_id, parent_handle, owner, trace_context";
const TASK_COLUMNS: &str = "task_id, run_id, workflow_id, handle, task_queue, activity_name, input, \
    options, attempt, scheduled_at_ms, lease_until_ms, heartbeat_details, claimed_at_ms, \
    last_heartbeat_ms, last_error_kind, last_error_message, trace_context, claim_secret";

fn corrupt(what: &str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

// Integers are stored as BIGINT (i64); times and seqs fit, the seed keeps its bits.
fn i(v: u64) -> i64 {
    v as i64
}
fn u(v: i64) -> u64 {
    v as u64
}

/// A row's columns by name, from either driver (sqlx's `AnyRow`, or rusqlite's row on the
/// SQLite connection thread), so each record is read from a row in one place.
pub(crate) trait Columns {
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError>;
    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    fn text(&self, name: &str) -> Result<String, StoreError> {
        self.opt_text(name)?
            .ok_or_else(|| corrupt(name, "NULL where a value is required"))
    }
    fn int(&self, name: &str) -> Result<i64, StoreError> {
        self.opt_int(name)?
            .ok_or_else(|| corrupt(name, "NULL where a value is required"))
    }
    fn blob(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.opt_blob(name)?
            .ok_or_else(|| corrupt(name, "NULL where a value is required"))
    }
}

impl Columns for AnyRow {
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(name)?)
    }
    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.try_get(name)?)
    }
}

pub(crate) fn run_from_row(row: &(impl Columns + ?Sized)) -> Result<RunRecord, StoreError> {
    let status = row.text("status")?;
    Ok(RunRecord {
        run_id: row.text("run_id")?,
        workflow_id: row.text("workflow_id")?,
        workflow_type: row.text("workflow_type")?,
        task_queue: row.text("task_queue")?,
        run_number: row.int("run_number")? as u32,
        module_id: row.text("module_id")?,
        input: Payload(row.blob("input")?),
        seed: u(row.int("seed")?),
        status: RunStatus::parse(&status).ok_or_else(|| corrupt("run status", &status))?,
        output: row.opt_blob("output")?.map(Payload),
        error: row
            .opt_text("error_kind")?
            .map(|kind| -> Result<ErrorInfo, StoreError> {
                Ok(ErrorInfo {
                    kind,
                    message: row.opt_text("error_message")?.unwrap_or_default(),
                    attempts: 0,
                })
            })
            .transpose()?,
        started_at_ms: u(row.int("started_at_ms")?),
        closed_at_ms: row.opt_int("closed_at_ms")?.map(u),
        history_length: u(row.int("history_length")?),
        parent: match (
            row.opt_text("parent_run_id")?,
            row.opt_int("parent_handle")?,
        ) {
            (Some(run_id), Some(handle)) => Some((run_id, handle as u32)),
            _ => None,
        },
        owner: row.opt_text("owner")?,
        trace_context: row.opt_text("trace_context")?,
    })
}

pub(crate) fn task_from_row(row: &(impl Columns + ?Sized)) -> Result<TaskRecord, StoreError> {
    let options = row.text("options")?;
    Ok(TaskRecord {
        task_id: row.text("task_id")?,
        run_id: row.text("run_id")?,
        workflow_id: row.text("workflow_id")?,
        handle: row.int("handle")? as u32,
        task_queue: row.text("task_queue")?,
        activity_name: row.text("activity_name")?,
        input: Payload(row.blob("input")?),
        options: serde_json::from_str(&options).map_err(|e| corrupt("activity options", e))?,
        attempt: row.int("attempt")? as u32,
        scheduled_at_ms: u(row.int("scheduled_at_ms")?),
        lease_until_ms: row.opt_int("lease_until_ms")?.map(u),
        heartbeat_details: row.opt_blob("heartbeat_details")?,
        claimed_at_ms: row.opt_int("claimed_at_ms")?.map(u),
        last_heartbeat_ms: row.opt_int("last_heartbeat_ms")?.map(u),
        last_error: row
            .opt_text("last_error_kind")?
            .map(|kind| -> Result<ErrorInfo, StoreError> {
                Ok(ErrorInfo {
                    kind,
                    message: row.opt_text("last_error_message")?.unwrap_or_default(),
                    attempts: 0,
                })
            })
            .transpose()?,
        trace_context: row.opt_text("trace_context")?,
        claim_secret: row.opt_text("claim_secret")?,
    })
}

const TOKEN_COLUMNS: &str = "name, hash, role, queues, types, created_at_ms, expires_at_ms, \
    last_used_ms, revoked_at_ms";

fn list(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref().map(|v| v.join(","))
}

fn token_from_row(row: &AnyRow) -> Result<TokenRecord, StoreError> {
    let split = |v: Option<String>| v.map(|v| v.split(',').map(str::to_owned).collect());
    Ok(TokenRecord {
        name: row.try_get("name")?,
        hash: row.try_get("hash")?,
        role: row.try_get("role")?,
        queues: split(row.try_get("queues")?),
        types: split(row.try_get("types")?),
        created_at_ms: u(row.try_get("created_at_ms")?),
        expires_at_ms: row.try_get::<Option<i64>, _>("expires_at_ms")?.map(u),
        last_used_ms: row.try_get::<Option<i64>, _>("last_used_ms")?.map(u),
        revoked_at_ms: row.try_get::<Option<i64>, _>("revoked_at_ms")?.map(u),
    })
}

pub(crate) fn timer_from_row(row: &(impl Columns + ?Sized)) -> Result<TimerRecord, StoreError> {
    Ok(TimerRecord {
        run_id: row.text("run_id")?,
        handle: u32::try_from(row.int("handle")?).map_err(|e| corrupt("timer handle", e))?,
        fire_at_ms: u(row.int("fire_at_ms")?),
    })
}

fn inbox_from_row(row: &(impl Columns + ?Sized)) -> Result<InboxItem, StoreError> {
    Ok(InboxItem {
        id: row.int("id")?,
        run_id: row.text("run_id")?,
        command: row.text("command")?,
    })
}

/// One statement of a batch, with what its outcome means.
pub(crate) enum BatchStatement {
    /// Any outcome is fine.
    Write(Statement),
    /// Inserts runs, skipping any that conflicts: it must insert one row per run, or the
    /// batch fails ([`not_created`] says why: the workflow id has a running run,
    /// [`StoreError::AlreadyRunning`], or the run exists already).
    CreateRuns {
        statement: Statement,
        runs: Vec<Create>,
    },
    /// Fences and advances runs (each with the first seq of its step's events): it must
    /// change one row per run, or the batch fails ([`first_not_advanced`] finds which run,
    /// [`not_advanced`] says why).
    AdvanceRuns {
        statement: Statement,
        runs: Vec<Advance>,
    },
}

/// The statements that write a batch, in order: the run rows (created, or fenced and
/// advanced); then every step's events, tasks and timers in a few multi-row statements; then
/// the rows the steps finished. A created run left running is inserted with its step's
/// length. A run stepped once in the batch, and not created by it, is
/// advanced by a multi-row `UPDATE` with the other such runs (closes before everything else,
/// so a run of the same workflow id created further on finds none running; plain advances
/// after); the other steps write their run row one statement each, in order. On PostgreSQL,
/// where each statement is a round trip, a run of creates is one statement whatever its
/// length, the events, tasks and timers are one, and the deletes are one ([`chained`]): 1,000
/// hello workflows wrote 6.1 statements per batch besides `BEGIN` and `COMMIT`, now 2.6.
pub(crate) fn batch_statements(
    dialect: Dialect,
    batch: &Batch,
) -> Result<Vec<BatchStatement>, StoreError> {
    let node = batch.node.as_str();
    let mut out = Vec::new();
    for routed in &batch.routed {
        let mut insert =
            Statement::new("INSERT INTO inbox (owner, run_id, command, created_at_ms) VALUES (");
        insert
            .param(Param::Text(routed.owner.clone()))
            .sql(", ")
            .param(Param::Text(routed.run_id.clone()))
            .sql(", ")
            .param(Param::Text(routed.command.clone()))
            .sql(", ")
            .param(Param::Int(i(routed.created_at_ms)))
            .sql(")");
        out.push(BatchStatement::Write(insert));
    }
    for chunk in padded_chunks(&batch.inbox_done) {
        let mut delete = Statement::new("DELETE FROM inbox WHERE id IN (");
        for (n, id) in chunk.enumerate() {
            delete.sep(n, ", ").param(Param::Int(*id));
        }
        delete.sql(")");
        out.push(BatchStatement::Write(delete));
    }
    let mut steps_of_run: HashMap<&str, usize> = HashMap::new();
    for step in &batch.steps {
        *steps_of_run.entry(step.run_id.as_str()).or_default() += 1;
    }
    let grouped = |step: &StepWrite| {
        step.create.is_none()
            && step.pin_module.is_none()
            && !step.events.is_empty()
            && steps_of_run.get(step.run_id.as_str()) == Some(&1)
    };
    let (closes, advances): (Vec<&StepWrite>, Vec<&StepWrite>) = batch
        .steps
        .iter()
        .filter(|s| grouped(s))
        .partition(|s| s.close.is_some());
    for chunk in closes.chunks(ROWS_PER_STATEMENT) {
        out.push(advance_runs(node, chunk));
    }
    // Created runs go in multi-row inserts of the runs created one after another, so a step
    // written on its own stays in order with them.
    let mut creates: Vec<(&RunRecord, u64)> = Vec::new();
    for step in batch.steps.iter().filter(|s| !grouped(s)) {
        if let Some(run) = &step.create {
            // A run that its step leaves running is inserted with the step's length: no fence
            // to check on a row the batch makes. (One that closes at once is inserted running,
            // then closed, so that the unique index still stops a second running run of its
            // workflow id.)
            if step.close.is_none()
                && step.pin_module.is_none()
                && step.events.first().is_none_or(|e| e.seq == 1)
            {
                creates.push((run, step.events.last().map_or(0, |e| e.seq)));
                continue;
            }
            creates.push((run, 0));
        }
        out.extend(insert_runs(dialect, node, &creates));
        creates.clear();
        out.push(BatchStatement::AdvanceRuns {
            statement: advance_run(node, step),
            runs: vec![Advance {
                run_id: step.run_id.clone(),
                first: step.events.first().map(|e| e.seq),
                last: step.events.last().map(|e| e.seq),
            }],
        });
    }
    out.extend(insert_runs(dialect, node, &creates));
    for chunk in advances.chunks(ROWS_PER_STATEMENT) {
        out.push(advance_runs(node, chunk));
    }

    let events: Vec<(&str, &Event)> = batch
        .steps
        .iter()
        .flat_map(|s| s.events.iter().map(move |e| (s.run_id.as_str(), e)))
        .collect();
    let mut rows = Vec::with_capacity(events.len());
    for (run_id, event) in &events {
        let json = serde_json::to_string(event).map_err(|e| corrupt("event", e))?;
        rows.push(vec![
            Param::Text((*run_id).to_owned()),
            Param::Int(i(event.seq)),
            Param::Text(json),
        ]);
    }
    let events = Rows {
        table: "events",
        columns: &[("run_id", "text"), ("seq", "bigint"), ("event", "text")],
        rows,
    };

    let tasks: Vec<(&str, &NewTask)> = batch
        .steps
        .iter()
        .flat_map(|s| s.new_tasks.iter().map(move |t| (s.run_id.as_str(), t)))
        .collect();
    let mut rows = Vec::with_capacity(tasks.len());
    for (run_id, task) in &tasks {
        let options = serde_json::to_string(&task.options).map_err(|e| corrupt("options", e))?;
        rows.push(vec![
            Param::Text(format!("{run_id}/{}", task.handle)),
            Param::Text((*run_id).to_owned()),
            Param::Text(task.workflow_id.clone()),
            Param::Int(i64::from(task.handle)),
            Param::Text(task.task_queue.clone()),
            Param::Text(task.activity_name.clone()),
            Param::Blob(task.input.0.clone()),
            Param::Text(options),
            Param::Int(1),
            Param::Int(i(task.scheduled_at_ms)),
            Param::Int(i(task.scheduled_at_ms)),
            Param::NullableInt(attempt_lease_ms(&task.options).map(i)),
            Param::NullableText(task.trace_context.clone()),
            Param::NullableInt(task.options.schedule_to_start_timeout_ms.map(i)),
            Param::NullableInt(task.claim.as_ref().map(|c| i(c.lease_until_ms))),
            Param::NullableInt(task.claim.as_ref().map(|c| i(c.claimed_at_ms))),
            Param::NullableText(task.claim.as_ref().map(|c| c.secret.clone())),
        ]);
    }
    let tasks = Rows {
        table: "activity_tasks",
        columns: &[
            ("task_id", "text"),
            ("run_id", "text"),
            ("workflow_id", "text"),
            ("handle", "bigint"),
            ("task_queue", "text"),
            ("activity_name", "text"),
            ("input", "bytea"),
            ("options", "text"),
            ("attempt", "integer"),
            ("scheduled_at_ms", "bigint"),
            ("visible_at_ms", "bigint"),
            ("lease_ms", "bigint"),
            ("trace_context", "text"),
            ("start_within_ms", "bigint"),
            ("lease_until_ms", "bigint"),
            ("claimed_at_ms", "bigint"),
            ("claim_secret", "text"),
        ],
        rows,
    };

    let timers: Vec<&TimerRecord> = batch.steps.iter().flat_map(|s| &s.new_timers).collect();
    let rows: Vec<Vec<Param>> = timers
        .iter()
        .map(|timer| {
            vec![
                Param::Text(timer.run_id.clone()),
                Param::Int(i64::from(timer.handle)),
                Param::Int(i(timer.fire_at_ms)),
            ]
        })
        .collect();
    let timers = Rows {
        table: "timers",
        columns: &[
            ("run_id", "text"),
            ("handle", "bigint"),
            ("fire_at_ms", "bigint"),
        ],
        rows,
    };
    // PostgreSQL: one statement for all three tables (each statement is a round trip).
    let inserts: Vec<Statement> = match dialect {
        Dialect::Sqlite => [events, tasks, timers]
            .into_iter()
            .flat_map(|rows| rows.values(""))
            .map(|(insert, _)| insert)
            .collect(),
        Dialect::Postgres => chained(
            [events, tasks, timers]
                .iter()
                .filter_map(|rows| rows.recordset(""))
                .collect(),
        )
        .into_iter()
        .collect(),
    };
    out.extend(inserts.into_iter().map(BatchStatement::Write));

    // Deletes come after the inserts (a task scheduled and cancelled in one batch goes), in
    // one statement on PostgreSQL.
    let mut deletes = Vec::new();
    let done_tasks: Vec<&String> = batch.steps.iter().flat_map(|s| &s.done_tasks).collect();
    for chunk in padded_chunks(&done_tasks) {
        let mut delete = Statement::new("DELETE FROM activity_tasks WHERE task_id IN (");
        for (n, task_id) in chunk.enumerate() {
            delete.sep(n, ", ").param(Param::Text((*task_id).clone()));
        }
        delete.sql(")");
        deletes.push(delete);
    }
    let done_timers: Vec<(&str, u32)> = batch
        .steps
        .iter()
        .flat_map(|s| s.done_timers.iter().map(move |h| (s.run_id.as_str(), *h)))
        .collect();
    for chunk in padded_chunks(&done_timers) {
        let mut delete = Statement::new("DELETE FROM timers WHERE ");
        for (n, (run_id, handle)) in chunk.enumerate() {
            delete
                .sep(n, " OR ")
                .sql("(run_id = ")
                .param(Param::Text((*run_id).to_owned()))
                .sql(" AND handle = ")
                .param(Param::Int(i64::from(*handle)))
                .sql(")");
        }
        deletes.push(delete);
    }
    // A closed run keeps no pending work.
    let closed: Vec<&str> = batch
        .steps
        .iter()
        .filter(|s| s.close.is_some())
        .map(|s| s.run_id.as_str())
        .collect();
    for chunk in closed.chunks(ROWS_PER_STATEMENT) {
        for table in ["activity_tasks", "timers"] {
            let mut delete = Statement::new(&format!("DELETE FROM {table} WHERE run_id IN ("));
            for (n, run_id) in padded_chunks(chunk).flatten().enumerate() {
                delete.sep(n, ", ").param(Param::Text((*run_id).to_owned()));
            }
            delete.sql(")");
            deletes.push(delete);
        }
    }
    match dialect {
        Dialect::Sqlite => out.extend(deletes.into_iter().map(BatchStatement::Write)),
        Dialect::Postgres => out.extend(chained(deletes).map(BatchStatement::Write)),
    }
    Ok(out)
}

/// Inserts new running runs, owned by `node`, each with its history's length; a run whose
/// workflow id has a running run, or whose id exists, is skipped (and the batch then fails).
fn insert_runs(dialect: Dialect, node: &str, runs: &[(&RunRecord, u64)]) -> Vec<BatchStatement> {
    const COLUMNS: &[Column] = &[
        ("run_id", "text"),
        ("workflow_id", "text"),
        ("workflow_type", "text"),
        ("task_queue", "text"),
        ("run_number", "integer"),
        ("module_id", "text"),
        ("input", "bytea"),
        ("seed", "bigint"),
        ("status", "text"),
        ("output", "bytea"),
        ("error_kind", "text"),
        ("error_message", "text"),
        ("started_at_ms", "bigint"),
        ("closed_at_ms", "bigint"),
        ("history_length", "integer"),
        ("parent_run_id", "text"),
        ("parent_handle", "bigint"),
        ("owner", "text"),
        ("trace_context", "text"),
    ];
    let rows: Vec<Vec<Param>> = runs
        .iter()
        .map(|(run, history_length)| {
            vec![
                Param::Text(run.run_id.clone()),
                Param::Text(run.workflow_id.clone()),
                Param::Text(run.workflow_type.clone()),
                Param::Text(run.task_queue.clone()),
                Param::Int(i64::from(run.run_number)),
                Param::Text(run.module_id.clone()),
                Param::Blob(run.input.0.clone()),
                Param::Int(i(run.seed)),
                Param::Text(RunStatus::Running.as_str().to_owned()),
                Param::NullableBlob(None),
                Param::NullableText(None),
                Param::NullableText(None),
                Param::Int(i(run.started_at_ms)),
                Param::NullableInt(None),
                Param::Int(i(*history_length)),
                Param::NullableText(run.parent.as_ref().map(|(id, _)| id.clone())),
                Param::NullableInt(run.parent.as_ref().map(|(_, h)| i64::from(*h))),
                Param::Text(node.to_owned()),
                Param::NullableText(run.trace_context.clone()),
            ]
        })
        .collect();
    let rows = Rows {
        table: "runs",
        columns: COLUMNS,
        rows,
    };
    let statements = match dialect {
        Dialect::Sqlite => rows.values(" ON CONFLICT DO NOTHING"),
        Dialect::Postgres => rows
            .recordset(" ON CONFLICT DO NOTHING")
            .map(|insert| (insert, runs.len()))
            .into_iter()
            .collect(),
    };
    let mut runs = runs;
    statements
        .into_iter()
        .map(|(statement, count)| {
            let (these, rest) = runs.split_at(count);
            runs = rest;
            BatchStatement::CreateRuns {
                statement,
                runs: these
                    .iter()
                    .map(|(run, _)| Create {
                        run_id: run.run_id.clone(),
                        workflow_id: run.workflow_id.clone(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A run a [`BatchStatement::CreateRuns`] inserts.
pub(crate) struct Create {
    pub(crate) run_id: String,
    pub(crate) workflow_id: String,
}

/// Why a [`BatchStatement::CreateRuns`] inserted too few rows, from what the same
/// transaction reads after it: per run, the running run of its workflow id
/// ([`running_run_of`]), and the first run's [`run_state`]. The first run whose workflow id
/// has another running run is [`StoreError::AlreadyRunning`]; else a run id was taken
/// before this batch (ids are random: a batch written twice), reported on the first run.
pub(crate) fn not_created(
    node: &str,
    runs: &[Create],
    running: Vec<Option<String>>,
    first_state: Option<RunState>,
) -> StoreError {
    for (run, running) in runs.iter().zip(running) {
        if let Some(other) = running.filter(|id| *id != run.run_id) {
            return StoreError::AlreadyRunning {
                workflow_id: run.workflow_id.clone(),
                run_id: other,
            };
        }
    }
    match runs.first() {
        Some(run) => not_advanced(&run.run_id, node, Some(1), first_state),
        None => StoreError::Unavailable("no run to create".into()),
    }
}

/// Advances a run's row past `step` (and closes it), if `node` owns it and its stored
/// history ends right before the step's first event: the fence and the contiguity check in
/// one statement.
fn advance_run(node: &str, step: &StepWrite) -> Statement {
    let mut update = Statement::new("UPDATE runs SET history_length = ");
    match step.events.last() {
        Some(last) => update.param(Param::Int(i(last.seq))),
        None => update.sql("history_length"),
    };
    if let Some(module_id) = &step.pin_module {
        update
            .sql(", module_id = ")
            .param(Param::Text(module_id.clone()));
    }
    if let Some(close) = &step.close {
        close_values(
            &mut update,
            close,
            [
                ", status = ",
                ", output = ",
                ", error_kind = ",
                ", error_message = ",
                ", closed_at_ms = ",
            ],
        );
    }
    update
        .sql(" WHERE run_id = ")
        .param(Param::Text(step.run_id.clone()))
        .sql(" AND owner = ")
        .param(Param::Text(node.to_owned()))
        .sql(" AND status = 'running'");
    if let Some(first) = step.events.first() {
        update
            .sql(" AND history_length = ")
            .param(Param::Int(i(first.seq.saturating_sub(1))));
    }
    update
}

/// Appends what a close writes (status, output, error kind, error message, closed at), each
/// value after its text in `before`.
fn close_values(statement: &mut Statement, close: &RunClose, before: [&str; 5]) {
    let values = [
        Param::Text(close.status.as_str().to_owned()),
        Param::NullableBlob(close.output.as_ref().map(|p| p.0.clone())),
        Param::NullableText(close.error.as_ref().map(|e| e.kind.clone())),
        Param::NullableText(close.error.as_ref().map(|e| e.message.clone())),
        Param::Int(i(close.closed_at_ms)),
    ];
    for (sql, value) in before.into_iter().zip(values) {
        statement.sql(sql).param(value);
    }
}

/// Advances runs that each have events, all closing or none and none re-pinned, with the
/// fence of [`advance_run`]: one `UPDATE ... FROM (VALUES ...)`, which SQLite (3.33+) and
/// PostgreSQL read alike (the rows' columns are `column1`, `column2`, ...).
fn advance_runs(node: &str, steps: &[&StepWrite]) -> BatchStatement {
    let closing = steps.first().is_some_and(|s| s.close.is_some());
    let mut update = Statement::new("UPDATE runs SET history_length = v.column3");
    if closing {
        update.sql(
            ", status = v.column4, output = v.column5, error_kind = v.column6, \
             error_message = v.column7, closed_at_ms = v.column8",
        );
    }
    update.sql(" FROM (VALUES ");
    let mut runs = Vec::with_capacity(steps.len());
    // Padded with copies of the last row (the text stays one of nine): a run matched by two
    // identical rows is updated once, and counted once.
    for (n, step) in padded_chunks(steps).flatten().enumerate() {
        let first = step.events.first().map_or(0, |e| e.seq);
        let last = step.events.last().map_or(0, |e| e.seq);
        update
            .sep(n, ", ")
            .sql("(")
            .param(Param::Text(step.run_id.clone()))
            .sql(", ")
            .param(Param::Int(i(first.saturating_sub(1))))
            .sql(", ")
            .param(Param::Int(i(last)));
        if let Some(close) = &step.close {
            close_values(&mut update, close, [", "; 5]);
        }
        update.sql(")");
        if n < steps.len() {
            runs.push(Advance {
                run_id: step.run_id.clone(),
                first: Some(first),
                last: Some(last),
            });
        }
    }
    // `COALESCE(owner, '')`, not `owner`: while the statistics say few runs are running (a
    // fresh database), PostgreSQL walked `runs_by_owner` (every running run of the node) and
    // matched each against every row of the values, 1 ms a batch with 200 runs in flight;
    // this way each row finds its run by the primary key whatever the statistics say.
    update
        .sql(") AS v WHERE runs.run_id = v.column1 AND COALESCE(runs.owner, '') = ")
        .param(Param::Text(node.to_owned()))
        .sql(" AND runs.status = 'running' AND runs.history_length = v.column2");
    BatchStatement::AdvanceRuns {
        statement: update,
        runs,
    }
}

/// A run an [`BatchStatement::AdvanceRuns`] advances: the first and last seqs of its step's
/// events (none for a step without events).
pub(crate) struct Advance {
    pub(crate) run_id: String,
    pub(crate) first: Option<u64>,
    pub(crate) last: Option<u64>,
}

/// The stored `(history_length, owner, status)` of a run ([`run_state`]).
pub(crate) type RunState = (i64, Option<String>, String);

/// Why an [`BatchStatement::AdvanceRuns`] changed too few rows, from the state of each of
/// its runs read after it in the same transaction: the first run its statement did not
/// advance (an advanced one shows this node and the step's last seq).
pub(crate) fn first_not_advanced(
    node: &str,
    runs: &[Advance],
    states: Vec<Option<RunState>>,
) -> StoreError {
    let single = runs.len() == 1;
    for (run, state) in runs.iter().zip(states) {
        let advanced = state.as_ref().is_some_and(|(length, owner, _)| {
            owner.as_deref() == Some(node) && run.last.is_some_and(|last| u(*length) == last)
        });
        if single || !advanced {
            return not_advanced(&run.run_id, node, run.first, state);
        }
    }
    StoreError::Unavailable(format!(
        "a fenced update of {} runs changed fewer rows than runs, yet each run shows its step; try again",
        runs.len()
    ))
}

/// What [`not_advanced`] needs to know of a run: `history_length`, `owner`, `status`.
pub(crate) fn run_state(run_id: &str) -> Statement {
    let mut select =
        Statement::new("SELECT history_length, owner, status FROM runs WHERE run_id = ");
    select.param(Param::Text(run_id.to_owned()));
    select
}

/// Why a run's step did not apply, from its stored state (`None`: no such run): another
/// owner, a gap in the history, or a closed run.
pub(crate) fn not_advanced(
    run_id: &str,
    node: &str,
    first: Option<u64>,
    state: Option<(i64, Option<String>, String)>,
) -> StoreError {
    let (stored, owner, status) = state
        .map(|(length, owner, status)| (u(length), owner, status))
        .unwrap_or((0, None, String::new()));
    if owner.as_deref() != Some(node) {
        return StoreError::NotOwner {
            run_id: run_id.to_owned(),
            node: node.to_owned(),
        };
    }
    StoreError::NotContiguous {
        run_id: run_id.to_owned(),
        stored,
        first: first.unwrap_or(stored + 1),
        status,
    }
}

/// The running run of a workflow id, for [`StoreError::AlreadyRunning`].
pub(crate) fn running_run_of(workflow_id: &str) -> Statement {
    select_runs(
        "workflow_id = ",
        Param::Text(workflow_id.to_owned()),
        " AND status = 'running'",
    )
}

/// `SELECT` of whole runs: `clause` then one bound value then `rest`.
fn select_runs(clause: &str, value: Param, rest: &str) -> Statement {
    let mut select = Statement::new(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE {clause}"));
    select.param(value).sql(rest);
    select
}

/// The running runs of `workflow_ids` (at most [`ROWS_PER_STATEMENT`]; padded to a power
/// of two, so the text stays prepared).
fn running_of(workflow_ids: &[String]) -> Statement {
    let mut select = Statement::new(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' AND workflow_id IN ("
    ));
    for (n, workflow_id) in padded_chunks(workflow_ids).flatten().enumerate() {
        select.sep(n, ", ").param(Param::Text(workflow_id.clone()));
    }
    select.sql(")");
    select
}

pub(crate) fn run_by_id(run_id: &str) -> Statement {
    select_runs("run_id = ", Param::Text(run_id.to_owned()), "")
}

pub(crate) fn latest_run_of(workflow_id: &str) -> Statement {
    select_runs(
        "workflow_id = ",
        Param::Text(workflow_id.to_owned()),
        " ORDER BY started_at_ms DESC, run_number DESC LIMIT 1",
    )
}

pub(crate) fn task_by_id(task_id: &str) -> Statement {
    let mut select = Statement::new(&format!(
        "SELECT {TASK_COLUMNS} FROM activity_tasks WHERE task_id = "
    ));
    select.param(Param::Text(task_id.to_owned()));
    select
}

/// Leases up to `max` visible tasks of a queue (see [`Store::claim_tasks`]).
pub(crate) fn claim_statement(
    dialect: Dialect,
    task_queue: &str,
    max: u32,
    now_ms: u64,
    default_lease_ms: u64,
    claim_secret: &str,
) -> Statement {
    let lock = match dialect {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        // SQLite has one writer at a time; the UPDATE is atomic.
        Dialect::Sqlite => "",
    };
    let mut update = Statement::new("UPDATE activity_tasks SET lease_until_ms = ");
    update
        .param(Param::Int(i(now_ms)))
        .sql(" + COALESCE(lease_ms, ")
        .param(Param::Int(i(default_lease_ms)))
        .sql("), claimed_at_ms = ")
        .param(Param::Int(i(now_ms)))
        .sql(", last_heartbeat_ms = NULL, claim_secret = ")
        .param(Param::Text(claim_secret.to_owned()))
        .sql(
            " WHERE task_id IN (SELECT task_id FROM activity_tasks \
             WHERE task_queue = ",
        )
        .param(Param::Text(task_queue.to_owned()))
        .sql(" AND lease_until_ms IS NULL AND visible_at_ms <= ")
        .param(Param::Int(i(now_ms)))
        .sql(" ORDER BY visible_at_ms LIMIT ")
        .param(Param::Int(i64::from(max)))
        .sql(&format!("{lock}) RETURNING {TASK_COLUMNS}"));
    update
}

impl SqlStore {
    pub(crate) fn new(pool: AnyPool, dialect: Dialect, threads: Option<SqliteThreads>) -> Self {
        SqlStore {
            pool,
            dialect,
            write_gate: Arc::default(),
            threads: threads.map(Arc::new),
        }
    }

    /// Closes every connection, after the calls in flight end.
    pub async fn close(&self) {
        if let Some(threads) = &self.threads {
            threads.close().await;
        }
        self.pool.close().await;
    }

    /// Held by every write on SQLite (one writer at a time); nothing on PostgreSQL.
    async fn gate(&self) -> Option<OwnedMutexGuard<()>> {
        match self.dialect {
            Dialect::Sqlite => Some(self.write_gate.clone().lock_owned().await),
            Dialect::Postgres => None,
        }
    }

    /// A transaction that will write. On SQLite it takes the write lock up front: a
    /// transaction that reads first and upgrades later fails with SQLITE_BUSY when another
    /// connection wrote in between, where waiting for the lock succeeds.
    async fn begin_write(
        &self,
    ) -> Result<(Option<OwnedMutexGuard<()>>, Transaction<'static, Any>), StoreError> {
        let gate = self.gate().await;
        let tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        };
        Ok((gate, tx))
    }

    /// A run's [`run_state`], read in `tx`.
    async fn run_state_in(
        tx: &mut Transaction<'_, Any>,
        run_id: &str,
    ) -> Result<Option<RunState>, StoreError> {
        let row = run_state(run_id).query().fetch_optional(&mut **tx).await?;
        row.map(|row| -> Result<_, StoreError> {
            Ok((
                row.int("history_length")?,
                row.opt_text("owner")?,
                row.text("status")?,
            ))
        })
        .transpose()
    }

    /// Writes a batch in `tx` through sqlx (PostgreSQL; SQLite's batches go to its
    /// connection thread, `sqlite_thread`).
    async fn write_batch(
        dialect: Dialect,
        tx: &mut Transaction<'_, Any>,
        batch: &Batch,
    ) -> Result<(), StoreError> {
        for planned in batch_statements(dialect, batch)? {
            match planned {
                BatchStatement::Write(statement) => {
                    statement.execute(tx).await?;
                }
                BatchStatement::CreateRuns { statement, runs } => {
                    if statement.execute(tx).await? != runs.len() as u64 {
                        let mut running = Vec::with_capacity(runs.len());
                        for run in &runs {
                            let found = running_run_of(&run.workflow_id)
                                .query()
                                .fetch_all(&mut **tx)
                                .await?;
                            let found: Vec<RunRecord> =
                                found.iter().map(run_from_row).collect::<Result<_, _>>()?;
                            running.push(found.into_iter().next().map(|r| r.run_id));
                        }
                        let first_state = match runs.first() {
                            Some(run) => Self::run_state_in(tx, &run.run_id).await?,
                            None => None,
                        };
                        return Err(not_created(&batch.node, &runs, running, first_state));
                    }
                }
                BatchStatement::AdvanceRuns { statement, runs } => {
                    if statement.execute(tx).await? != runs.len() as u64 {
                        let mut states = Vec::with_capacity(runs.len());
                        for run in &runs {
                            states.push(Self::run_state_in(tx, &run.run_id).await?);
                        }
                        return Err(first_not_advanced(&batch.node, &runs, states));
                    }
                }
            }
        }
        Ok(())
    }

    /// The rows a `SELECT` finds, each read by `read` (on SQLite, through its read thread,
    /// whose plans do not depend on a bound `LIMIT`; sqlx's connections prepared such a
    /// statement again on every call).
    async fn fetch<T: Send + 'static>(
        &self,
        select: Statement,
        read: fn(&dyn Columns) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        if let Some(threads) = &self.threads {
            return threads.select(select, move |row| read(row)).await;
        }
        let rows = select.query().fetch_all(&self.pool).await?;
        rows.iter().map(|row| read(row)).collect()
    }

    async fn runs_where(&self, clause: &str, bind: &str) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE {clause}"
        )))
        .bind(bind)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn put_module(
        &self,
        workflow_type: &str,
        module_id: &str,
        component: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO modules (module_id, workflow_type, component, created_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (module_id) DO NOTHING",
        )
        .bind(module_id)
        .bind(workflow_type)
        .bind(component.to_vec())
        .bind(i(now_ms))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO workflow_types (name, module_id, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET module_id = excluded.module_id, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(workflow_type)
        .bind(module_id)
        .bind(i(now_ms))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn module(&self, module_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT component FROM modules WHERE module_id = $1")
                .bind(module_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn newest_module(&self, workflow_type: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT module_id FROM workflow_types WHERE name = $1")
                .bind(workflow_type)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if let Some(threads) = &self.threads {
            let statements = batch_statements(Dialect::Sqlite, batch)?;
            let gate = self.gate().await;
            return threads.commit(statements, batch.node.clone(), gate).await;
        }
        let (_gate, mut tx) = self.begin_write().await?;
        Self::write_batch(self.dialect, &mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self
            .fetch(run_by_id(run_id), |row| run_from_row(row))
            .await?
            .pop())
    }

    async fn latest_run(&self, workflow_id: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self
            .fetch(latest_run_of(workflow_id), |row| run_from_row(row))
            .await?
            .pop())
    }

    async fn running_runs_of(&self, workflow_ids: &[String]) -> Result<Vec<RunRecord>, StoreError> {
        let mut runs = Vec::new();
        for chunk in workflow_ids.chunks(ROWS_PER_STATEMENT) {
            runs.extend(
                self.fetch(running_of(chunk), |row| run_from_row(row))
                    .await?,
            );
        }
        Ok(runs)
    }

    async fn list_runs(
        &self,
        filter: &RunFilter,
        before: Option<(u64, String)>,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        // Optional filters are written so every query binds the same parameters.
        let (before_ms, before_id) = before.unwrap_or((u64::MAX >> 1, String::new()));
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs \
             WHERE ($1 = '' OR status = $1) AND ($2 = '' OR workflow_type = $2) \
             AND ($6 = '' OR substr(workflow_id, 1, length($6)) = $6) \
             AND (started_at_ms < $3 OR (started_at_ms = $3 AND ($4 = '' OR run_id < $4))) \
             ORDER BY started_at_ms DESC, run_id DESC LIMIT $5"
        )))
        .bind(filter.status.map(|s| s.as_str()).unwrap_or(""))
        .bind(filter.workflow_type.clone().unwrap_or_default())
        .bind(i(before_ms))
        .bind(before_id)
        .bind(i64::from(limit))
        .bind(filter.workflow_id_prefix.clone().unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn history(&self, run_id: &str) -> Result<Option<History>, StoreError> {
        let Some(run) = self.run(run_id).await? else {
            return Ok(None);
        };
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT event FROM events WHERE run_id = $1 ORDER BY seq")
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
        let events = rows
            .iter()
            .map(|json| serde_json::from_str::<Event>(json).map_err(|e| corrupt("event", e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(History {
            format: weft_history::HISTORY_FORMAT,
            header: RunHeader {
                workflow_id: run.workflow_id,
                run_id: run.run_id,
                workflow_type: run.workflow_type,
                task_queue: run.task_queue,
                run_number: run.run_number,
                module_sha256: run.module_id,
                input: run.input,
                seed: run.seed,
            },
            events,
        }))
    }

    async fn running_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.runs_where("status = $1", RunStatus::Running.as_str())
            .await
    }

    async fn claim_tasks(
        &self,
        task_queue: &str,
        max: u32,
        now_ms: u64,
        default_lease_ms: u64,
        claim_secret: &str,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let claim = claim_statement(
            self.dialect,
            task_queue,
            max,
            now_ms,
            default_lease_ms,
            claim_secret,
        );
        let gate = self.gate().await;
        if let Some(threads) = &self.threads {
            return threads.claim(claim, gate).await;
        }
        let rows = claim.query().fetch_all(&self.pool).await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self
            .fetch(task_by_id(task_id), |row| task_from_row(row))
            .await?
            .pop())
    }

    async fn expired_tasks(&self, now_ms: u64, limit: u32) -> Result<Vec<TaskRecord>, StoreError> {
        let mut select = Statement::new(&format!(
            "SELECT {TASK_COLUMNS} FROM activity_tasks WHERE lease_until_ms IS NOT NULL AND lease_until_ms < "
        ));
        select
            .param(Param::Int(i(now_ms)))
            .sql(" ORDER BY lease_until_ms LIMIT ")
            .param(Param::Int(i64::from(limit)));
        self.fetch(select, |row| task_from_row(row)).await
    }

    async fn release_task(
        &self,
        task_id: &str,
        attempt: u32,
        claim_secret: &str,
    ) -> Result<bool, StoreError> {
        let _gate = self.gate().await;
        let done = sqlx::query(
            "UPDATE activity_tasks SET lease_until_ms = NULL, claimed_at_ms = NULL, claim_secret = NULL \
             WHERE task_id = $1 AND attempt = $2 AND claim_secret = $3",
        )
        .bind(task_id)
        .bind(attempt as i32)
        .bind(claim_secret)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unstarted_tasks(
        &self,
        now_ms: u64,
        limit: u32,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let mut select = Statement::new(&format!(
            "SELECT {TASK_COLUMNS} FROM activity_tasks WHERE lease_until_ms IS NULL \
             AND start_within_ms IS NOT NULL AND visible_at_ms + start_within_ms < "
        ));
        select
            .param(Param::Int(i(now_ms)))
            .sql(" ORDER BY visible_at_ms LIMIT ")
            .param(Param::Int(i64::from(limit)));
        self.fetch(select, |row| task_from_row(row)).await
    }

    async fn retry_task(
        &self,
        task_id: &str,
        attempt: u32,
        claim_secret: Option<&str>,
        visible_at_ms: u64,
        failure: &AttemptFailure,
    ) -> Result<bool, StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        // The attempt as the caller saw it: a claim made since (a new secret) wins.
        let done = sqlx::query(
            "UPDATE activity_tasks SET attempt = attempt + 1, lease_until_ms = NULL, visible_at_ms = $3, \
             last_error_kind = $4, last_error_message = $5 \
             WHERE task_id = $1 AND attempt = $2 AND claim_secret IS NOT DISTINCT FROM $6",
        )
        .bind(task_id)
        .bind(attempt as i32)
        .bind(i(visible_at_ms))
        .bind(&failure.kind)
        .bind(&failure.message)
        .bind(claim_secret)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO activity_attempts (run_id, handle, attempt, started_at_ms, ended_at_ms, \
             error_kind, error_message, retry_at_ms) \
             SELECT run_id, handle, $2, claimed_at_ms, $3, $4, $5, $6 FROM activity_tasks WHERE task_id = $1 \
             ON CONFLICT (run_id, handle, attempt) DO NOTHING",
        )
        .bind(task_id)
        .bind(attempt as i32)
        .bind(i(failure.at_ms))
        .bind(&failure.kind)
        .bind(&failure.message)
        .bind(i(visible_at_ms))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn heartbeat(
        &self,
        task_id: &str,
        attempt: u32,
        details: &[u8],
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<bool, StoreError> {
        let _gate = self.gate().await;
        let done = sqlx::query(
            "UPDATE activity_tasks SET lease_until_ms = $4, heartbeat_details = $3, last_heartbeat_ms = $5 \
             WHERE task_id = $1 AND attempt = $2 AND lease_until_ms IS NOT NULL",
        )
        .bind(task_id)
        .bind(attempt as i32)
        .bind(details.to_vec())
        .bind(i(lease_until_ms))
        .bind(i(now_ms))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn due_timers(
        &self,
        node: &str,
        now_ms: u64,
        limit: u32,
    ) -> Result<Vec<TimerRecord>, StoreError> {
        // A timer's run is running (a close deletes its timers); saying so lets the planner
        // use `runs_by_owner` where it scanned every run ever stored.
        let mut select = Statement::new(
            "SELECT t.run_id, t.handle, t.fire_at_ms FROM timers t JOIN runs r ON r.run_id = t.run_id \
             WHERE t.fire_at_ms <= ",
        );
        select
            .param(Param::Int(i(now_ms)))
            .sql(" AND r.owner = ")
            .param(Param::Text(node.to_owned()))
            .sql(" AND r.status = 'running' ORDER BY t.fire_at_ms LIMIT ")
            .param(Param::Int(i64::from(limit)));
        self.fetch(select, |row| timer_from_row(row)).await
    }

    fn single_node(&self) -> bool {
        self.dialect == Dialect::Sqlite
    }

    async fn renew_node(&self, node: &str, lease_until_ms: u64) -> Result<bool, StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        let renewed = sqlx::query("UPDATE nodes SET lease_until_ms = $2 WHERE node_id = $1")
            .bind(node)
            .bind(i(lease_until_ms))
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !renewed {
            sqlx::query("INSERT INTO nodes (node_id, lease_until_ms) VALUES ($1, $2)")
                .bind(node)
                .bind(i(lease_until_ms))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(renewed)
    }

    async fn node_alive(&self, node: &str, now_ms: u64) -> Result<bool, StoreError> {
        let alive: Option<i64> = sqlx::query_scalar(
            "SELECT lease_until_ms FROM nodes WHERE node_id = $1 AND lease_until_ms >= $2",
        )
        .bind(node)
        .bind(i(now_ms))
        .fetch_optional(&self.pool)
        .await?;
        Ok(alive.is_some())
    }

    async fn adopt_orphans(&self, node: &str, now_ms: u64) -> Result<u64, StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        let adopted = sqlx::query(
            "UPDATE runs SET owner = $1 WHERE status = 'running' AND (owner IS NULL OR (owner <> $1 \
             AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = runs.owner AND n.lease_until_ms >= $2)))",
        )
        .bind(node)
        .bind(i(now_ms))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE inbox SET owner = $1 WHERE owner <> $1 \
             AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = inbox.owner AND n.lease_until_ms >= $2)",
        )
        .bind(node)
        .bind(i(now_ms))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM nodes WHERE node_id <> $1 AND lease_until_ms < $2")
            .bind(node)
            .bind(i(now_ms))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(adopted)
    }

    async fn adopt_run(&self, run_id: &str, node: &str, now_ms: u64) -> Result<bool, StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        sqlx::query(
            "UPDATE runs SET owner = $2 WHERE run_id = $1 AND status = 'running' AND (owner IS NULL \
             OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = runs.owner AND n.lease_until_ms >= $3))",
        )
        .bind(run_id)
        .bind(node)
        .bind(i(now_ms))
        .execute(&mut *tx)
        .await?;
        let owner: Option<Option<String>> =
            sqlx::query_scalar("SELECT owner FROM runs WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(owner.flatten().as_deref() == Some(node))
    }

    async fn count_runs(&self, filter: &RunFilter) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        // Only the filters that are set, so SQLite can count from the (type, status) index
        // (an `$1 = '' OR ...` condition makes it scan every run).
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        if let Some(t) = &filter.workflow_type {
            binds.push(t.clone());
            conditions.push(format!("workflow_type = ${}", binds.len()));
        }
        if let Some(p) = &filter.workflow_id_prefix {
            binds.push(p.clone());
            let n = binds.len();
            conditions.push(format!("substr(workflow_id, 1, length(${n})) = ${n}"));
        }
        let clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let mut query = sqlx::query(AssertSqlSafe(format!(
            "SELECT status, COUNT(*) AS n FROM runs {clause} GROUP BY status"
        )));
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                let n: i64 = row.try_get("n")?;
                Ok((
                    RunStatus::parse(&status).ok_or_else(|| corrupt("run status", &status))?,
                    u(n),
                ))
            })
            .collect()
    }

    async fn run_tasks(&self, run_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM activity_tasks WHERE run_id = $1 ORDER BY handle"
        )))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn run_timers(&self, run_id: &str) -> Result<Vec<TimerRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT run_id, handle, fire_at_ms FROM timers WHERE run_id = $1 ORDER BY handle",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(timer_from_row).collect()
    }

    async fn run_attempts(&self, run_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT handle, attempt, started_at_ms, ended_at_ms, error_kind, error_message, retry_at_ms \
             FROM activity_attempts WHERE run_id = $1 ORDER BY handle, attempt",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptRecord {
                    handle: row.try_get::<i64, _>("handle")? as u32,
                    attempt: row.try_get::<i32, _>("attempt")? as u32,
                    started_at_ms: row.try_get::<Option<i64>, _>("started_at_ms")?.map(u),
                    ended_at_ms: u(row.try_get("ended_at_ms")?),
                    error_kind: row.try_get("error_kind")?,
                    error_message: row.try_get("error_message")?,
                    retry_at_ms: u(row.try_get("retry_at_ms")?),
                })
            })
            .collect()
    }

    async fn child_runs(&self, run_id: &str) -> Result<Vec<RunRecord>, StoreError> {
        self.runs_where(
            "parent_run_id = $1 ORDER BY parent_handle, started_at_ms",
            run_id,
        )
        .await
    }

    async fn runs_numbered(
        &self,
        workflow_id: &str,
        run_number: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = $1 AND run_number = $2 \
             ORDER BY started_at_ms DESC"
        )))
        .bind(workflow_id)
        .bind(run_number as i32)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.module_id, m.workflow_type, CAST(LENGTH(m.component) AS BIGINT) AS size, m.created_at_ms, \
             CAST((SELECT COUNT(*) FROM runs r WHERE r.module_id = m.module_id AND r.status = 'running') AS BIGINT) AS running, \
             CAST((SELECT COUNT(*) FROM runs r WHERE r.module_id = m.module_id AND r.status <> 'running') AS BIGINT) AS closed, \
             CAST(CASE WHEN t.module_id = m.module_id THEN 1 ELSE 0 END AS BIGINT) AS newest \
             FROM modules m LEFT JOIN workflow_types t ON t.name = m.workflow_type \
             ORDER BY m.workflow_type, m.created_at_ms DESC, m.module_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ModuleRecord {
                    workflow_type: row.try_get("workflow_type")?,
                    module_id: row.try_get("module_id")?,
                    size_bytes: u(row.try_get("size")?),
                    uploaded_at_ms: u(row.try_get("created_at_ms")?),
                    newest: row.try_get::<i64, _>("newest")? == 1,
                    running_runs: u(row.try_get("running")?),
                    closed_runs: u(row.try_get("closed")?),
                })
            })
            .collect()
    }

    async fn queue_stats(&self, now_ms: u64) -> Result<Vec<QueueStats>, StoreError> {
        let rows = sqlx::query(
            "SELECT task_queue, \
             CAST(SUM(CASE WHEN lease_until_ms IS NULL AND visible_at_ms <= $1 THEN 1 ELSE 0 END) AS BIGINT) AS ready, \
             CAST(SUM(CASE WHEN lease_until_ms IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS leased, \
             CAST(SUM(CASE WHEN lease_until_ms IS NULL AND visible_at_ms > $1 THEN 1 ELSE 0 END) AS BIGINT) AS backing_off, \
             MIN(CASE WHEN lease_until_ms IS NULL AND visible_at_ms <= $1 THEN visible_at_ms END) AS oldest \
             FROM activity_tasks GROUP BY task_queue ORDER BY task_queue",
        )
        .bind(i(now_ms))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QueueStats {
                    task_queue: row.try_get("task_queue")?,
                    ready: u(row.try_get("ready")?),
                    leased: u(row.try_get("leased")?),
                    backing_off: u(row.try_get("backing_off")?),
                    oldest_ready_since_ms: row.try_get::<Option<i64>, _>("oldest")?.map(u),
                })
            })
            .collect()
    }

    async fn inbox(&self, node: &str, limit: u32) -> Result<Vec<InboxItem>, StoreError> {
        let mut select = Statement::new("SELECT id, run_id, command FROM inbox WHERE owner = ");
        select
            .param(Param::Text(node.to_owned()))
            .sql(" ORDER BY id LIMIT ")
            .param(Param::Int(i64::from(limit)));
        self.fetch(select, |row| inbox_from_row(row)).await
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let _gate = self.gate().await;
        let inserted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)"
        )))
        .bind(&token.name)
        .bind(&token.hash)
        .bind(&token.role)
        .bind(list(&token.queues))
        .bind(list(&token.types))
        .bind(i(token.created_at_ms))
        .bind(token.expires_at_ms.map(i))
        .execute(&self.pool)
        .await;
        match inserted {
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(StoreError::TokenExists(token.name.clone()))
            }
            other => other.map(|_| ()).map_err(StoreError::from),
        }
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"
        )))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, name: &str, now_ms: u64) -> Result<bool, StoreError> {
        let _gate = self.gate().await;
        let done = sqlx::query(
            "UPDATE tokens SET revoked_at_ms = $2 WHERE name = $1 AND revoked_at_ms IS NULL",
        )
        .bind(name)
        .bind(i(now_ms))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_token(&self, name: &str, now_ms: u64) -> Result<(), StoreError> {
        let _gate = self.gate().await;
        sqlx::query("UPDATE tokens SET last_used_ms = $2 WHERE name = $1")
            .bind(name)
            .bind(i(now_ms))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn append_audit(&self, entry: &AuditRecord) -> Result<(), StoreError> {
        let _gate = self.gate().await;
        sqlx::query(
            "INSERT INTO audit (at_ms, actor, action, target, peer, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(i(entry.at_ms))
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.peer)
        .bind(&entry.outcome)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn audit_since(&self, since_ms: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, actor, action, target, peer, outcome FROM audit \
             WHERE at_ms >= $1 ORDER BY at_ms, id LIMIT $2",
        )
        .bind(i(since_ms))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRecord {
                    at_ms: u(row.try_get("at_ms")?),
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    peer: row.try_get("peer")?,
                    outcome: row.try_get("outcome")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_chunks_cover_the_rows_in_one_power_of_two_statement_per_256() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..1_100usize {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<Vec<usize>> =
                padded_chunks(&rows).map(|c| c.copied().collect()).collect();
            assert_eq!(chunks.len(), n.div_ceil(ROWS_PER_STATEMENT), "{n} rows");
            let mut seen: Vec<usize> = chunks.iter().flatten().copied().collect();
            seen.dedup();
            assert_eq!(
                seen, rows,
                "every row once, in order, padding next to its row"
            );
            for chunk in &chunks {
                assert!(chunk.len().is_power_of_two() && chunk.len() <= ROWS_PER_STATEMENT);
                shapes.insert(chunk.len());
            }
        }
        assert_eq!(shapes.len(), 9, "1, 2, 4, ... 256 rows: {shapes:?}");
    }

    #[test]
    fn statement_chunks_cover_the_rows_in_power_of_two_runs() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..1_100usize {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = statement_chunks(&rows).collect();
            assert_eq!(chunks.concat(), rows, "{n} rows");
            for pair in chunks.windows(2) {
                assert!(pair[0].len() >= pair[1].len(), "{n} rows: largest first");
            }
            for chunk in chunks {
                assert!(chunk.len().is_power_of_two() && chunk.len() <= ROWS_PER_STATEMENT);
                shapes.insert(chunk.len());
            }
        }
        // 1, 2, 4, ... 256: every count of rows is written with nine statement texts.
        assert_eq!(shapes.len(), 9);
    }

    #[test]
    fn chained_statements_number_their_parameters_on() {
        let mut first = Statement::new("DELETE FROM a WHERE x IN (");
        first
            .param(Param::Int(1))
            .sql(", ")
            .param(Param::Int(2))
            .sql(")");
        let mut second = Statement::new("DELETE FROM b WHERE y = ");
        second.param(Param::Int(3));
        let mut third = Statement::new("DELETE FROM c WHERE z = ");
        third.param(Param::Int(4));
        let one = chained(vec![first, second, third]).expect("three statements");
        assert_eq!(
            one.sql,
            "WITH w0 AS (DELETE FROM a WHERE x IN ($1, $2)), w1 AS (DELETE FROM b WHERE y = $3) \
             DELETE FROM c WHERE z = $4"
        );
        let values: Vec<i64> = one
            .params
            .iter()
            .map(|p| match p {
                Param::Int(v) => *v,
                _ => panic!("an int"),
            })
            .collect();
        assert_eq!(values, [1, 2, 3, 4]);
        let mut alone = Statement::new("DELETE FROM c WHERE z = ");
        alone.param(Param::Int(4));
        assert_eq!(
            chained(vec![alone]).map(|s| s.sql),
            Some("DELETE FROM c WHERE z = $1".to_owned())
        );
        assert!(chained(Vec::new()).is_none());
    }

    #[test]
    fn a_recordset_carries_its_rows_as_json_with_bytes_in_hex() {
        let rows = Rows {
            table: "t",
            columns: &[
                ("name", "text"),
                ("n", "bigint"),
                ("data", "bytea"),
                ("note", "text"),
            ],
            rows: vec![
                vec![
                    Param::Text("quote \" and\nline".into()),
                    Param::Int(-7),
                    Param::Blob(vec![0, 0xff, 0x10]),
                    Param::NullableText(None),
                ],
                vec![
                    Param::Text("b".into()),
                    Param::NullableInt(Some(1 << 40)),
                    Param::NullableBlob(None),
                    Param::NullableText(Some("x".into())),
                ],
            ],
        };
        let insert = rows.recordset(" ON CONFLICT DO NOTHING").expect("rows");
        assert_eq!(
            insert.sql,
            "INSERT INTO t (name, n, data, note) SELECT x.name, x.n, decode(x.data, 'hex'), x.note \
             FROM json_to_recordset($1::json) AS x(name text, n bigint, data text, note text) \
             ON CONFLICT DO NOTHING"
        );
        let [Param::Text(json)] = insert.params.as_slice() else {
            panic!("one JSON parameter");
        };
        let parsed: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!([
                {"name": "quote \" and\nline", "n": -7, "data": "00ff10", "note": null},
                {"name": "b", "n": 1_i64 << 40, "data": null, "note": "x"},
            ])
        );
        let empty = Rows {
            rows: Vec::new(),
            ..rows
        };
        assert!(empty.recordset("").is_none());
    }
}
