"""Defining activities, and what a running activity can ask of its worker.

An activity is a plain function, async (run on the worker's event loop) or sync (run in the
worker's thread pool), marked with :func:`defn`. Its one parameter, if any, is decoded from the
task's JSON input by its type annotation (see :mod:`weft.converter`); its return value is the
result. Inside it, :func:`info` says which attempt this is and :func:`heartbeat` reports
progress, which a retried attempt reads back as ``info().heartbeat_details``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import inspect
import threading
import typing
from typing import Any, Callable, Protocol, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True)
class Info:
    """Which attempt of which activity is running."""

    activity_name: str
    task_queue: str
    workflow_id: str
    run_id: str
    #: 1 for the first attempt.
    attempt: int
    #: The same for every attempt of this activity: use it to make side effects idempotent.
    idempotency_key: str
    #: When this attempt must have finished (start-to-close), None if never.
    deadline: datetime.datetime | None
    #: How often the server expects a heartbeat, None if it does not.
    heartbeat_timeout: datetime.timedelta | None
    #: The details of the last heartbeat of an earlier attempt (decoded JSON), None if none:
    #: resume from them.
    heartbeat_details: Any


class _Running(Protocol):
    info: Info
    cancelled: threading.Event

    def heartbeat(self, details: Any) -> None: ...


_current: contextvars.ContextVar[_Running] = contextvars.ContextVar("weft_activity")


def _running() -> _Running:
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError(
            "not inside an activity: weft.activity.info() and heartbeat() work only in a "
            "function a weft Worker runs"
        ) from None


def info() -> Info:
    """The running attempt's :class:`Info`."""
    return _running().info


def heartbeat(details: Any = None) -> None:
    """Reports progress (JSON-encodable ``details``) and keeps the attempt's lease.

    It returns at once: the worker sends the latest details in the background. When the
    server answers that the attempt should stop (the run was cancelled, or the attempt timed
    out), an async activity is cancelled (``asyncio.CancelledError`` at its next ``await``)
    and a sync one sees :func:`is_cancelled` turn True.
    """
    _running().heartbeat(details)


def is_cancelled() -> bool:
    """True once the server asked this attempt to stop: a sync activity should check it
    between steps and return (or raise) soon."""
    return _running().cancelled.is_set()


@dataclasses.dataclass(frozen=True)
class Definition:
    """An activity as a worker registers it."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    #: The type the input is decoded into; None when the function takes no input.
    input_type: Any
    output_type: Any


_ATTR = "__weft_activity__"


@overload
def defn(fn: F) -> F: ...


@overload
def defn(*, name: str | None = None) -> Callable[[F], F]: ...


def defn(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Marks a function as an activity named ``name`` (default: the function's name).

    ``@activity.defn`` or ``@activity.defn(name="embed")``. The function takes at most one
    parameter (the input); annotate it to have the input decoded into that type.
    """

    def mark(f: F) -> F:
        setattr(f, _ATTR, _definition(f, name or f.__name__))
        return f

    return mark(fn) if fn is not None else mark


def definition(fn: Callable[..., Any]) -> Definition:
    """The :class:`Definition` of a function marked with :func:`defn`."""
    d = getattr(fn, _ATTR, None)
    if not isinstance(d, Definition):
        raise TypeError(
            f"{getattr(fn, '__qualname__', fn)!r} is not an activity: mark it with "
            "@weft.activity.defn"
        )
    return d


def _definition(fn: Callable[..., Any], name: str) -> Definition:
    if not callable(fn):
        raise TypeError(f"activity {name!r} must be a function")
    params = list(inspect.signature(fn).parameters.values())
    if len(params) > 1 or any(
        p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params
    ):
        raise TypeError(
            f"activity {name!r} must take at most one positional parameter (its input); "
            "wrap several values in a dataclass"
        )
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):
        # Annotations that do not resolve here: decode as plain JSON.
        hints = {}
    input_type = (hints.get(params[0].name, Any) if params else None)
    return Definition(
        name=name,
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
        input_type=input_type,
        output_type=hints.get("return", Any),
    )
