//! `AdminService`: tokens and the audit log, for admin tokens only.

use tonic::{Request, Response, Status};
use weft_store::{Store, TokenRecord};

use crate::auth::{self, Auth, NewToken, Right};
use crate::proto::{self, admin_service_server::AdminService};
use std::sync::Arc;
use weft_engine::Clock;

pub(crate) struct AdminApi {
    store: Arc<dyn Store>,
    auth: Auth,
    clock: Arc<dyn Clock>,
}

impl AdminApi {
    pub(crate) fn new(store: Arc<dyn Store>, auth: Auth, clock: Arc<dyn Clock>) -> Self {
        AdminApi { store, auth, clock }
    }
}

/// A token as the API shows it: never its secret or hash.
pub fn token_info(t: &TokenRecord) -> proto::TokenInfo {
    proto::TokenInfo {
        name: t.name.clone(),
        role: t.role.clone(),
        queues: t.queues.clone().unwrap_or_default(),
        types: t.types.clone().unwrap_or_default(),
        created_at_ms: t.created_at_ms,
        expires_at_ms: t.expires_at_ms.unwrap_or(0),
        last_used_ms: t.last_used_ms.unwrap_or(0),
        revoked_at_ms: t.revoked_at_ms.unwrap_or(0),
    }
}

/// An audit entry as the API shows it.
pub fn audit_entry(e: weft_store::AuditRecord) -> proto::AuditEntry {
    proto::AuditEntry {
        at_ms: e.at_ms,
        actor: e.actor,
        action: e.action,
        target: e.target,
        peer: e.peer,
        outcome: e.outcome,
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_token(
        &self,
        request: Request<proto::CreateTokenRequest>,
    ) -> Result<Response<proto::CreateTokenResponse>, Status> {
        let principal = self.auth.require(&request, Right::Administer).await?;
        let req = request.get_ref().clone();
        let new = NewToken {
            name: req.name.clone(),
            role: req.role,
            queues: req.queues,
            types: req.types,
            expires_in_ms: (req.expires_in_ms > 0).then_some(req.expires_in_ms),
        };
        let created = auth::create_token(self.store.as_ref(), new, self.clock.now_ms()).await;
        let outcome = match &created {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        self.auth
            .audit(
                &principal,
                &auth::peer_of(&request),
                "token_create",
                &req.name,
                &outcome,
            )
            .await;
        let (record, secret) = created?;
        Ok(Response::new(proto::CreateTokenResponse {
            token: secret,
            info: Some(token_info(&record)),
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<proto::ListTokensRequest>,
    ) -> Result<Response<proto::ListTokensResponse>, Status> {
        self.auth.require(&request, Right::Administer).await?;
        let tokens = self
            .store
            .tokens()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(proto::ListTokensResponse {
            tokens: tokens.iter().map(token_info).collect(),
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<proto::RevokeTokenRequest>,
    ) -> Result<Response<proto::RevokeTokenResponse>, Status> {
        let principal = self.auth.require(&request, Right::Administer).await?;
        let name = request.get_ref().name.clone();
        let revoked = self
            .store
            .revoke_token(&name, self.clock.now_ms())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let outcome = if revoked {
            "ok"
        } else {
            "refused: no live token"
        };
        self.auth
            .audit(
                &principal,
                &auth::peer_of(&request),
                "token_revoke",
                &name,
                outcome,
            )
            .await;
        if !revoked {
            return Err(Status::not_found(format!(
                "no live token named `{name}`; `weft token list` shows them"
            )));
        }
        Ok(Response::new(proto::RevokeTokenResponse {}))
    }

    async fn list_audit(
        &self,
        request: Request<proto::ListAuditRequest>,
    ) -> Result<Response<proto::ListAuditResponse>, Status> {
        self.auth.require(&request, Right::Administer).await?;
        let req = request.into_inner();
        let limit = match req.limit {
            0 => 1_000,
            n => n.min(10_000),
        };
        let entries = self
            .store
            .audit_since(req.since_ms, limit)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(proto::ListAuditResponse {
            entries: entries.into_iter().map(audit_entry).collect(),
        }))
    }
}
