//! The commit plan: a batch of steps as the few statements that write it (runs created and
//! advanced under the fence, events, tasks, timers, deletes, the inbox), and what a refused
//! fence or creation means, and the one interpreter of the plan (`write_plan`), which both
//! drivers run: sqlx's transactions, and rusqlite's on SQLite's writer thread
//! (`sqlite_thread.rs`).

use super::*;

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
            Param::Text(task_id(run_id, task.handle)),
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
pub(crate) fn insert_runs(
    dialect: Dialect,
    node: &str,
    runs: &[(&RunRecord, u64)],
) -> Vec<BatchStatement> {
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
pub(crate) fn advance_run(node: &str, step: &StepWrite) -> Statement {
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
pub(crate) fn close_values(statement: &mut Statement, close: &RunClose, before: [&str; 5]) {
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
pub(crate) fn advance_runs(node: &str, steps: &[&StepWrite]) -> BatchStatement {
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

/// Writes a batch's statements in `tx`: the one interpreter of the plan, for both drivers
/// (sqlx's transaction here; rusqlite's on SQLite's writer thread, `sqlite_thread.rs`). A
/// statement that changed fewer rows than it must stops the batch with why, read in the same
/// transaction, which the caller then drops.
pub(crate) async fn write_plan(
    tx: &mut impl Transact,
    node: &str,
    statements: Vec<BatchStatement>,
) -> Result<(), StoreError> {
    for planned in statements {
        match planned {
            BatchStatement::Write(statement) => {
                tx.execute(statement).await?;
            }
            BatchStatement::CreateRuns { statement, runs } => {
                if tx.execute(statement).await? != runs.len() as u64 {
                    let mut running = Vec::with_capacity(runs.len());
                    for run in &runs {
                        let found = tx
                            .rows(running_run_of(&run.workflow_id), |row| row.text("run_id"))
                            .await?;
                        running.push(found.into_iter().next());
                    }
                    let first_state = match runs.first() {
                        Some(run) => stored_state(tx, &run.run_id).await?,
                        None => None,
                    };
                    return Err(not_created(node, &runs, running, first_state));
                }
            }
            BatchStatement::AdvanceRuns { statement, runs } => {
                if tx.execute(statement).await? != runs.len() as u64 {
                    let mut states = Vec::with_capacity(runs.len());
                    for run in &runs {
                        states.push(stored_state(tx, &run.run_id).await?);
                    }
                    return Err(first_not_advanced(node, &runs, states));
                }
            }
        }
    }
    Ok(())
}

/// A run's [`run_state`], read in `tx`.
async fn stored_state(
    tx: &mut impl Transact,
    run_id: &str,
) -> Result<Option<RunState>, StoreError> {
    Ok(tx
        .rows(run_state(run_id), run_state_from_row)
        .await?
        .into_iter()
        .next())
}

impl SqlStore {
    pub(super) async fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let statements = batch_statements(self.dialect, batch)?;
        if let Some(threads) = &self.threads {
            let gate = self.gate().await;
            return threads.commit(statements, batch.node.clone(), gate).await;
        }
        let (_gate, mut tx) = self.begin_write().await?;
        write_plan(&mut tx, &batch.node, statements).await?;
        tx.commit().await?;
        Ok(())
    }
}
