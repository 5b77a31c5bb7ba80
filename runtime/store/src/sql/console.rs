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
        let select = Statement::with(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs \
                 WHERE ($1 = '' OR status = $1) AND ($2 = '' OR workflow_type = $2) \
                 AND ($3 = '' OR substr(workflow_id, 1, length($3)) = $3) \
                 AND (started_at_ms < $4 OR (started_at_ms = $4 AND ($5 = '' OR run_id < $5))) \
                 ORDER BY started_at_ms DESC, run_id DESC LIMIT $6"
            ),
            vec![
                filter.status.map(|s| s.as_str()).unwrap_or("").into(),
                filter.workflow_type.clone().unwrap_or_default().into(),
                filter.workflow_id_prefix.clone().unwrap_or_default().into(),
                i(before_ms).into(),
                before_id.into(),
                i64::from(limit).into(),
            ],
        );
        self.fetch(Lane::Pool, select, |row| run_from_row(row))
            .await
    }

    pub(super) async fn count_runs(
        &self,
        filter: &RunFilter,
    ) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        // Only the filters that are set, so SQLite can count from the (type, status) index
        // (an `$1 = '' OR ...` condition makes it scan every run).
        let mut select = Statement::new("SELECT status, COUNT(*) AS n FROM runs");
        let mut conditions = 0;
        let mut and = |select: &mut Statement| {
            select.sql(if conditions == 0 { " WHERE " } else { " AND " });
            conditions += 1;
        };
        if let Some(t) = &filter.workflow_type {
            and(&mut select);
            select.sql("workflow_type = ").param(t.clone().into());
        }
        if let Some(p) = &filter.workflow_id_prefix {
            and(&mut select);
            // Bound twice: each `$n` of a built statement appears once.
            select
                .sql("substr(workflow_id, 1, length(")
                .param(p.clone().into())
                .sql(")) = ")
                .param(p.clone().into());
        }
        select.sql(" GROUP BY status");
        self.fetch(Lane::Pool, select, status_count_from_row).await
    }

    pub(super) async fn modules(&self) -> Result<Vec<ModuleRecord>, StoreError> {
        let select = Statement::with(
            "SELECT m.module_id, m.workflow_type, CAST(LENGTH(m.component) AS BIGINT) AS size, m.created_at_ms, \
             CAST((SELECT COUNT(*) FROM runs r WHERE r.module_id = m.module_id AND r.status = 'running') AS BIGINT) AS running, \
             CAST((SELECT COUNT(*) FROM runs r WHERE r.module_id = m.module_id AND r.status <> 'running') AS BIGINT) AS closed, \
             CAST(CASE WHEN t.module_id = m.module_id THEN 1 ELSE 0 END AS BIGINT) AS newest \
             FROM modules m LEFT JOIN workflow_types t ON t.name = m.workflow_type \
             ORDER BY m.workflow_type, m.created_at_ms DESC, m.module_id",
            Vec::new(),
        );
        self.fetch(Lane::Pool, select, module_from_row).await
    }

    pub(super) async fn queue_stats(&self, now_ms: u64) -> Result<Vec<QueueStats>, StoreError> {
        let select = Statement::with(
            "SELECT task_queue, \
             CAST(SUM(CASE WHEN lease_until_ms IS NULL AND visible_at_ms <= $1 THEN 1 ELSE 0 END) AS BIGINT) AS ready, \
             CAST(SUM(CASE WHEN lease_until_ms IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS leased, \
             CAST(SUM(CASE WHEN lease_until_ms IS NULL AND visible_at_ms > $1 THEN 1 ELSE 0 END) AS BIGINT) AS backing_off, \
             MIN(CASE WHEN lease_until_ms IS NULL AND visible_at_ms <= $1 THEN visible_at_ms END) AS oldest \
             FROM activity_tasks GROUP BY task_queue ORDER BY task_queue",
            vec![i(now_ms).into()],
        );
        self.fetch(Lane::Pool, select, queue_stats_from_row).await
    }
}
