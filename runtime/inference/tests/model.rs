//! The real model on fixed sentences: shape, norm, determinism, batch-size invariance, and
//! that meaning shows (related pairs score higher, obvious labels win). Needs the model files:
//! `runtime/inference/fetch-model.sh` (`.ci/run` runs it).

use std::sync::{Arc, OnceLock};

use weft_inference::activities::{self, ClassifyInput, EmbedInput, Label, SimilarityInput};
use weft_inference::{BatchConfig, Batcher, EMBEDDING_DIM, Embedder, ModelError};

fn embedder() -> Arc<Embedder> {
    static MODEL: OnceLock<Arc<Embedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = weft_inference::default_model_dir();
            Arc::new(Embedder::load(&dir).unwrap_or_else(|e| {
                panic!("{e} (the model tests need the files: run runtime/inference/fetch-model.sh)")
            }))
        })
        .clone()
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

const SENTENCES: [&str; 4] = [
    "The cat sits on the mat.",
    "A quarterly report on revenue and operating costs.",
    "How do I reset my password?",
    "weft replays workflow histories after a crash.",
];

#[test]
fn embeddings_are_unit_384_vectors_the_same_every_time_and_at_every_batch_size() {
    let model = embedder();
    let together = model.embed(&strings(&SENTENCES)).unwrap();
    assert_eq!(together.vectors.len(), 4);
    for v in &together.vectors {
        assert_eq!(v.len(), EMBEDDING_DIM);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert_eq!(
        model.embed(&strings(&SENTENCES)).unwrap(),
        together,
        "deterministic"
    );
    for (i, sentence) in SENTENCES.iter().enumerate() {
        let alone = model.embed(&strings(&[sentence])).unwrap();
        let worst = alone.vectors[0]
            .iter()
            .zip(&together.vectors[i])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-5,
            "sentence {i} differs by {worst} alone vs in a batch of 4"
        );
    }
    assert_eq!(together.truncated, [false; 4]);
    // An independent forward pass (NumPy from the same safetensors, exact GELU, the
    // tokenizer's own 128-token padding turned off) gave these first components for
    // SENTENCES[0]. (With that padding left on, pads enter the mean: 0.0806 instead.)
    let reference = [
        0.134177, -0.0329, -0.024804, 0.041439, -0.036348, 0.041814, 0.031217, 0.037202,
    ];
    for (i, (ours, theirs)) in together.vectors[0].iter().zip(reference).enumerate() {
        assert!(
            (ours - theirs).abs() < 1e-4,
            "component {i}: {ours} vs {theirs}"
        );
    }
}

#[test]
fn related_sentences_score_higher_than_unrelated_ones() {
    let model = embedder();
    let pairs = [
        // (text, related, unrelated)
        (
            "How do I reset my password?",
            "I forgot my login password.",
            "The stock market fell today.",
        ),
        (
            "A cat sat on the mat.",
            "A kitten is resting on a rug.",
            "Quarterly revenue grew by 5%.",
        ),
        (
            "The invoice total is wrong.",
            "I was billed the wrong amount.",
            "The hiking trail is closed.",
        ),
    ];
    for (text, related, unrelated) in pairs {
        let e = model.embed(&strings(&[text, related, unrelated])).unwrap();
        let near = weft_inference::model::cosine(&e.vectors[0], &e.vectors[1]);
        let far = weft_inference::model::cosine(&e.vectors[0], &e.vectors[2]);
        assert!(near > far + 0.2, "{text}: related {near}, unrelated {far}");
    }
}

