"""Writing workflows in Python: the code that runs inside a weft workflow component.

A workflow is a class marked with :func:`defn` whose ``async`` method marked with :func:`run`
takes the run's input and returns its result. It runs inside a WebAssembly component built by
``weft build`` (componentize-py), where every call that reaches the world goes through weft's
host and is recorded in the run's history, so a crashed or evicted run is rebuilt by replaying
its history to the same state::

    from datetime import timedelta
    from weft import activity, workflow

    @activity.defn
    async def compose_greeting(name: str) -> str: ...

    @workflow.defn
    class GreetingWorkflow:
        @workflow.run
        async def run(self, name: str) -> str:
            return await workflow.execute_activity(
                compose_greeting, name, start_to_close_timeout=timedelta(seconds=10)
            )

Python's own ``time.time()``, ``datetime.now()``, ``random`` and ``uuid.uuid4()`` are
deterministic here: the clock is workflow time (recorded), ``random`` draws from the run's
seed. ``asyncio.sleep`` is a durable timer and ``asyncio.gather`` fans out; a blocking
``time.sleep`` fails the run. Operations cancelled (by ``task.cancel()``, or by a cancellation
of the run) raise :class:`asyncio.CancelledError` in the code waiting on them; letting it
escape ``run`` ends the run as cancelled. Iterate sets in ``sorted()`` order: string hashing is
seeded per build, so two builds of the same source may order a set differently.

This module imports only the standard library and :mod:`weft.converter`, never the gRPC client.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import collections
import contextvars
import dataclasses
import datetime
import importlib
import random as _random
import time
import traceback
import typing
import uuid
from typing import Any, Awaitable, Callable, TypeVar

from weft.converter import from_payload, to_payload

__all__ = [
    "ActivityError",
    "ChildWorkflowError",
    "Info",
    "ParentClosePolicy",
    "RetryPolicy",
    "continue_as_new",
    "defn",
    "execute_activity",
    "execute_child_workflow",
    "info",
    "logger",
    "now",
    "patched",
    "random",
    "run",
    "sleep",
    "start_activity",
    "start_child_workflow",
    "uuid4",
    "wait_signal",
]

T = TypeVar("T")
C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])


def _bindings(name: str) -> Any:
    """A module of the component's generated bindings (componentize-py writes them at build
    time), imported by name so that this module imports elsewhere too (tests, type checks)."""
    return importlib.import_module(name)


# Imported at module import, so that they are in componentize-py's snapshot: a module first
# imported inside `run` does not exist at run time.
try:
    _host: Any = _bindings("wit_world.imports.host")
    _types: Any = _bindings("wit_world.imports.types")
    _results: Any = _bindings("componentize_py_types")
except ImportError:  # outside a component
    _host = _types = _results = None


def _require_host() -> Any:
    if _host is None:
        raise RuntimeError(
            "weft.workflow's functions run only inside a workflow component: build it with "
            "`weft build` and run it on a weft server (or `weft run`)"
        )
    return _host


# --- errors ---------------------------------------------------------------------------------


class ActivityError(Exception):
    """An activity failed after its retries, or timed out (``kind == "TimedOut"``)."""

    def __init__(self, kind: str, message: str, attempts: int = 0) -> None:
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind
        self.message = message
        self.attempts = attempts


class ChildWorkflowError(ActivityError):
    """A child workflow failed (or timed out)."""


class _Deadlock(RuntimeError):
    pass


# --- definitions ----------------------------------------------------------------------------

_DEFN = "__weft_workflow__"
_RUN = "__weft_workflow_run__"


@dataclasses.dataclass(frozen=True)
class _Definition:
    name: str
    cls: type
    run: Callable[..., Any]
    input_type: Any


@typing.overload
def defn(cls: C) -> C: ...


@typing.overload
def defn(*, name: str | None = None) -> Callable[[C], C]: ...


def defn(cls: C | None = None, *, name: str | None = None) -> C | Callable[[C], C]:
    """Marks a class as a workflow named ``name`` (default: the class's name). Its ``async``
    method marked with :func:`run` (or named ``run``) is the workflow."""

    def mark(c: C) -> C:
        runs = [
            m for m in vars(c).values() if callable(m) and getattr(m, _RUN, False)
        ] or [m for k, m in vars(c).items() if k == "run" and callable(m)]
        if len(runs) != 1:
            raise TypeError(
                f"workflow {c.__qualname__} needs exactly one method marked @workflow.run"
            )
        fn = runs[0]
        if not asyncio.iscoroutinefunction(fn):
            raise TypeError(f"{c.__qualname__}.{fn.__name__} must be `async def`")
        try:
            hints = typing.get_type_hints(fn)
        except (NameError, TypeError):
            hints = {}
        params = [p for p in fn.__code__.co_varnames[1 : fn.__code__.co_argcount]]
        input_type = hints.get(params[0], Any) if params else None
        setattr(c, _DEFN, _Definition(name or c.__name__, c, fn, input_type))
        return c

    return mark(cls) if cls is not None else mark


def run(fn: F) -> F:
    """Marks the ``async`` method of a :func:`defn` class that runs the workflow."""
    setattr(fn, _RUN, True)
    return fn


# --- options --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How the server retries a failed activity (the Rust SDK's defaults)."""

    initial_interval: datetime.timedelta = datetime.timedelta(seconds=1)
    backoff_coefficient: float = 2.0
    maximum_interval: datetime.timedelta = datetime.timedelta(seconds=100)
    #: 0: unlimited.
    maximum_attempts: int = 0
    #: Error kinds (exception type names) that are never retried.
    non_retryable_error_types: list[str] = dataclasses.field(default_factory=list)


class ParentClosePolicy:
    """What happens to a child when its parent closes first."""

    TERMINATE = "terminate"
    REQUEST_CANCEL = "request-cancel"
    ABANDON = "abandon"


def _millis(d: datetime.timedelta | float) -> int:
    seconds = d.total_seconds() if isinstance(d, datetime.timedelta) else float(d)
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative ({seconds} s)")
    return int(round(seconds * 1000))


def _ms(d: datetime.timedelta | float | None) -> int | None:
    return None if d is None else _millis(d)


def _retry(policy: RetryPolicy | None) -> Any:
    if policy is None:
        return None
    return _types.RetryPolicy(
        initial_interval_ms=_millis(policy.initial_interval),
        backoff_coefficient=float(policy.backoff_coefficient),
        maximum_interval_ms=_millis(policy.maximum_interval),
        maximum_attempts=policy.maximum_attempts,
        non_retryable_errors=list(policy.non_retryable_error_types),
    )


# --- the event loop -------------------------------------------------------------------------


class _Operation(asyncio.Future[Any]):
    """A durable operation (activity, timer, child, signal) waiting for its completion.

    ``cancel()`` asks the host to cancel the operation and cancels the future at once, as
    Temporal's default (``TRY_CANCEL``) does, so that ``Task.cancel()``, ``wait_for`` and
    ``gather`` see the cancellation now; the operation's own completion, when it comes, is
    consumed and dropped. Both happen at the same point of the code on replay.
    """

    def __init__(
        self, loop: _Loop, handle: int, what: str, result_type: Any = Any
    ) -> None:
        super().__init__(loop=loop)
        self._weft_handle = handle
        self._weft_what = what
        self._weft_result_type = result_type
        self._weft_cancel_sent = False
        loop._operations[handle] = self

    def cancel(self, msg: Any = None) -> bool:
        if self.done():
            return False
        if not self._weft_cancel_sent:
            self._weft_cancel_sent = True
            _require_host().cancel(self._weft_handle)
        return super().cancel(msg)

    def _weft_complete(self, completion: Any) -> None:
        if self.done():
            return
        if isinstance(completion, _types.Completion_Ok):
            if self._weft_result_type is None:
                self.set_result(None)
                return
            try:
                value = from_payload(completion.value, self._weft_result_type)
            except Exception as error:  # the result does not fit its type: the awaiter's
                self.set_exception(error)
            else:
                self.set_result(value)
            return
        failure = completion.value
        if isinstance(failure, _types.Failure_Cancelled):
            super().cancel()
        elif isinstance(failure, _types.Failure_TimedOut):
            error_type = ChildWorkflowError if self._weft_what == "child" else ActivityError
            self.set_exception(error_type("TimedOut", failure.value))
        elif isinstance(failure, _types.Failure_ChildFailed):
            e = failure.value
            self.set_exception(ChildWorkflowError(e.kind, e.message, e.attempts))
        else:
            e = failure.value
            self.set_exception(ActivityError(e.kind, e.message, e.attempts))


#: The callback `asyncio.sleep` schedules with `call_later` (on the future it awaits).
_SET_RESULT_UNLESS_CANCELLED = getattr(asyncio.futures, "_set_result_unless_cancelled", None)


class _Timer(asyncio.TimerHandle):
    """``call_later``'s handle, with the durable timer behind it (cancelled with it)."""

    operation: _Operation | None = None


class _Loop(asyncio.AbstractEventLoop):
    """The event loop of a workflow: runs ready callbacks, then waits in the host (durably)
    for the next operation to complete. Single-threaded and deterministic: the order of
    everything follows the order of the history."""

    def __init__(self) -> None:
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        #: Host handle -> operation, in start order (the order `wait-any` is given).
        self._operations: dict[int, _Operation] = {}
        self._running = False

    # What asyncio's tasks, futures, sleep and gather need of a loop.
    def call_soon(  # type: ignore[override]
        self,
        callback: Callable[..., Any],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[..., Any],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        ms = _millis(max(delay, 0.0))
        when = self.time() + ms / 1000
        timer = _Timer(when, callback, args, self, context)
        if ms == 0:
            self._ready.append(timer)
            return timer
        op = _Operation(self, _require_host().start_timer(ms), "timer")
        timer.operation = op

        def fired(f: asyncio.Future[Any]) -> None:
            if timer.cancelled():
                return
            if not f.cancelled():
                self._ready.append(timer)
                return
            # The host cancelled the timer (the run was asked to cancel): `asyncio.sleep`
            # waits on the future this callback would have resolved, so cancel that future,
            # and the sleeper sees CancelledError instead of waiting for ever.
            waiter = args[0] if args and callback is _SET_RESULT_UNLESS_CANCELLED else None
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.cancel()

        op.add_done_callback(fired)
        return timer

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., Any],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_later(when - self.time(), callback, *args, context=context)

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        op = handle.operation if isinstance(handle, _Timer) else None
        if op is not None and not op.done():
            op.cancel()

    def time(self) -> float:
        # The guest clock (WASI monotonic time): recorded nowhere, the same on replay.
        return time.monotonic()

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Any,
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return False

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        message = context.get("message", "unhandled exception in the workflow's event loop")
        exc = context.get("exception")
        if exc is not None:
            message = f"{message}: {type(exc).__name__}: {exc}"
        logger.warning(message)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)

    def drive(self, coro: Awaitable[T]) -> T:
        """Runs ``coro`` to its end: ready callbacks first, then a durable wait."""
        asyncio.events._set_running_loop(self)
        self._running = True
        try:
            task = self.create_task(coro)
            while True:
                while self._ready:
                    handle = self._ready.popleft()
                    if not handle.cancelled():
                        handle._run()
                if task.done():
                    result: T = task.result()
                    return result
                waiting = list(self._operations)
                if not waiting:
                    raise _Deadlock(
                        "the workflow waits for something no durable operation completes "
                        "(an asyncio.Event or a future nothing sets); wait on activities, "
                        "timers, signals or children"
                    )
                index, completion = _require_host().wait_any(waiting)
                self._operations.pop(waiting[index])._weft_complete(completion)
        finally:
            self._running = False
            asyncio.events._set_running_loop(None)


