//! The inference activities, with typed inputs and outputs and the checks that turn bad input
//! into a non-retryable error of a documented kind:
//!
//! | activity | input | output |
//! |---|---|---|
//! | `embed` | `{"texts": [..]}` | `{"vectors": [[384 floats]..], "truncated": [indices]}` |
//! | `similarity` | `{"pairs": [[a, b]..]}` | `{"scores": [cosine..], "truncated": [pair indices]}` |
//! | `classify` | `{"text", "labels": [{"name", "description"}..]}` | `{"label", "score", "scores": [{"name", "score"}..], "truncated"}` |
//! | `embed_corpus` | `{"texts": [..], "output": path, "chunk": n}` | `{"count", "output", "resumed_from"}` |
//! | `normalize` (CPU) | `["text", ..]` | the texts with whitespace collapsed and control characters removed |
//!
//! Error kinds: `InvalidInput` (an empty text, an empty list, a label without a name),
//! `TooManyItems` (more than [`MAX_ITEMS`] texts, pairs or labels in one call; `embed_corpus`
//! takes up to [`MAX_CORPUS`]), both non-retryable; `InferenceFailed` (retryable).
//! Texts longer than [`MAX_TOKENS`](crate::MAX_TOKENS) tokens are truncated, and the output
//! lists which.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use weft_worker::{ActivityContext, ActivityError};

use crate::batcher::Batcher;
use crate::model::{Embedded, cosine};

/// Most texts, pairs or labels in one `embed`, `similarity` or `classify` call.
pub const MAX_ITEMS: usize = 256;
/// Most texts in one `embed_corpus` call.
pub const MAX_CORPUS: usize = 100_000;

