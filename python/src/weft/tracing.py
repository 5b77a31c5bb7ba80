"""The attempt's trace, continued in the worker when OpenTelemetry is installed.

The server hands each attempt its W3C ``traceparent`` (``ActivityTask.traceparent``). With the
``otel`` extra installed (``pip install 'weft[otel]'``) the worker runs every activity inside a
``run activity NAME`` span whose parent is the server's attempt span, so the spans an activity
makes itself (a model call, a database query) join the run's trace. Without the extra, or for
a task from an untraced server, nothing changes.

Spans go to whatever tracer provider the application set up; if it set none, ``install`` (which
the worker calls) exports them over OTLP/gRPC to ``otlp_endpoint``, else ``WEFT_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``, as the Rust
processes do (``OTEL_SERVICE_NAME`` and the ``OTEL_BSP_*`` settings apply).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

try:
    from opentelemetry import trace as _trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the `otel` extra is not installed
    _trace = None  # type: ignore[assignment]

# The provider `install` made, kept so that `flush` can push out what it buffered.
_provider: Any = None


def available() -> bool:
    """Whether OpenTelemetry is installed."""
    return _trace is not None


def endpoint(explicit: str | None = None) -> str | None:
    """The collector to export to: `explicit`, else the environment; None when none is set."""
    for value in (
        explicit,
        os.environ.get("WEFT_OTLP_ENDPOINT"),
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ):
        if value and value.strip():
            return value.strip()
    return None


def install(otlp_endpoint: str | None = None, service_name: str = "weft-python-worker") -> bool:
    """Exports this process's spans to the collector `endpoint(otlp_endpoint)` names, unless
    the application installed a tracer provider of its own. Returns whether it installed one.

    Raises RuntimeError if a collector is named but the ``otel`` extra is not installed.
    """
    global _provider
    target = endpoint(otlp_endpoint)
    if target is None or _provider is not None:
        return False
    if _trace is None:
        raise RuntimeError(
            f"traces are to go to {target}, but OpenTelemetry is not installed: "
            "pip install 'weft[otel]'"
        )
    if not isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider):
        return False  # the application's own provider decides where spans go
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    insecure = target.startswith("http://")
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=target, insecure=insecure))
    )
    _trace.set_tracer_provider(provider)
    _provider = provider
    return True


def flush() -> None:
    """Sends the spans still buffered by the provider `install` made."""
    if _provider is not None:
        _provider.force_flush()


@contextlib.contextmanager
def attempt_span(
    traceparent: str,
    activity_name: str,
    workflow_id: str,
    run_id: str,
    task_queue: str,
    attempt: int,
) -> Iterator[Any]:
    """The current span while an attempt runs: a child of the server's attempt span, or no
    span at all (yields None) when the task carries no trace or OpenTelemetry is missing."""
    if _trace is None or not traceparent:
        yield None
        return
    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    if not _trace.get_current_span(parent).get_span_context().is_valid:
        # A malformed traceparent: no span rather than a trace of its own.
        yield None
        return
    tracer = _trace.get_tracer("weft.worker")
    with tracer.start_as_current_span(
        f"run activity {activity_name}",
        context=parent,
        kind=_trace.SpanKind.CONSUMER,
        attributes={
            "weft.workflow_id": workflow_id,
            "weft.run_id": run_id,
            "weft.task_queue": task_queue,
            "weft.activity": activity_name,
            "weft.attempt": attempt,
        },
    ) as span:
        yield span
