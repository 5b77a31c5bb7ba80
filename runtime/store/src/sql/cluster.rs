//! Nodes sharing a database: their leases, the adoption of runs whose owner is gone, and
//! each node's inbox of commands routed to it.

use super::*;

impl SqlStore {
    pub(super) fn single_node(&self) -> bool {
        self.dialect == Dialect::Sqlite
    }

    pub(super) async fn renew_node(
        &self,
        node: &str,
        lease_until_ms: u64,
    ) -> Result<bool, StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        let renew = Statement::with(
            "UPDATE nodes SET lease_until_ms = $1 WHERE node_id = $2",
            vec![i(lease_until_ms).into(), node.into()],
        );
        let renewed = tx.execute(renew).await? == 1;
        if !renewed {
            let join = Statement::with(
                "INSERT INTO nodes (node_id, lease_until_ms) VALUES ($1, $2)",
                vec![node.into(), i(lease_until_ms).into()],
            );
            tx.execute(join).await?;
        }
        tx.commit().await?;
        Ok(renewed)
    }

    pub(super) async fn node_alive(&self, node: &str, now_ms: u64) -> Result<bool, StoreError> {
        let select = Statement::with(
            "SELECT lease_until_ms FROM nodes WHERE node_id = $1 AND lease_until_ms >= $2",
            vec![node.into(), i(now_ms).into()],
        );
        let alive = self
            .fetch_first(Lane::Pool, select, |row| row.int("lease_until_ms"))
            .await?;
        Ok(alive.is_some())
    }

    pub(super) async fn adopt_orphans(&self, node: &str, now_ms: u64) -> Result<u64, StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        let runs = Statement::with(
            "UPDATE runs SET owner = $1 WHERE status = 'running' AND (owner IS NULL OR (owner <> $1 \
             AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = runs.owner AND n.lease_until_ms >= $2)))",
            vec![node.into(), i(now_ms).into()],
        );
        let adopted = tx.execute(runs).await?;
        let inbox = Statement::with(
            "UPDATE inbox SET owner = $1 WHERE owner <> $1 \
             AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = inbox.owner AND n.lease_until_ms >= $2)",
            vec![node.into(), i(now_ms).into()],
        );
        tx.execute(inbox).await?;
        let gone = Statement::with(
            "DELETE FROM nodes WHERE node_id <> $1 AND lease_until_ms < $2",
            vec![node.into(), i(now_ms).into()],
        );
        tx.execute(gone).await?;
        tx.commit().await?;
        Ok(adopted)
    }

    pub(super) async fn adopt_run(
        &self,
        run_id: &str,
        node: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let (_gate, mut tx) = self.begin_write().await?;
        let adopt = Statement::with(
            "UPDATE runs SET owner = $1 WHERE run_id = $2 AND status = 'running' AND (owner IS NULL \
             OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = runs.owner AND n.lease_until_ms >= $3))",
            vec![node.into(), run_id.into(), i(now_ms).into()],
        );
        tx.execute(adopt).await?;
        let owner = Statement::with(
            "SELECT owner FROM runs WHERE run_id = $1",
            vec![run_id.into()],
        );
        let owner = tx.rows(owner, |row| row.opt_text("owner")).await?;
        tx.commit().await?;
        Ok(owner.into_iter().next().flatten().as_deref() == Some(node))
    }

    pub(super) async fn inbox(&self, node: &str, limit: u32) -> Result<Vec<InboxItem>, StoreError> {
        let mut select = Statement::new("SELECT id, run_id, command FROM inbox WHERE owner = ");
        select
            .param(Param::Text(node.to_owned()))
            .sql(" ORDER BY id LIMIT ")
            .param(Param::Int(i64::from(limit)));
        self.fetch(Lane::Step, select, |row| inbox_from_row(row))
            .await
    }
}