def _loop() -> _Loop:
    loop = asyncio.events._get_running_loop()
    if not isinstance(loop, _Loop):
        raise RuntimeError("weft.workflow's functions run only inside a workflow's `run`")
    return loop


# --- what a workflow can do -----------------------------------------------------------------


def _activity_name(activity: Callable[..., Any] | str) -> tuple[str, Any]:
    if isinstance(activity, str):
        return activity, Any
    d = getattr(activity, "__weft_activity__", None)
    if d is None:
        raise TypeError(
            f"{getattr(activity, '__qualname__', activity)!r} is not an activity: pass its "
            "name, or a function marked with @weft.activity.defn"
        )
    return d.name, d.output_type


def start_activity(
    activity: Callable[..., Any] | str,
    arg: Any = None,
    *,
    task_queue: str | None = None,
    start_to_close_timeout: datetime.timedelta | None = None,
    schedule_to_close_timeout: datetime.timedelta | None = None,
    schedule_to_start_timeout: datetime.timedelta | None = None,
    heartbeat_timeout: datetime.timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    result_type: Any = None,
) -> asyncio.Future[Any]:
    """Schedules an activity (a function marked with ``@activity.defn``, or its name) and
    returns the future of its result; ``cancel()`` on it asks the server to cancel it."""
    name, output_type = _activity_name(activity)
    options = _types.ActivityOptions(
        task_queue=task_queue,
        start_to_close_timeout_ms=_ms(start_to_close_timeout),
        schedule_to_close_timeout_ms=_ms(schedule_to_close_timeout),
        heartbeat_timeout_ms=_ms(heartbeat_timeout),
        retry=_retry(retry_policy),
    )
    ext = _types.ActivityOptionsExt(schedule_to_start_timeout_ms=_ms(schedule_to_start_timeout))
    loop = _loop()
    handle = _require_host().start_activity_ext(name, to_payload(arg), options, ext)
    return _Operation(loop, handle, "activity", result_type or output_type)


