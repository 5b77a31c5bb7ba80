//! Activity tasks and timers: claims (`FOR UPDATE SKIP LOCKED` on PostgreSQL), leases that
//! run out, retries, heartbeats, timers coming due, and a run's tasks, timers and attempts.

use super::*;

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
    pub(super) async fn claim_tasks(
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

    pub(super) async fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self
            .fetch(task_by_id(task_id), |row| task_from_row(row))
            .await?
            .pop())
    }

    pub(super) async fn expired_tasks(
        &self,
        now_ms: u64,
        limit: u32,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let mut select = Statement::new(&format!(
            "SELECT {TASK_COLUMNS} FROM activity_tasks WHERE lease_until_ms IS NOT NULL AND lease_until_ms < "
        ));
        select
            .param(Param::Int(i(now_ms)))
            .sql(" ORDER BY lease_until_ms LIMIT ")
            .param(Param::Int(i64::from(limit)));
        self.fetch(select, |row| task_from_row(row)).await
    }

    pub(super) async fn release_task(
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

    pub(super) async fn unstarted_tasks(
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

    pub(super) async fn retry_task(
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

    pub(super) async fn heartbeat(
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

    pub(super) async fn due_timers(
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

    pub(super) async fn run_tasks(&self, run_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM activity_tasks WHERE run_id = $1 ORDER BY handle"
        )))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    pub(super) async fn run_timers(&self, run_id: &str) -> Result<Vec<TimerRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT run_id, handle, fire_at_ms FROM timers WHERE run_id = $1 ORDER BY handle",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(timer_from_row).collect()
    }

    pub(super) async fn run_attempts(
        &self,
        run_id: &str,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
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
}
