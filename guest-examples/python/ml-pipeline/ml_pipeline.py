"""Support-ticket triage, the Rust `ml-pipeline` example in Python:

1. normalise the texts (a CPU activity, queue `cpu`);
2. classify every ticket into a queue with `classify` (queue `inference`: the Rust
   `weft-inference` worker, whose dynamic batching merges the fanned-out calls into few forward
   passes; `inference_queue` sends them to another worker, e.g. the Python one on
   `inference-py`), retried if the worker dies;
3. escalate the tickets classified with low confidence: wait for `review` signals
   (`{"ticket": i, "label": "..."}`) until all are reviewed or the review window closes;
   unreviewed ones go to `needs-human`;
4. return the routing table.
"""

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from weft import workflow


@dataclass
class Label:
    name: str
    description: str


@dataclass
class Triage:
    tickets: list[str]
    labels: list[Label]
    #: Tickets whose best score is below this wait for a human.
    min_confidence: float = 0.3
    #: How long the review window stays open.
    review_timeout_ms: int = 3_600_000
    #: Start-to-close timeout of one `classify` attempt.
    classify_timeout_ms: int = 30_000
    inference_queue: str = "inference"


@dataclass
class ClassifyInput:
    text: str
    labels: list[Label]


@dataclass
class Classification:
    label: str
    score: float


@dataclass
class Review:
    ticket: int
    label: str


@dataclass
class Route:
    ticket: int
    text: str
    label: str
    score: float
    #: "model", "human" or "timeout".
    decided_by: str


@dataclass
class RoutingTable:
    routes: list[Route]
    #: Label -> ticket indices.
    queues: dict[str, list[int]] = field(default_factory=dict)


@workflow.defn(name="MlPipeline")
class MlPipeline:
    @workflow.run
    async def run(self, triage: Triage) -> RoutingTable:
        normalized = await workflow.execute_activity(
            "normalize",
            triage.tickets,
            task_queue="cpu",
            start_to_close_timeout=timedelta(seconds=30),
            result_type=list[str],
        )
        retry = workflow.RetryPolicy(
            initial_interval=timedelta(milliseconds=200),
            maximum_attempts=5,
            non_retryable_error_types=["InvalidInput", "TooManyItems"],
        )
        classifications = await asyncio.gather(
            *(
                workflow.execute_activity(
                    "classify",
                    ClassifyInput(text, triage.labels),
                    task_queue=triage.inference_queue,
                    start_to_close_timeout=timedelta(milliseconds=triage.classify_timeout_ms),
                    retry_policy=retry,
                    result_type=Classification,
                )
                for text in normalized
            )
        )
        routes = [
            Route(ticket, text, c.label, c.score, "model")
            for ticket, (text, c) in enumerate(zip(normalized, classifications))
        ]
        unsure = [r.ticket for r in routes if r.score < triage.min_confidence]
        workflow.logger.info(
            "classified %d tickets; %d below %s wait for review",
            len(routes),
            len(unsure),
            triage.min_confidence,
        )

        if unsure:
            window = asyncio.ensure_future(
                workflow.sleep(timedelta(milliseconds=triage.review_timeout_ms))
            )
            while unsure:
                review = asyncio.ensure_future(workflow.wait_signal("review", Review))
                await asyncio.wait([review, window], return_when=asyncio.FIRST_COMPLETED)
                if review.done():
                    r = review.result()
                    if r.ticket in unsure:
                        unsure.remove(r.ticket)
                        routes[r.ticket].label = r.label
                        routes[r.ticket].decided_by = "human"
                    continue
                review.cancel()
                for ticket in unsure:
                    routes[ticket].label = "needs-human"
                    routes[ticket].decided_by = "timeout"
                unsure = []
            # Every review arrived before the window closed.
            window.cancel()

        queues: dict[str, list[int]] = {}
        for route in routes:
            queues.setdefault(route.label, []).append(route.ticket)
        return RoutingTable(routes, dict(sorted(queues.items())))