async def execute_activity(
    activity: Callable[..., Any] | str,
    arg: Any = None,
    **options: Any,
) -> Any:
    """Runs an activity and returns its result (see :func:`start_activity` for the options).
    A failure after the retries raises :class:`ActivityError`."""
    return await start_activity(activity, arg, **options)


def start_child_workflow(
    workflow: type | str,
    arg: Any = None,
    *,
    id: str | None = None,
    task_queue: str | None = None,
    parent_close_policy: str | None = None,
    result_type: Any = Any,
) -> asyncio.Future[Any]:
    """Starts a child workflow (a :func:`defn` class, or its type name) and returns the future
    of its result."""
    if isinstance(workflow, str):
        name = workflow
    else:
        d = getattr(workflow, _DEFN, None)
        name = d.name if isinstance(d, _Definition) else workflow.__name__
    options = _types.ChildOptions(workflow_id=id, task_queue=task_queue)
    policy = {
        ParentClosePolicy.TERMINATE: _types.ParentClosePolicy.TERMINATE,
        ParentClosePolicy.REQUEST_CANCEL: _types.ParentClosePolicy.REQUEST_CANCEL,
        ParentClosePolicy.ABANDON: _types.ParentClosePolicy.ABANDON,
    }.get(parent_close_policy) if parent_close_policy else None
    ext = _types.ChildOptionsExt(parent_close_policy=policy)
    loop = _loop()
    handle = _require_host().start_child_workflow_ext(name, to_payload(arg), options, ext)
    return _Operation(loop, handle, "child", result_type)


