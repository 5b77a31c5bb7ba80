"""The activity worker: polls one task queue, runs activities, reports their results.

It does what ``weft-worker`` (the Rust crate) does: long polls that ask only for as many tasks
as there are free slots, results re-reported while the server restarts, cancellation through
heartbeats, and on SIGINT/SIGTERM a drain: stop polling, wait up to ``drain_timeout`` for the
running activities, then hand the unfinished tasks back so another worker takes them at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime
import logging
import os
import signal
import socket
import threading
import time
import traceback
from typing import Any, Callable, Iterable

from weft import activity, converter, tracing
from weft.client import Client
from weft.errors import (
    ActivityError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    WeftError,
)
from weft.v1 import weft_pb2 as pb

log = logging.getLogger("weft.worker")

# How long one long poll waits on the server for tasks.
_POLL_TIMEOUT_S = 10.0
# How long a finished activity's result is re-sent while the server is unreachable.
_REPORT_FOR_S = 60.0


# The workers of each loop that stop on SIGINT/SIGTERM: a loop has one handler per signal,
# and several workers (one per task queue) may share a process.
_signalled: dict[asyncio.AbstractEventLoop, set[Worker]] = {}


def _stop_on_signals(
    loop: asyncio.AbstractEventLoop, worker: Worker, *, remove: bool = False
) -> None:
    workers = _signalled.setdefault(loop, set())
    if remove:
        workers.discard(worker)
        if not workers:
            del _signalled[loop]
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return
    if not workers:

        def stop_all() -> None:
            for w in list(_signalled.get(loop, ())):
                w.shutdown()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_all)
    workers.add(worker)


class _Attempt:
    """One running attempt: its info, cancellation and heartbeats (what
    :mod:`weft.activity` reaches through a context variable)."""

    def __init__(
        self, worker: Worker, task: pb.ActivityTask, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.worker = worker
        self.token = task.task_token
        self.loop = loop
        self.cancelled = threading.Event()
        # Set when the worker gives up on the attempt at shutdown: nothing is reported.
        self.abandoned = False
        self.inner: asyncio.Future[Any] | None = None
        self._details: bytes | None = None
        self._sending = False
        details: Any = None
        if task.heartbeat_details:
            try:
                details = converter.from_payload(task.heartbeat_details)
            except converter.ConversionError:
                details = bytes(task.heartbeat_details)
        self.info = activity.Info(
            activity_name=task.activity_name,
            task_queue=worker.task_queue,
            workflow_id=task.workflow_id,
            run_id=task.run_id,
            attempt=task.attempt,
            idempotency_key=task.idempotency_key,
            deadline=(
                datetime.datetime.fromtimestamp(task.deadline_ms / 1000, datetime.timezone.utc)
                if task.deadline_ms
                else None
            ),
            heartbeat_timeout=(
                datetime.timedelta(milliseconds=task.heartbeat_timeout_ms)
                if task.heartbeat_timeout_ms
                else None
            ),
            heartbeat_details=details,
        )

    def heartbeat(self, details: Any) -> None:
        payload = converter.to_payload(details)
        self.loop.call_soon_threadsafe(self._queue_heartbeat, payload)

    def _queue_heartbeat(self, payload: bytes) -> None:
        # Only the latest details matter: one heartbeat in flight, the newest one next.
        self._details = payload
        if not self._sending:
            self._sending = True
            self.loop.create_task(self._send_heartbeats())

    async def _send_heartbeats(self) -> None:
        conn = self.worker.client._conn
        try:
            while self._details is not None:
                details, self._details = self._details, None
                try:
                    reply = await conn.call(
                        conn.workers.RecordHeartbeat,
                        pb.RecordHeartbeatRequest(task_token=self.token, details=details),
                        timeout=30,
                    )
                except Unavailable as e:
                    log.debug("heartbeat not delivered: %s", e)
                    continue
                except WeftError as e:
                    log.warning("heartbeat refused: %s", e)
                    continue
                if reply.cancel_requested:
                    self.request_cancel()
        finally:
            self._sending = False

    def request_cancel(self) -> None:
        if self.cancelled.is_set():
            return
        log.info(
            "activity %s of %s asked to stop (cancelled or timed out)",
            self.info.activity_name,
            self.info.workflow_id,
        )
        self.cancelled.set()
        if self.inner is not None:
            self.inner.cancel()


class Worker:
    """Runs ``activities`` for the tasks of ``task_queue``.

    ``max_concurrent``: how many activities run at once (sync ones in a thread pool of that
    size); ``drain_timeout``: on shutdown, how long running activities may finish before their
    tasks are handed back; ``include_tracebacks``: add an exception's traceback to the failure
    message the workflow sees (off: only ``kind`` and message leave the process);
    ``otlp_endpoint``: the OpenTelemetry collector this process's spans go to, if the
    application set up no tracer provider of its own (default: ``WEFT_OTLP_ENDPOINT``, then
    the ``OTEL_EXPORTER_OTLP_*`` variables; needs the ``otel`` extra). Each attempt runs in a
    span continuing the run's trace whenever OpenTelemetry is installed (:mod:`weft.tracing`).
    """

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        activities: Iterable[Callable[..., Any]],
        max_concurrent: int = 32,
        drain_timeout: float = 10.0,
        include_tracebacks: bool = False,
        worker_id: str | None = None,
        otlp_endpoint: str | None = None,
    ) -> None:
        if not task_queue:
            raise ValueError("task_queue is required")
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.client = client
        self.task_queue = task_queue
        self.max_concurrent = max_concurrent
        self.drain_timeout = drain_timeout
        self.include_tracebacks = include_tracebacks
        self.worker_id = worker_id or f"py-{socket.gethostname()}-{os.getpid()}"
        self.activities: dict[str, activity.Definition] = {}
        for fn in activities:
            d = activity.definition(fn)
            if d.name in self.activities:
                raise ValueError(f"two activities are named {d.name!r}")
            self.activities[d.name] = d
        if not self.activities:
            raise ValueError("a worker needs at least one activity")
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: dict[asyncio.Task[None], _Attempt] = {}
        self._slot_freed: asyncio.Event | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        tracing.install(otlp_endpoint)

    def shutdown(self) -> None:
        """Asks :meth:`run` to stop polling and drain; safe from any thread or a signal."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def run(self, *, handle_signals: bool = True) -> None:
        """Polls until :meth:`shutdown` (or SIGINT/SIGTERM, with ``handle_signals``), then
        drains and returns."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_concurrent, thread_name_prefix="weft-activity"
        )
        signals = handle_signals and threading.current_thread() is threading.main_thread()
        if signals:
            _stop_on_signals(loop, self)
        log.info(
            "worker %s polling %s for %s",
            self.worker_id,
            self.task_queue,
            ", ".join(sorted(self.activities)),
        )
        try:
            await self._poll_loop()
            await self._drain()
        finally:
            if signals:
                _stop_on_signals(loop, self, remove=True)
            self._executor.shutdown(wait=False, cancel_futures=True)
            tracing.flush()
        log.info("worker %s stopped", self.worker_id)

    async def _poll_loop(self) -> None:
        assert self._stop is not None and self._slot_freed is not None
        conn = self.client._conn
        stop = asyncio.ensure_future(self._stop.wait())
        backoff = 0.1
        try:
            while not self._stop.is_set():
                free = self.max_concurrent - len(self._running)
                if free <= 0:
                    self._slot_freed.clear()
                    freed = asyncio.ensure_future(self._slot_freed.wait())
                    await asyncio.wait({freed, stop}, return_when=asyncio.FIRST_COMPLETED)
                    freed.cancel()
                    continue
                poll = asyncio.ensure_future(
                    conn.call(
                        conn.workers.PollActivityTask,
                        pb.PollActivityTaskRequest(
                            task_queue=self.task_queue,
                            worker_id=self.worker_id,
                            max_tasks=min(free, 100),
                            poll_timeout_ms=int(_POLL_TIMEOUT_S * 1000),
                        ),
                        timeout=_POLL_TIMEOUT_S + 20,
                        wait_for_ready=True,
                    )
                )
                await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not poll.done():
                    poll.cancel()
                    break
                try:
                    reply = poll.result()
                except (Unauthenticated, PermissionDenied, InvalidArgument):
                    # A token or argument the server refuses will not get better by waiting.
                    raise
                except WeftError as e:
                    log.warning("poll failed (%s); retrying in %.1f s", e, backoff)
                    await asyncio.wait({stop}, timeout=backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.1
                for task in reply.tasks:
                    self._start(task)
        finally:
            stop.cancel()

    def _start(self, task: pb.ActivityTask) -> None:
        assert self._loop is not None
        attempt = _Attempt(self, task, self._loop)
        runner = self._loop.create_task(self._execute(attempt, task))
        self._running[runner] = attempt
        runner.add_done_callback(self._finished)

    def _finished(self, runner: asyncio.Task[None]) -> None:
        self._running.pop(runner, None)
        if self._slot_freed is not None:
            self._slot_freed.set()
        if not runner.cancelled() and runner.exception() is not None:
            log.error("activity runner failed", exc_info=runner.exception())

    async def _drain(self) -> None:
        if not self._running:
            return
        log.info(
            "draining: %d activities running, waiting up to %.1f s",
            len(self._running),
            self.drain_timeout,
        )
        _, pending = await asyncio.wait(set(self._running), timeout=self.drain_timeout)
        if not pending:
            return
        abandoned = [self._running[r] for r in pending if r in self._running]
        for attempt in abandoned:
            attempt.abandoned = True
            attempt.cancelled.set()
        for runner in pending:
            runner.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        conn = self.client._conn
        for attempt in abandoned:
            try:
                await conn.call(
                    conn.workers.FailActivityTask,
                    pb.FailActivityTaskRequest(
                        task_token=attempt.token,
                        error_kind="WorkerShutdown",
                        message=f"worker {self.worker_id} shut down",
                        handed_back=True,
                    ),
                    timeout=10,
                )
                log.info("handed back %s of %s", attempt.info.activity_name, attempt.info.workflow_id)
            except WeftError as e:
                # Its lease will expire and the server retries it anyway.
                log.warning("could not hand back a task: %s", e)

    async def _execute(self, attempt: _Attempt, task: pb.ActivityTask) -> None:
        outcome: pb.CompleteActivityTaskRequest | pb.FailActivityTaskRequest
        try:
            with tracing.attempt_span(
                task.traceparent,
                task.activity_name,
                task.workflow_id,
                task.run_id,
                self.task_queue,
                task.attempt,
            ):
                output = await self._invoke(attempt, task)
            outcome = pb.CompleteActivityTaskRequest(task_token=attempt.token, output=output)
        except asyncio.CancelledError:
            if attempt.abandoned or not attempt.cancelled.is_set():
                raise
            outcome = self._failure(attempt, "Cancelled", "the attempt was asked to stop", True)
        except ActivityError as e:
            outcome = self._failure(attempt, e.kind, e.message, e.non_retryable)
        except Exception as e:
            log.warning(
                "activity %s of %s failed (attempt %d)",
                attempt.info.activity_name,
                attempt.info.workflow_id,
                attempt.info.attempt,
                exc_info=True,
            )
            message = str(e) or type(e).__name__
            if self.include_tracebacks:
                message += "\n" + "".join(traceback.format_exception(e))
            outcome = self._failure(attempt, type(e).__name__, message, False)
        if attempt.cancelled.is_set() and isinstance(outcome, pb.CompleteActivityTaskRequest):
            # A sync activity that ran on after the server gave up on it: its result is moot.
            outcome = self._failure(attempt, "Cancelled", "the attempt was asked to stop", True)
        await self._report(attempt, outcome)

    def _failure(
        self, attempt: _Attempt, kind: str, message: str, non_retryable: bool
    ) -> pb.FailActivityTaskRequest:
        return pb.FailActivityTaskRequest(
            task_token=attempt.token,
            error_kind=kind or "ActivityError",
            message=message,
            non_retryable=non_retryable,
        )

    async def _invoke(self, attempt: _Attempt, task: pb.ActivityTask) -> bytes:
        d = self.activities.get(task.activity_name)
        if d is None:
            raise ActivityError(
                "ActivityNotRegistered",
                f"worker {self.worker_id} on {self.task_queue} has no activity "
                f"{task.activity_name!r} (it has {', '.join(sorted(self.activities))})",
                non_retryable=True,
            )
        args: tuple[Any, ...] = ()
        if d.input_type is not None:
            try:
                args = (converter.from_payload(task.input, d.input_type),)
            except converter.ConversionError as e:
                raise ActivityError(
                    "InvalidInput",
                    f"input of activity {d.name!r} does not convert: {e}",
                    non_retryable=True,
                ) from None
        if d.is_async:

            async def call() -> Any:
                activity._current.set(attempt)
                return await d.fn(*args)

            # A task of its own, so that a cancel from a heartbeat reaches only the activity.
            inner: asyncio.Task[Any] = asyncio.ensure_future(call())
            attempt.inner = inner
            try:
                result = await asyncio.shield(inner)
            except asyncio.CancelledError:
                inner.cancel()
                if not inner.done():
                    await asyncio.wait({inner})
                raise
        else:
            assert self._loop is not None
            context = contextvars.copy_context()
            context.run(activity._current.set, attempt)
            result = await self._loop.run_in_executor(
                self._executor, context.run, d.fn, *args
            )
        try:
            return converter.to_payload(result)
        except converter.ConversionError as e:
            raise ActivityError(
                "BadOutput", f"output of activity {d.name!r}: {e}", non_retryable=True
            ) from None

    async def _report(
        self,
        attempt: _Attempt,
        outcome: pb.CompleteActivityTaskRequest | pb.FailActivityTaskRequest,
    ) -> None:
        conn = self.client._conn
        method: Any = (
            conn.workers.CompleteActivityTask
            if isinstance(outcome, pb.CompleteActivityTaskRequest)
            else conn.workers.FailActivityTask
        )
        give_up = time.monotonic() + _REPORT_FOR_S
        delay = 0.1
        while True:
            try:
                await conn.call(method, outcome, timeout=30, wait_for_ready=True)
                return
            except (Unavailable, DeadlineExceeded) as e:
                # The server is restarting: the result is still good when it is back.
                if time.monotonic() + delay > give_up:
                    log.warning("gave up reporting a result after %.0f s: %s", _REPORT_FOR_S, e)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except (NotFound, FailedPrecondition) as e:
                # The attempt is over on the server (cancelled, timed out, run closed).
                log.info("result of %s not taken: %s", attempt.info.activity_name, e)
                return
            except WeftError as e:
                log.warning("could not report the result of %s: %s", attempt.info.activity_name, e)
                return
