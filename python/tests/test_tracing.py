"""Traces as a collector receives them: a real server and a Python worker process both
exporting over OTLP/gRPC to a collector inside this test. The worker's `run activity` span
must continue the server's attempt span, and the activity's own span must hang under it."""

from __future__ import annotations

import asyncio
import signal
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import Server, WorkerProcess, free_port
from helpers import call, edge_cases_client, until
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """Keeps every span received, with the service that sent it."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method name)
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope in resource_spans.scope_spans:
                    self.spans.extend((service, s) for s in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def named(self, name: str) -> list[tuple[str, Any]]:
        with self.lock:
            return [(svc, s) for svc, s in self.spans if s.name == name]


def test_a_python_activity_continues_the_runs_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_processes: list[WorkerProcess]
) -> None:
    collector = Collector()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, grpc_server)
    port = free_port()
    grpc_server.add_insecure_port(f"127.0.0.1:{port}")
    grpc_server.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    server = Server(tmp_path / "weft.db", free_port(), tmp_path / "server.log")
    server.extra_flags = ["--otlp-endpoint", endpoint]
    server.start()
    # The worker process finds its collector as an operator would tell it.
    monkeypatch.setenv("WEFT_OTLP_ENDPOINT", endpoint)
    worker = WorkerProcess(server.url, "py-traced")
    worker_processes.append(worker)

    async def main() -> None:
        client = await edge_cases_client(server)
        handle = await client.start_workflow(
            "EdgeCases", call("traced", "hi", queue="py-traced"), id="traced-py"
        )
        assert await handle.result(timeout=60) == "HI"

        async def arrived() -> bool:
            return all(
                collector.named(n)
                for n in ("activity traced", "run activity traced", "model call")
            )

        await until(arrived, timeout=30, what="the attempt's, the worker's and the model's spans")

    try:
        asyncio.run(main())
        worker.signal(signal.SIGTERM)
        worker.wait(30)
        [(server_svc, attempt)] = collector.named("activity traced")
        [(worker_svc, work)] = collector.named("run activity traced")
        [(model_svc, model)] = collector.named("model call")
        assert server_svc == "weft-server"
        assert worker_svc == "weft-python-worker"
        assert model_svc == "weft-python-worker"
        assert work.trace_id == attempt.trace_id == model.trace_id
        assert work.parent_span_id == attempt.span_id, "the worker continues the attempt"
        assert model.parent_span_id == work.span_id, "the activity's span is the worker's child"
        attributes = {a.key: a.value for a in work.attributes}
        assert attributes["weft.workflow_id"].string_value == "traced-py"
        assert attributes["weft.attempt"].int_value == 1
    finally:
        server.kill()
        grpc_server.stop(0)
