//! The check a start makes before it goes to the executor (does its workflow id have a
//! running run?), read for many starts at once: while one read is out, the ids asked about
//! meanwhile wait and go together in the next. On PostgreSQL each read is a round trip, and
//! with results and completions answered from memory this was the one left per workflow.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use weft_store::Store;

use crate::ServerError;

/// Ids read in one go at most.
const MAX_IDS: usize = 512;

type Answer = Result<Option<String>, ServerError>;

/// Handle to the task that reads the checks.
pub(crate) struct StartChecks {
    tx: mpsc::UnboundedSender<(String, oneshot::Sender<Answer>)>,
}

impl StartChecks {
    pub(crate) fn spawn(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(serve(store, rx));
        StartChecks { tx }
    }

    /// The id of `workflow_id`'s running run, if it has one.
    pub(crate) async fn running_run(&self, workflow_id: &str) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((workflow_id.to_owned(), reply))
            .map_err(|_| ServerError::ShuttingDown)?;
        answer.await.map_err(|_| ServerError::ShuttingDown)?
    }
}

async fn serve(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<(String, oneshot::Sender<Answer>)>,
) {
    while let Some(first) = rx.recv().await {
        let mut asks = vec![first];
        while asks.len() < MAX_IDS {
            match rx.try_recv() {
                Ok(ask) => asks.push(ask),
                Err(_) => break,
            }
        }
        let mut ids: Vec<String> = asks.iter().map(|(id, _)| id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        match store.running_runs_of(&ids).await {
            Ok(runs) => {
                let running: HashMap<String, String> = runs
                    .into_iter()
                    .map(|r| (r.workflow_id, r.run_id))
                    .collect();
                for (id, reply) in asks {
                    let _ = reply.send(Ok(running.get(&id).cloned()));
                }
            }
            Err(error) => {
                let message = error.to_string();
                for (_, reply) in asks {
                    let _ = reply.send(Err(ServerError::Storage(message.clone())));
                }
            }
        }
    }
}
