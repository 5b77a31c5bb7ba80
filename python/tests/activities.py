"""The activities the tests run, in-process or in `run_worker.py` processes."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

from weft import ActivityError, NonRetryableError, activity


@dataclasses.dataclass
class Greeting:
    greeting: str
    name: str


@activity.defn
async def compose_greeting(g: Greeting) -> str:
    return f"{g.greeting}, {g.name}!"


@activity.defn(name="square")
def square(i: int) -> int:
    return i * i


@activity.defn
async def flaky(fail_times: int) -> dict[str, int]:
    """Fails its first `fail_times` attempts."""
    attempt = activity.info().attempt
    if attempt <= fail_times:
        raise ConnectionError(f"attempt {attempt}: the model server is not up yet")
    return {"attempt": attempt}


@activity.defn
def refuse(reason: str) -> None:
    raise NonRetryableError("BadTicket", reason)


@activity.defn
def typed_failure(kind: str) -> None:
    raise ActivityError(kind, "a retryable failure with a kind of its own")


@dataclasses.dataclass
class Count:
    n: int
    step_s: float


@activity.defn
async def count_to(c: Count) -> dict[str, int]:
    """Counts to n, heartbeating each step; a retried attempt resumes where the last stopped."""
    info = activity.info()
    start = int(info.heartbeat_details or 0)
    for i in range(start, c.n):
        activity.heartbeat(i)
        await asyncio.sleep(c.step_s)
    return {"resumed_from": start, "attempt": info.attempt}


# Set when a cancellation reaches the activity, by workflow id (in-process workers only).
cancelled_async: dict[str, asyncio.Event] = {}
cancelled_sync: dict[str, threading.Event] = {}


@activity.defn
async def wait_async() -> str:
    info = activity.info()
    try:
        while True:
            activity.heartbeat("waiting")
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        cancelled_async.setdefault(info.workflow_id, asyncio.Event()).set()
        raise


@activity.defn
def wait_sync() -> str:
    info = activity.info()
    while not activity.is_cancelled():
        activity.heartbeat("waiting")
        time.sleep(0.05)
    cancelled_sync.setdefault(info.workflow_id, threading.Event()).set()
    return "stopped"


@activity.defn
async def slow_first(seconds: float) -> str:
    """Takes `seconds` on the first attempt, nothing on later ones."""
    if activity.info().attempt == 1:
        await asyncio.sleep(seconds)
    return f"done on attempt {activity.info().attempt}"


@activity.defn
def slow_sync(seconds: float) -> str:
    time.sleep(seconds)
    return f"slept {seconds}"


@activity.defn
async def traced(text: str) -> str:
    """Makes a span of its own, as a model call would."""
    from opentelemetry import trace

    with trace.get_tracer("test-model").start_as_current_span("model call"):
        await asyncio.sleep(0.005)
    return text.upper()


ALL = [
    compose_greeting,
    traced,
    square,
    flaky,
    refuse,
    typed_failure,
    count_to,
    wait_async,
    wait_sync,
    slow_first,
    slow_sync,
]
