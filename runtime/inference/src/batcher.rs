//! Dynamic batching: embedding requests from many concurrent activities are merged into one
//! forward pass, up to `max_batch` texts or until `max_wait` has passed since the first one
//! arrived, then each request gets its own rows back.
//!
//! Each forward pass is measured (`weft_inference_batch_size`, `weft_inference_forward_seconds`,
//! `weft_inference_texts_total`) and, for a request made inside a traced activity, recorded as
//! a `model forward pass` span under the activity's span.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use weft_worker::telemetry::traces::{self, Attribute, Finished, Kind, TraceContext};

use crate::model::{Embedded, Embedder, ModelError};

/// How requests are merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most texts in one forward pass (1 turns batching off).
    pub max_batch: usize,
    /// Longest a request waits for others to join its batch.
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 32,
            max_wait: Duration::from_millis(5),
        }
    }
}

struct Request {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Embedded, Arc<ModelError>>>,
    /// The span of the activity that asked (when it is traced).
    trace: Option<TraceContext>,
}

const BATCH_SIZE: &str = "weft_inference_batch_size";
const BATCH_CAPACITY: &str = "weft_inference_batch_capacity";
const FORWARD_SECONDS: &str = "weft_inference_forward_seconds";
const TEXTS: &str = "weft_inference_texts_total";

fn describe_metrics(max_batch: usize) {
    metrics::describe_histogram!(BATCH_SIZE, "Texts per forward pass.");
    metrics::describe_gauge!(
        BATCH_CAPACITY,
        "Most texts one forward pass takes (--max-batch); batch fill is batch size over this."
    );
    metrics::describe_histogram!(FORWARD_SECONDS, "Time of one batched forward pass.");
    metrics::describe_counter!(
        TEXTS,
        "Texts embedded; rate() of it is the texts per second."
    );
    metrics::gauge!(BATCH_CAPACITY).set(max_batch as f64);
}

/// Figures of the batches run so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub batches: u64,
    pub texts: u64,
}

/// Most texts [`Batcher::embed_remembered`] keeps; past it, it starts over.
const REMEMBERED: usize = 4096;

/// A handle to the batching loop; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Request>,
    stats: Arc<std::sync::Mutex<BatchStats>>,
    /// Embeddings of texts that recur (label descriptions), by text.
    remembered: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<f32>>>>,
}

impl Batcher {
    /// Starts the loop that owns `embedder`.
    pub fn spawn(embedder: Arc<Embedder>, config: BatchConfig) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let stats = Arc::new(std::sync::Mutex::new(BatchStats::default()));
        tokio::spawn(run(embedder, config, rx, stats.clone()));
        Batcher {
            tx,
            stats,
            remembered: Arc::default(),
        }
    }

    /// Embeds `fresh` and `recurring` texts in one request, reusing the vectors of recurring
    /// texts seen before (label descriptions sent with every `classify`). Returns the
    /// embeddings of `fresh`, then the vectors of `recurring`, in order.
    pub async fn embed_remembered(
        &self,
        fresh: Vec<String>,
        recurring: &[String],
    ) -> Result<(Embedded, Vec<Vec<f32>>), Arc<ModelError>> {
        let lock = || self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        let missing: Vec<String> = {
            let known = lock();
            let mut missing: Vec<String> = recurring
                .iter()
                .filter(|t| !known.contains_key(*t))
                .cloned()
                .collect();
            missing.dedup();
            missing
        };
        let n = fresh.len();
        let mut texts = fresh;
        texts.extend(missing.iter().cloned());
        let mut all = self.embed(texts).await?;
        let new_vectors = all.vectors.split_off(n);
        all.truncated.truncate(n);
        let mut known = lock();
        if known.len() + missing.len() > REMEMBERED {
            known.clear();
        }
        for (text, vector) in missing.into_iter().zip(new_vectors) {
            known.insert(text, vector);
        }
        let vectors = recurring
            .iter()
            .map(|t| known.get(t).cloned().unwrap_or_default())
            .collect();
        Ok((all, vectors))
    }

    /// Embeds `texts`, sharing a forward pass with whatever else is waiting.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Embedded, Arc<ModelError>> {
        let (reply, rx) = oneshot::channel();
        let stopped = || Arc::new(ModelError::Inference("the batching loop stopped".into()));
        let trace = TraceContext::of(&opentelemetry::Context::current());
        self.tx
            .send(Request {
                texts,
                reply,
                trace,
            })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Batches and texts so far.
    pub fn stats(&self) -> BatchStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn run(
    embedder: Arc<Embedder>,
    config: BatchConfig,
    mut rx: mpsc::Receiver<Request>,
    stats: Arc<std::sync::Mutex<BatchStats>>,
) {
    let max_batch = config.max_batch.max(1);
    describe_metrics(max_batch);
    while let Some(first) = rx.recv().await {
        let mut count = first.texts.len();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.max_wait;
        while count < max_batch {
            tokio::select! {
                more = rx.recv() => match more {
                    Some(request) => {
                        count += request.texts.len();
                        batch.push(request);
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let texts: Vec<String> = batch.iter().flat_map(|r| r.texts.clone()).collect();
        let model = embedder.clone();
        let (wall, started) = (std::time::SystemTime::now(), std::time::Instant::now());
        // Inference is CPU-bound: off the async threads. One request larger than a batch
        // is run in slices of `max_batch`.
        let result = tokio::task::spawn_blocking(move || {
            let mut all = Embedded {
                vectors: Vec::with_capacity(texts.len()),
                truncated: Vec::with_capacity(texts.len()),
            };
            for slice in texts.chunks(max_batch) {
                let part = model.embed(slice)?;
                all.vectors.extend(part.vectors);
                all.truncated.extend(part.truncated);
            }
            Ok::<_, ModelError>(all)
        })
        .await
        .unwrap_or_else(|e| Err(ModelError::Inference(format!("inference panicked: {e}"))));
        let elapsed = started.elapsed();
        {
            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
            s.batches += 1;
            s.texts += count as u64;
        }
        metrics::histogram!(BATCH_SIZE).record(count as f64);
        metrics::histogram!(FORWARD_SECONDS).record(elapsed.as_secs_f64());
        metrics::counter!(TEXTS).increment(count as u64);
        for request in &batch {
            if let Some(parent) = &request.trace {
                traces::record(Finished {
                    name: "model forward pass".into(),
                    kind: Kind::Internal,
                    parent,
                    span_id: None,
                    start: wall,
                    end: wall + elapsed,
                    attributes: vec![
                        Attribute::new("weft.inference.batch_size", count as i64),
                        Attribute::new("weft.inference.texts", request.texts.len() as i64),
                    ],
                    error: result.as_ref().err().map(|e| e.to_string()),
                });
            }
        }
        match result {
            Ok(mut all) => {
                for request in batch.into_iter().rev() {
                    let at = all.vectors.len() - request.texts.len();
                    let part = Embedded {
                        vectors: all.vectors.split_off(at),
                        truncated: all.truncated.split_off(at),
                    };
                    let _ = request.reply.send(Ok(part));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for request in batch {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }
}
