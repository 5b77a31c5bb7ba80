//! Reading rows: the column lists of each record, and one reader per record kind over any
//! row (`Columns`: sqlx's `AnyRow`, or a rusqlite row on SQLite's threads).

use sqlx::Row;

use super::*;

pub(crate) const RUN_COLUMNS: &str = "run_id, workflow_id, workflow_type, task_queue, run_number, module_id, \
    input, seed, status, output, error_kind, error_message, started_at_ms, closed_at_ms, history_length, \
    parent_run_id, parent_handle, owner, trace_context";

pub(crate) const TASK_COLUMNS: &str = "task_id, run_id, workflow_id, handle, task_queue, activity_name, input, \
    options, attempt, scheduled_at_ms, lease_until_ms, heartbeat_details, claimed_at_ms, \
    last_heartbeat_ms, last_error_kind, last_error_message, trace_context, claim_secret";

pub(crate) const TOKEN_COLUMNS: &str = "name, hash, role, queues, types, created_at_ms, expires_at_ms, \
    last_used_ms, revoked_at_ms";

pub(crate) fn corrupt(what: &str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

// Integers are stored as BIGINT (i64); times and seqs fit, the seed keeps its bits.
pub(crate) fn i(v: u64) -> i64 {
    v as i64
}

pub(crate) fn u(v: i64) -> u64 {
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

pub(crate) fn list(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref().map(|v| v.join(","))
}

pub(crate) fn token_from_row(row: &dyn Columns) -> Result<TokenRecord, StoreError> {
    let split = |v: Option<String>| v.map(|v| v.split(',').map(str::to_owned).collect());
    Ok(TokenRecord {
        name: row.text("name")?,
        hash: row.text("hash")?,
        role: row.text("role")?,
        queues: split(row.opt_text("queues")?),
        types: split(row.opt_text("types")?),
        created_at_ms: u(row.int("created_at_ms")?),
        expires_at_ms: row.opt_int("expires_at_ms")?.map(u),
        last_used_ms: row.opt_int("last_used_ms")?.map(u),
        revoked_at_ms: row.opt_int("revoked_at_ms")?.map(u),
    })
}

pub(crate) fn attempt_from_row(row: &dyn Columns) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        handle: u32::try_from(row.int("handle")?).map_err(|e| corrupt("attempt handle", e))?,
        attempt: u32::try_from(row.int("attempt")?).map_err(|e| corrupt("attempt number", e))?,
        started_at_ms: row.opt_int("started_at_ms")?.map(u),
        ended_at_ms: u(row.int("ended_at_ms")?),
        error_kind: row.text("error_kind")?,
        error_message: row.text("error_message")?,
        retry_at_ms: u(row.int("retry_at_ms")?),
    })
}

pub(crate) fn audit_from_row(row: &dyn Columns) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        at_ms: u(row.int("at_ms")?),
        actor: row.text("actor")?,
        action: row.text("action")?,
        target: row.text("target")?,
        peer: row.text("peer")?,
        outcome: row.text("outcome")?,
    })
}

pub(crate) fn module_from_row(row: &dyn Columns) -> Result<ModuleRecord, StoreError> {
    Ok(ModuleRecord {
        workflow_type: row.text("workflow_type")?,
        module_id: row.text("module_id")?,
        size_bytes: u(row.int("size")?),
        uploaded_at_ms: u(row.int("created_at_ms")?),
        newest: row.int("newest")? == 1,
        running_runs: u(row.int("running")?),
        closed_runs: u(row.int("closed")?),
    })
}

pub(crate) fn queue_stats_from_row(row: &dyn Columns) -> Result<QueueStats, StoreError> {
    Ok(QueueStats {
        task_queue: row.text("task_queue")?,
        ready: u(row.int("ready")?),
        leased: u(row.int("leased")?),
        backing_off: u(row.int("backing_off")?),
        oldest_ready_since_ms: row.opt_int("oldest")?.map(u),
    })
}

/// A run's status and how many of it: a row of `count_runs`.
pub(crate) fn status_count_from_row(row: &dyn Columns) -> Result<(RunStatus, u64), StoreError> {
    let status = row.text("status")?;
    Ok((
        RunStatus::parse(&status).ok_or_else(|| corrupt("run status", &status))?,
        u(row.int("n")?),
    ))
}

/// A run's [`RunState`], from a row of [`run_state`].
pub(crate) fn run_state_from_row(row: &dyn Columns) -> Result<RunState, StoreError> {
    Ok((
        row.int("history_length")?,
        row.opt_text("owner")?,
        row.text("status")?,
    ))
}

pub(crate) fn timer_from_row(row: &(impl Columns + ?Sized)) -> Result<TimerRecord, StoreError> {
    Ok(TimerRecord {
        run_id: row.text("run_id")?,
        handle: u32::try_from(row.int("handle")?).map_err(|e| corrupt("timer handle", e))?,
        fire_at_ms: u(row.int("fire_at_ms")?),
    })
}

pub(crate) fn inbox_from_row(row: &(impl Columns + ?Sized)) -> Result<InboxItem, StoreError> {
    Ok(InboxItem {
        id: row.int("id")?,
        run_id: row.text("run_id")?,
        command: row.text("command")?,
    })
}