#[derive(Debug, Deserialize)]
pub struct EmbedInput {
    pub texts: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EmbedOutput {
    pub vectors: Vec<Vec<f32>>,
    /// Indices of the texts cut to the model's token limit.
    pub truncated: Vec<usize>,
}

#[derive(Debug, Deserialize)]
pub struct SimilarityInput {
    pub pairs: Vec<(String, String)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SimilarityOutput {
    pub scores: Vec<f32>,
    pub truncated: Vec<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Label {
    pub name: String,
    /// What the label means, in words; this is what the text is compared with.
    pub description: String,
}

#[derive(Debug, Deserialize)]
pub struct ClassifyInput {
    pub text: String,
    pub labels: Vec<Label>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LabelScore {
    pub name: String,
    pub score: f32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClassifyOutput {
    /// The best label and its score.
    pub label: String,
    pub score: f32,
    /// Every label, best first.
    pub scores: Vec<LabelScore>,
    pub truncated: bool,
}

#[derive(Debug, Deserialize)]
pub struct CorpusInput {
    pub texts: Vec<String>,
    /// A file to write one JSON vector per line to (on the worker's host).
    pub output: PathBuf,
    /// Texts per heartbeat; default 256.
    #[serde(default)]
    pub chunk: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CorpusOutput {
    pub count: usize,
    pub output: PathBuf,
    /// Texts a previous attempt had already embedded (0 on a first attempt).
    pub resumed_from: usize,
}

/// Heartbeat details of `embed_corpus`: texts done and written.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CorpusProgress {
    pub done: usize,
}

/// `normalize`: collapses runs of whitespace, drops control characters, trims.
pub fn normalize(texts: Vec<String>) -> Vec<String> {
    texts
        .into_iter()
        .map(|t| {
            t.split_whitespace()
                .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn invalid(message: impl Into<String>) -> ActivityError {
    ActivityError::non_retryable("InvalidInput", message)
}

fn check_texts<'a>(
    what: &str,
    texts: impl ExactSizeIterator<Item = &'a String>,
    max: usize,
) -> Result<(), ActivityError> {
    if texts.len() == 0 {
        return Err(invalid(format!("{what} is empty; pass at least one")));
    }
    if texts.len() > max {
        return Err(ActivityError::non_retryable(
            "TooManyItems",
            format!(
                "{} {what} in one call; the limit is {max}: split the work",
                texts.len()
            ),
        ));
    }
    for (i, text) in texts.enumerate() {
        if text.trim().is_empty() {
            return Err(invalid(format!("{what}[{i}] is empty")));
        }
    }
    Ok(())
}

async fn embed_all(batcher: &Batcher, texts: Vec<String>) -> Result<Embedded, ActivityError> {
    batcher
        .embed(texts)
        .await
        .map_err(|e| ActivityError::retryable("InferenceFailed", e.to_string()))
}

fn indices(flags: &[bool]) -> Vec<usize> {
    flags
        .iter()
        .enumerate()
        .filter(|(_, t)| **t)
        .map(|(i, _)| i)
        .collect()
}

pub async fn embed(batcher: &Batcher, input: EmbedInput) -> Result<EmbedOutput, ActivityError> {
    check_texts("texts", input.texts.iter(), MAX_ITEMS)?;
    let embedded = embed_all(batcher, input.texts).await?;
    Ok(EmbedOutput {
        truncated: indices(&embedded.truncated),
        vectors: embedded.vectors,
    })
}

pub async fn similarity(
    batcher: &Batcher,
    input: SimilarityInput,
) -> Result<SimilarityOutput, ActivityError> {
    let flat: Vec<String> = input
        .pairs
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    if input.pairs.len() > MAX_ITEMS {
        return Err(ActivityError::non_retryable(
            "TooManyItems",
            format!(
                "{} pairs in one call; the limit is {MAX_ITEMS}: split the work",
                input.pairs.len()
            ),
        ));
    }
    check_texts("pairs (flattened)", flat.iter(), 2 * MAX_ITEMS)?;
    let embedded = embed_all(batcher, flat).await?;
    let scores = embedded
        .vectors
        .chunks(2)
        .map(|pair| cosine(&pair[0], &pair[1]))
        .collect();
    let truncated = embedded
        .truncated
        .chunks(2)
        .enumerate()
        .filter(|(_, t)| t[0] || t[1])
        .map(|(i, _)| i)
        .collect();
    Ok(SimilarityOutput { scores, truncated })
}

pub async fn classify(
    batcher: &Batcher,
    input: ClassifyInput,
) -> Result<ClassifyOutput, ActivityError> {
    check_texts("text", std::iter::once(&input.text), 1)?;
    if input.labels.is_empty() {
        return Err(invalid("labels is empty; pass the candidate labels"));
    }
    if input.labels.len() > MAX_ITEMS {
        return Err(ActivityError::non_retryable(
            "TooManyItems",
            format!("{} labels; the limit is {MAX_ITEMS}", input.labels.len()),
        ));
    }
    if let Some(i) = input.labels.iter().position(|l| l.name.trim().is_empty()) {
        return Err(invalid(format!("labels[{i}] has no name")));
    }
    // A label is described by its description, or by its name when it has none. The same
    // labels come with every ticket: their vectors are remembered.
    let descriptions: Vec<String> = input
        .labels
        .iter()
        .map(|l| {
            if l.description.trim().is_empty() {
                l.name.clone()
            } else {
                l.description.clone()
            }
        })
        .collect();
    let (embedded, label_vectors) = batcher
        .embed_remembered(vec![input.text.clone()], &descriptions)
        .await
        .map_err(|e| ActivityError::retryable("InferenceFailed", e.to_string()))?;
    let text = &embedded.vectors[0];
    let mut scores: Vec<LabelScore> = input
        .labels
        .iter()
        .zip(&label_vectors)
        .map(|(l, v)| LabelScore {
            name: l.name.clone(),
            score: cosine(text, v),
        })
        .collect();
    scores.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(ClassifyOutput {
        label: scores[0].name.clone(),
        score: scores[0].score,
        scores,
        truncated: embedded.truncated[0],
    })
}

/// Embeds a large list in chunks, appending each chunk's vectors to `output` and reporting
/// progress in heartbeats; a retried attempt starts after the last chunk reported.
pub async fn embed_corpus(
    batcher: &Batcher,
    ctx: &ActivityContext,
    input: CorpusInput,
) -> Result<CorpusOutput, ActivityError> {
    check_texts("texts", input.texts.iter(), MAX_CORPUS)?;
    let chunk = input.chunk.unwrap_or(256).clamp(1, MAX_ITEMS);
    let resumed_from = ctx
        .previous_progress::<CorpusProgress>()
        .map_or(0, |p| p.done.min(input.texts.len()));
    let io = |e: std::io::Error| {
        ActivityError::retryable(
            "OutputUnwritable",
            format!("{}: {e}", input.output.display()),
        )
    };
    // Keep exactly the lines of the texts already reported done (a dead attempt may have
    // written a chunk it never reported).
    let kept: Vec<String> = match std::fs::read_to_string(&input.output) {
        Ok(text) => text.lines().take(resumed_from).map(str::to_owned).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(e)),
    };
    if kept.len() < resumed_from {
        return Err(ActivityError::retryable(
            "OutputLost",
            format!(
                "{} has {} lines but {resumed_from} were reported done",
                input.output.display(),
                kept.len()
            ),
        ));
    }
    let mut file = std::fs::File::create(&input.output).map_err(io)?;
    for line in &kept {
        writeln!(file, "{line}").map_err(io)?;
    }
    let mut done = resumed_from;
    for slice in input.texts[resumed_from..].chunks(chunk) {
        let embedded = embed_all(batcher, slice.to_vec()).await?;
        for vector in &embedded.vectors {
            let line = serde_json::to_string(vector).map_err(|e| io(std::io::Error::other(e)))?;
            writeln!(file, "{line}").map_err(io)?;
        }
        file.sync_data().map_err(io)?;
        done += slice.len();
        let stop = ctx
            .heartbeat(&CorpusProgress { done })
            .await
            .map_err(|e| ActivityError::retryable("HeartbeatFailed", e.to_string()))?;
        if stop {
            return Err(ActivityError::retryable(
                "Stopped",
                format!("the server asked this attempt to stop after {done} texts"),
            ));
        }
    }
    Ok(CorpusOutput {
        count: done,
        output: input.output,
        resumed_from,
    })
}