async def execute_child_workflow(workflow: type | str, arg: Any = None, **options: Any) -> Any:
    """Runs a child workflow and returns its result; a failure raises
    :class:`ChildWorkflowError`."""
    return await start_child_workflow(workflow, arg, **options)


async def sleep(duration: datetime.timedelta | float) -> None:
    """Sleeps durably (a timer in the run's history): ``asyncio.sleep`` does the same."""
    ms = _millis(duration)
    await _Operation(_loop(), _require_host().start_timer(ms), "timer", None)


async def wait_signal(name: str, result_type: Any = Any) -> Any:
    """Waits for the next signal called ``name`` and returns its payload (signals queue up
    until waited for)."""
    loop = _loop()
    return await _Operation(loop, _require_host().next_signal(name), "signal", result_type)


def continue_as_new(arg: Any = None) -> typing.NoReturn:
    """Ends this run and starts a fresh one of the same workflow with ``arg`` as its input
    (an empty history): for workflows that loop for ever."""
    _require_host().continue_as_new(to_payload(arg))
    raise RuntimeError("continue-as-new returned")  # the host ends the run first


def patched(change_id: str) -> bool:
    """Whether this run takes the new code path of change ``change_id``: true for runs that
    reach it on new code, false when replaying a history recorded before the change."""
    return bool(_require_host().patched(change_id))


