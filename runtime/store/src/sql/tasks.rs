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
        drop(gate);
        // PostgreSQL: no write gate, and the claim is one statement.
        self.fetch(Lane::Pool, claim, |row| task_from_row(row))
            .await
    }

    pub(super) async fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.fetch_first(Lane::Step, task_by_id(task_id), |row| task_from_row(row))
            .await
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
        self.fetch(Lane::Step, select, |row| task_from_row(row))
            .await
    }

    pub(super) async fn release_task(
        &self,
        task_id: &str,
        attempt: u32,
        claim_secret: &str,
    ) -> Result<bool, StoreError> {
        let release = Statement::with(
            "UPDATE activity_tasks SET lease_until_ms = NULL, claimed_at_ms = NULL, claim_secret = NULL \
             WHERE task_id = $1 AND attempt = $2 AND claim_secret = $3",
            vec![
                task_id.into(),
                i64::from(attempt).into(),
                claim_secret.into(),
            ],
        );
        Ok(self.execute(release).await? == 1)
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
        self.fetch(Lane::Step, select, |row| task_from_row(row))
            .await
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
        let update = Statement::with(
            "UPDATE activity_tasks SET attempt = attempt + 1, lease_until_ms = NULL, visible_at_ms = $1, \
             last_error_kind = $2, last_error_message = $3 \
             WHERE task_id = $4 AND attempt = $5 AND claim_secret IS NOT DISTINCT FROM $6",
            vec![
                i(visible_at_ms).into(),
                failure.kind.clone().into(),
                failure.message.clone().into(),
                task_id.into(),
                i64::from(attempt).into(),
                claim_secret.into(),
            ],
        );
        if tx.execute(update).await? != 1 {
            return Ok(false);
        }
        let record = Statement::with(
            "INSERT INTO activity_attempts (run_id, handle, attempt, started_at_ms, ended_at_ms, \
             error_kind, error_message, retry_at_ms) \
             SELECT run_id, handle, $1, claimed_at_ms, $2, $3, $4, $5 FROM activity_tasks WHERE task_id = $6 \
             ON CONFLICT (run_id, handle, attempt) DO NOTHING",
            vec![
                i64::from(attempt).into(),
                i(failure.at_ms).into(),
                failure.kind.clone().into(),
                failure.message.clone().into(),
                i(visible_at_ms).into(),
                task_id.into(),
            ],
        );
        tx.execute(record).await?;
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
        let heartbeat = Statement::with(
            "UPDATE activity_tasks SET lease_until_ms = $1, heartbeat_details = $2, last_heartbeat_ms = $3 \
             WHERE task_id = $4 AND attempt = $5 AND lease_until_ms IS NOT NULL",
            vec![
                i(lease_until_ms).into(),
                details.to_vec().into(),
                i(now_ms).into(),
                task_id.into(),
                i64::from(attempt).into(),
            ],
        );
        Ok(self.execute(heartbeat).await? == 1)
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
        self.fetch(Lane::Step, select, |row| timer_from_row(row))
            .await
    }

    pub(super) async fn run_tasks(&self, run_id: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let select = Statement::with(
            &format!("SELECT {TASK_COLUMNS} FROM activity_tasks WHERE run_id = $1 ORDER BY handle"),
            vec![run_id.into()],
        );
        self.fetch(Lane::Pool, select, |row| task_from_row(row))
            .await
    }

    pub(super) async fn run_timers(&self, run_id: &str) -> Result<Vec<TimerRecord>, StoreError> {
        let select = Statement::with(
            "SELECT run_id, handle, fire_at_ms FROM timers WHERE run_id = $1 ORDER BY handle",
            vec![run_id.into()],
        );
        self.fetch(Lane::Pool, select, |row| timer_from_row(row))
            .await
    }

    pub(super) async fn run_attempts(
        &self,
        run_id: &str,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let select = Statement::with(
            "SELECT handle, attempt, started_at_ms, ended_at_ms, error_kind, error_message, retry_at_ms \
             FROM activity_attempts WHERE run_id = $1 ORDER BY handle, attempt",
            vec![run_id.into()],
        );
        self.fetch(Lane::Pool, select, attempt_from_row).await
    }
}