#[tokio::test]
async fn the_activities_classify_obvious_cases_and_refuse_bad_input_with_their_kinds() {
    let batcher = Batcher::spawn(embedder(), BatchConfig::default());
    let labels = vec![
        Label {
            name: "billing".into(),
            description: "payments, invoices, refunds and charges".into(),
        },
        Label {
            name: "account".into(),
            description: "login, password and account access".into(),
        },
        Label {
            name: "shipping".into(),
            description: "delivery, parcels and tracking".into(),
        },
    ];
    for (text, expected) in [
        (
            "I was charged twice on my credit card, please refund me",
            "billing",
        ),
        (
            "I can't log in, my password reset email never arrives",
            "account",
        ),
        (
            "Where is my parcel? The tracking number shows nothing",
            "shipping",
        ),
    ] {
        let out = activities::classify(
            &batcher,
            ClassifyInput {
                text: text.into(),
                labels: labels.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(out.label, expected, "{text}: {:?}", out.scores);
        assert_eq!(out.scores.len(), 3);
        assert!(out.scores.windows(2).all(|w| w[0].score >= w[1].score));
    }

    let out = activities::similarity(
        &batcher,
        SimilarityInput {
            pairs: vec![("good morning".into(), "good morning".into())],
        },
    )
    .await
    .unwrap();
    assert!((out.scores[0] - 1.0).abs() < 1e-5);

    // Over-long text: cut to the model's limit, and said so.
    let long = "word ".repeat(600);
    let out = activities::embed(
        &batcher,
        EmbedInput {
            texts: vec!["short".into(), long],
        },
    )
    .await
    .unwrap();
    assert_eq!(out.truncated, [1]);

    let kind = |r: Result<(), weft_worker::ActivityError>| {
        let e = r.unwrap_err();
        assert!(e.non_retryable, "{e:?}");
        e.kind
    };
    let embed = |texts: Vec<String>| {
        let b = batcher.clone();
        async move {
            activities::embed(&b, EmbedInput { texts })
                .await
                .map(|_| ())
        }
    };
    assert_eq!(kind(embed(vec![]).await), "InvalidInput");
    assert_eq!(
        kind(embed(vec!["ok".into(), "  ".into()]).await),
        "InvalidInput"
    );
    assert_eq!(
        kind(embed(vec!["x".into(); activities::MAX_ITEMS + 1]).await),
        "TooManyItems"
    );
    let classify = |labels: Vec<Label>| {
        let b = batcher.clone();
        async move {
            activities::classify(
                &b,
                ClassifyInput {
                    text: "hello".into(),
                    labels,
                },
            )
            .await
            .map(|_| ())
        }
    };
    assert_eq!(kind(classify(vec![]).await), "InvalidInput");
    assert_eq!(
        kind(
            classify(vec![Label {
                name: " ".into(),
                description: "x".into()
            }])
            .await
        ),
        "InvalidInput"
    );
    let similarity = |pairs: Vec<(String, String)>| {
        let b = batcher.clone();
        async move {
            activities::similarity(&b, SimilarityInput { pairs })
                .await
                .map(|_| ())
        }
    };
    assert_eq!(kind(similarity(vec![]).await), "InvalidInput");
    assert_eq!(
        kind(similarity(vec![("a".into(), "".into())]).await),
        "InvalidInput"
    );
    assert_eq!(
        kind(similarity(vec![("a".into(), "b".into()); activities::MAX_ITEMS + 1]).await),
        "TooManyItems"
    );
    // The batcher still serves after all that.
    assert!(embed(vec!["still here".into()]).await.is_ok());
}

#[tokio::test]
async fn concurrent_requests_share_forward_passes_and_get_their_own_rows() {
    let model = embedder();
    let batcher = Batcher::spawn(
        model.clone(),
        BatchConfig {
            max_batch: 8,
            max_wait: std::time::Duration::from_millis(50),
        },
    );
    let texts: Vec<String> = (0..16)
        .map(|i| format!("ticket number {i} about topic {}", i % 3))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, text) in texts.iter().enumerate() {
        let b = batcher.clone();
        let text = text.clone();
        tasks.spawn(async move { (i, b.embed(vec![text]).await.unwrap()) });
    }
    let mut batched = vec![Vec::new(); texts.len()];
    while let Some(done) = tasks.join_next().await {
        let (i, e) = done.unwrap();
        batched[i] = e.vectors[0].clone();
    }
    let stats = batcher.stats();
    assert_eq!(stats.texts, 16);
    assert!(stats.batches < 16, "requests were merged: {stats:?}");
    for (i, text) in texts.iter().enumerate() {
        let alone = model.embed(std::slice::from_ref(text)).unwrap();
        let worst = alone.vectors[0]
            .iter()
            .zip(&batched[i])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "text {i}: batched differs by {worst}");
    }
}

#[test]
fn a_missing_or_corrupt_model_file_is_named() {
    let source = weft_inference::default_model_dir();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(source.join("config.json"), dir.path().join("config.json")).unwrap();
    let Err(e) = Embedder::load(dir.path()) else {
        panic!("loaded without a tokenizer")
    };
    assert!(
        matches!(&e, ModelError::Missing { path } if path.ends_with("tokenizer.json")),
        "{e}"
    );
    assert!(e.to_string().contains("fetch-model.sh"), "{e}");
    std::fs::copy(
        source.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        b"not a safetensors file",
    )
    .unwrap();
    let Err(e) = Embedder::load(dir.path()) else {
        panic!("loaded garbage weights")
    };
    assert!(
        matches!(&e, ModelError::Corrupt { path, .. } if path.ends_with("model.safetensors")),
        "{e}"
    );
    std::fs::write(dir.path().join("config.json"), b"{").unwrap();
    let Err(e) = Embedder::load(dir.path()) else {
        panic!("loaded a broken config")
    };
    assert!(
        matches!(&e, ModelError::Corrupt { path, .. } if path.ends_with("config.json")),
        "{e}"
    );
}
