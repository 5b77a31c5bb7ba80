"""A Python ML worker for the `MlPipeline` example: ticket triage with scikit-learn.

It trains a TF-IDF + logistic-regression classifier at start-up on `tickets.csv` (100
labelled support tickets, kept beside this file; a second or so on a laptop core), then serves

- `classify` on queue `inference-py`: `{"text", "labels": [{"name", "description"}]}` ->
  `{"label", "score", "scores": [{"name", "score"}], "truncated"}`, the same contract as
  weft-inference's `classify`, over the labels the model was trained on;
- `normalize` on queue `cpu`: whitespace and control characters cleaned, as weft-inference does.

    pip install './python[ml]'
    python python/examples/ml_worker.py [SERVER_URL]

and start the pipeline with `"inference_queue": "inference-py"` in its input (README).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import logging
import sys
import time
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from weft import Client, NonRetryableError, Worker, activity

log = logging.getLogger("ml_worker")

MAX_CHARS = 10_000


@dataclasses.dataclass
class Label:
    name: str
    description: str = ""


@dataclasses.dataclass
class ClassifyInput:
    text: str
    labels: list[Label]


@dataclasses.dataclass
class LabelScore:
    name: str
    score: float


@dataclasses.dataclass
class ClassifyOutput:
    label: str
    score: float
    scores: list[LabelScore]
    truncated: bool


def train(path: Path) -> Pipeline:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    model = Pipeline(
        [
            (
                "features",
                FeatureUnion(
                    [
                        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                        (
                            "chars",
                            TfidfVectorizer(
                                analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True
                            ),
                        ),
                    ]
                ),
            ),
            ("classifier", LogisticRegression(C=10.0, max_iter=1000)),
        ]
    )
    model.fit([r["text"] for r in rows], [r["label"] for r in rows])
    return model


_started = time.perf_counter()
MODEL = train(Path(__file__).with_name("tickets.csv"))
TRAIN_SECONDS = time.perf_counter() - _started
KNOWN = [str(c) for c in MODEL.classes_]


@activity.defn
def classify(req: ClassifyInput) -> ClassifyOutput:
    """Runs in the worker's thread pool: scikit-learn releases the GIL in its hot loops."""
    unknown = [label.name for label in req.labels if label.name not in KNOWN]
    if not req.labels or unknown:
        raise NonRetryableError(
            "InvalidInput",
            f"this model knows the labels {', '.join(KNOWN)}; "
            f"asked for {', '.join(unknown) or 'none'}",
        )
    truncated = len(req.text) > MAX_CHARS
    probabilities = MODEL.predict_proba([req.text[:MAX_CHARS]])[0]
    wanted = {label.name for label in req.labels}
    scores = {c: float(p) for c, p in zip(KNOWN, probabilities) if c in wanted}
    total = sum(scores.values()) or 1.0
    ranked = sorted(
        (LabelScore(name, score / total) for name, score in scores.items()),
        key=lambda s: -s.score,
    )
    return ClassifyOutput(ranked[0].name, ranked[0].score, ranked, truncated)


@activity.defn
def normalize(texts: list[str]) -> list[str]:
    return [
        " ".join(w for w in ("".join(c for c in word if c.isprintable()) for word in t.split()) if w)
        for t in texts
    ]


async def main(url: str) -> None:
    client = await Client.connect(url)
    log.info("model trained on %d labels in %.2f s", len(KNOWN), TRAIN_SECONDS)
    inference = Worker(client, task_queue="inference-py", activities=[classify], max_concurrent=8)
    cpu = Worker(client, task_queue="cpu", activities=[normalize], max_concurrent=4)
    print(f"ml_worker: classify on inference-py ({', '.join(KNOWN)}), normalize on cpu", flush=True)
    await asyncio.gather(inference.run(), cpu.run())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7233"))