@dataclasses.dataclass(frozen=True)
class Info:
    """Who this run is."""

    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    run_number: int


def info() -> Info:
    """This run's ids, type, task queue and number (1 + continue-as-new count)."""
    i = _require_host().info()
    return Info(i.workflow_id, i.run_id, i.workflow_type, i.task_queue, i.run_number)


def now() -> datetime.datetime:
    """Workflow time, as a UTC datetime (recorded; ``datetime.now()`` is the same)."""
    ms = _require_host().now()
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)


def random() -> _random.Random:
    """A generator seeded from the run's seed (``random``'s module functions are too)."""
    return _random.Random(_require_host().random_u64())


def uuid4() -> uuid.UUID:
    """A version-4 UUID drawn from the run's seed (``uuid.uuid4()`` is the same)."""
    host = _require_host()
    return uuid.UUID(int=host.random_u64() << 64 | host.random_u64(), version=4)


class _Logger:
    """The run's log: lines go to the server's log with the run's ids, once (not again when
    the run is replayed). ``print`` writes info lines too."""

    def _log(self, level: str, message: str, *args: Any, trace: bool = False) -> None:
        text = message % args if args else message
        if trace:
            text = f"{text}\n{traceback.format_exc()}"
        _require_host().log(getattr(_types.LogLevel, level), text)

    def debug(self, message: str, *args: Any) -> None:
        self._log("DEBUG", message, *args)

    def info(self, message: str, *args: Any) -> None:
        self._log("INFO", message, *args)

    def warning(self, message: str, *args: Any) -> None:
        self._log("WARN", message, *args)

    def error(self, message: str, *args: Any) -> None:
        self._log("ERROR", message, *args)

    def exception(self, message: str, *args: Any) -> None:
        self._log("ERROR", message, *args, trace=True)


logger = _Logger()


# --- the component's entry point ------------------------------------------------------------


def _error(kind: str, message: str) -> BaseException:
    err: BaseException = _results.Err(_types.ErrorInfo(kind=kind, message=message, attempts=0))
    return err


def component(workflow_cls: type) -> type:
    """The ``WitWorld`` class a component exports for ``workflow_cls`` (``weft build`` writes
    the ``app.py`` that calls this)."""
    found = getattr(workflow_cls, _DEFN, None)
    if not isinstance(found, _Definition):
        raise TypeError(f"{workflow_cls.__qualname__} is not marked with @workflow.defn")
    d: _Definition = found

    class WitWorld:
        def run(self, input: bytes) -> bytes:
            instance = d.cls()
            args = [] if d.input_type is None else [from_payload(input, d.input_type)]
            try:
                # Only what workflows use of a loop is defined; the rest (sockets,
                # subprocesses) stays abstract on purpose.
                loop = _Loop()  # type: ignore[abstract]
                result = loop.drive(d.run(instance, *args))
            except asyncio.CancelledError:
                raise _error("Cancelled", "the run was cancelled") from None
            except _Deadlock as e:
                raise _error("Deadlock", str(e)) from None
            except ActivityError as e:
                raise _error(e.kind, _with_traceback(e)) from None
            except Exception as e:
                raise _error(type(e).__name__, _with_traceback(e)) from None
            return to_payload(result)

    return WitWorld


def _with_traceback(e: BaseException) -> str:
    """``str(e)``, then the Python traceback (file:line of each frame)."""
    frames = "".join(traceback.format_tb(e.__traceback__))
    return f"{e}\nTraceback (most recent call last):\n{frames}".rstrip()
