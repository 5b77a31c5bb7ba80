//! Access: bearer tokens (stored by hash) and the audit log.

use super::*;

impl SqlStore {
    pub(super) async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let insert = Statement::with(
            &format!(
                "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)"
            ),
            vec![
                token.name.as_str().into(),
                token.hash.as_str().into(),
                token.role.as_str().into(),
                list(&token.queues).into(),
                list(&token.types).into(),
                i(token.created_at_ms).into(),
                token.expires_at_ms.map(i).into(),
            ],
        );
        match self.execute(insert).await {
            Err(StoreError::Database(sqlx::Error::Database(db))) if db.is_unique_violation() => {
                Err(StoreError::TokenExists(token.name.clone()))
            }
            other => other.map(|_| ()),
        }
    }

    pub(super) async fn token_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let select = Statement::with(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"),
            vec![hash.into()],
        );
        self.fetch_first(Lane::Pool, select, token_from_row).await
    }

    pub(super) async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let select = Statement::with(
            &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY name"),
            Vec::new(),
        );
        self.fetch(Lane::Pool, select, token_from_row).await
    }

    pub(super) async fn revoke_token(&self, name: &str, now_ms: u64) -> Result<bool, StoreError> {
        let revoke = Statement::with(
            "UPDATE tokens SET revoked_at_ms = $1 WHERE name = $2 AND revoked_at_ms IS NULL",
            vec![i(now_ms).into(), name.into()],
        );
        Ok(self.execute(revoke).await? == 1)
    }

    pub(super) async fn touch_token(&self, name: &str, now_ms: u64) -> Result<(), StoreError> {
        let touch = Statement::with(
            "UPDATE tokens SET last_used_ms = $1 WHERE name = $2",
            vec![i(now_ms).into(), name.into()],
        );
        self.execute(touch).await?;
        Ok(())
    }

    pub(super) async fn append_audit(&self, entry: &AuditRecord) -> Result<(), StoreError> {
        let insert = Statement::with(
            "INSERT INTO audit (at_ms, actor, action, target, peer, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                i(entry.at_ms).into(),
                entry.actor.as_str().into(),
                entry.action.as_str().into(),
                entry.target.as_str().into(),
                entry.peer.as_str().into(),
                entry.outcome.as_str().into(),
            ],
        );
        self.execute(insert).await?;
        Ok(())
    }

    pub(super) async fn audit_since(
        &self,
        since_ms: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let select = Statement::with(
            "SELECT at_ms, actor, action, target, peer, outcome FROM audit \
             WHERE at_ms >= $1 ORDER BY at_ms, id LIMIT $2",
            vec![i(since_ms).into(), i64::from(limit).into()],
        );
        self.fetch(Lane::Pool, select, audit_from_row).await
    }
}
