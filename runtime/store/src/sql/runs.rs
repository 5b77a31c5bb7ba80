//! Runs and modules: modules stored and found by type, runs read by id, by workflow id and by
//! parent, histories.

use super::*;

/// The running run of a workflow id, for [`StoreError::AlreadyRunning`].
pub(crate) fn running_run_of(workflow_id: &str) -> Statement {
    select_runs(
        "workflow_id = ",
        Param::Text(workflow_id.to_owned()),
        " AND status = 'running'",
    )
}

/// `SELECT` of whole runs: `clause` then one bound value then `rest`.
pub(crate) fn select_runs(clause: &str, value: Param, rest: &str) -> Statement {
    let mut select = Statement::new(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE {clause}"));
    select.param(value).sql(rest);
    select
}

/// The running runs of `workflow_ids` (at most [`ROWS_PER_STATEMENT`]; padded to a power
/// of two, so the text stays prepared).
pub(crate) fn running_of(workflow_ids: &[String]) -> Statement {
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

impl SqlStore {
    pub(super) async fn put_module(
        &self,
        workflow_type: &str,
        module_id: &str,
        component: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        let module = Statement::with(
            "INSERT INTO modules (module_id, workflow_type, component, created_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (module_id) DO NOTHING",
            vec![
                module_id.into(),
                workflow_type.into(),
                component.to_vec().into(),
                i(now_ms).into(),
            ],
        );
        tx.execute(module).await?;
        let newest = Statement::with(
            "INSERT INTO workflow_types (name, module_id, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET module_id = excluded.module_id, updated_at_ms = excluded.updated_at_ms",
            vec![workflow_type.into(), module_id.into(), i(now_ms).into()],
        );
        tx.execute(newest).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn module(&self, module_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let select = Statement::with(
            "SELECT component FROM modules WHERE module_id = $1",
            vec![module_id.into()],
        );
        self.fetch_first(Lane::Pool, select, |row| row.blob("component"))
            .await
    }

    pub(super) async fn newest_module(
        &self,
        workflow_type: &str,
    ) -> Result<Option<String>, StoreError> {
        let select = Statement::with(
            "SELECT module_id FROM workflow_types WHERE name = $1",
            vec![workflow_type.into()],
        );
        self.fetch_first(Lane::Pool, select, |row| row.text("module_id"))
            .await
    }

    pub(super) async fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.fetch_first(Lane::Step, run_by_id(run_id), |row| run_from_row(row))
            .await
    }

    pub(super) async fn latest_run(
        &self,
        workflow_id: &str,
    ) -> Result<Option<RunRecord>, StoreError> {
        self.fetch_first(Lane::Step, latest_run_of(workflow_id), |row| {
            run_from_row(row)
        })
        .await
    }

    pub(super) async fn running_runs_of(
        &self,
        workflow_ids: &[String],
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut runs = Vec::new();
        for chunk in workflow_ids.chunks(ROWS_PER_STATEMENT) {
            runs.extend(
                self.fetch(Lane::Step, running_of(chunk), |row| run_from_row(row))
                    .await?,
            );
        }
        Ok(runs)
    }

    pub(super) async fn history(&self, run_id: &str) -> Result<Option<History>, StoreError> {
        let Some(run) = self.run(run_id).await? else {
            return Ok(None);
        };
        let select = Statement::with(
            "SELECT event FROM events WHERE run_id = $1 ORDER BY seq",
            vec![run_id.into()],
        );
        let events = self
            .fetch(Lane::Pool, select, |row| {
                serde_json::from_str::<Event>(&row.text("event")?).map_err(|e| corrupt("event", e))
            })
            .await?;
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

    pub(super) async fn running_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let select = select_runs("status = ", RunStatus::Running.as_str().into(), "");
        self.fetch(Lane::Pool, select, |row| run_from_row(row))
            .await
    }

    pub(super) async fn child_runs(&self, run_id: &str) -> Result<Vec<RunRecord>, StoreError> {
        let select = select_runs(
            "parent_run_id = ",
            run_id.into(),
            " ORDER BY parent_handle, started_at_ms",
        );
        self.fetch(Lane::Pool, select, |row| run_from_row(row))
            .await
    }

    pub(super) async fn runs_numbered(
        &self,
        workflow_id: &str,
        run_number: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let select = Statement::with(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = $1 AND run_number = $2 \
                 ORDER BY started_at_ms DESC"
            ),
            vec![workflow_id.into(), i64::from(run_number).into()],
        );
        self.fetch(Lane::Pool, select, |row| run_from_row(row))
            .await
    }
}
