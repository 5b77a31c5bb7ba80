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

    pub(super) async fn node_alive(&self, node: &str, now_ms: u64) -> Result<bool, StoreError> {
        let alive: Option<i64> = sqlx::query_scalar(
            "SELECT lease_until_ms FROM nodes WHERE node_id = $1 AND lease_until_ms >= $2",
        )
        .bind(node)
        .bind(i(now_ms))
        .fetch_optional(&self.pool)
        .await?;
        Ok(alive.is_some())
    }

    pub(super) async fn adopt_orphans(&self, node: &str, now_ms: u64) -> Result<u64, StoreError> {
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

    pub(super) async fn adopt_run(
        &self,
        run_id: &str,
        node: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
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

    pub(super) async fn inbox(&self, node: &str, limit: u32) -> Result<Vec<InboxItem>, StoreError> {
        let mut select = Statement::new("SELECT id, run_id, command FROM inbox WHERE owner = ");
        select
            .param(Param::Text(node.to_owned()))
            .sql(" ORDER BY id LIMIT ")
            .param(Param::Int(i64::from(limit)));
        self.fetch(select, |row| inbox_from_row(row)).await
    }
}
