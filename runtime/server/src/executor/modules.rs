//! The compiled modules this node runs, and each workflow type's newest module.

use weft_engine::RunOptions;

use super::*;

/// Workflow type -> newest module, remembered briefly: a start needs it, and an upload on
/// another node sharing the database is seen within [`TYPE_CACHE_TTL`].
#[derive(Default)]
pub(super) struct TypeCache {
    // tokio's clock (not std's) so that a simulation's paused clock decides when it expires.
    types: std::sync::Mutex<HashMap<String, (String, tokio::time::Instant)>>,
}

const TYPE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl TypeCache {
    pub(super) fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (String, tokio::time::Instant)>> {
        self.types.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) async fn newest_module(
        &self,
        store: &dyn Store,
        workflow_type: &str,
    ) -> Result<String, ServerError> {
        if let Some((module_id, at)) = self.lock().get(workflow_type)
            && at.elapsed() < TYPE_CACHE_TTL
        {
            return Ok(module_id.clone());
        }
        let module_id = store
            .newest_module(workflow_type)
            .await?
            .ok_or_else(|| ServerError::UnknownWorkflowType(workflow_type.to_owned()))?;
        self.set(workflow_type, &module_id);
        Ok(module_id)
    }

    pub(super) fn set(&self, workflow_type: &str, module_id: &str) {
        self.lock().insert(
            workflow_type.to_owned(),
            (module_id.to_owned(), tokio::time::Instant::now()),
        );
    }
}

impl State {
    pub(super) async fn module(&mut self, module_id: &str) -> Result<WorkflowModule, ServerError> {
        if let Some(m) = self.modules.get(module_id) {
            return Ok(m.clone());
        }
        let bytes =
            self.store.module(module_id).await?.ok_or_else(|| {
                ServerError::Internal(format!("module {module_id} is not stored"))
            })?;
        let module = self
            .engine
            .load(&bytes)
            .map_err(|e| ServerError::Internal(format!("stored module {module_id}: {e}")))?;
        self.modules.insert(module_id.to_owned(), module.clone());
        Ok(module)
    }

    pub(super) fn options(&self) -> RunOptions {
        RunOptions {
            clock: self.clock.clone(),
            ..RunOptions::default()
        }
    }
}
