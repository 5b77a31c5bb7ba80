//! Access: bearer tokens (stored by hash) and the audit log.

use super::*;

impl SqlStore {
    pub(super) async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
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

    pub(super) async fn token_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"
        )))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    pub(super) async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub(super) async fn revoke_token(&self, name: &str, now_ms: u64) -> Result<bool, StoreError> {
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

    pub(super) async fn touch_token(&self, name: &str, now_ms: u64) -> Result<(), StoreError> {
        let _gate = self.gate().await;
        sqlx::query("UPDATE tokens SET last_used_ms = $2 WHERE name = $1")
            .bind(name)
            .bind(i(now_ms))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn append_audit(&self, entry: &AuditRecord) -> Result<(), StoreError> {
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

    pub(super) async fn audit_since(
        &self,
        since_ms: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
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
