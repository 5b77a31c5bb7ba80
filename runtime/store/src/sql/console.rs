//! What the console and the list commands read: runs by filter, counts by status, modules,
//! task queue statistics.

use super::*;

impl SqlStore {
    pub(super) async fn list_runs(
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

    pub(super) async fn count_runs(
        &self,
        filter: &RunFilter,
    ) -> Result<Vec<(RunStatus, u64)>, StoreError> {
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

    pub(super) async fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
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

    pub(super) async fn queue_stats(&self, now_ms: u64) -> Result<Vec<QueueStats>, StoreError> {
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
}
