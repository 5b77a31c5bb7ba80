"""The MlPipeline example end to end with its inference step on the Python ML worker
(`examples/ml_worker.py`, scikit-learn), through a real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from conftest import Server, component

from weft import Client, WorkflowFailed

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_ticket_triage_on_the_python_ml_worker(server: Server) -> None:
    worker = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "ml_worker.py"), server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    # It says when it polls; a worker that died at start-up fails the test now, not later.
    assert worker.stdout is not None
    started = b""
    while b"ml_worker:" not in started:
        line = worker.stdout.readline()
        assert line, f"the ML worker exited: {started.decode(errors='replace')}"
        started += line

    async def main() -> None:
        client = await Client.connect(server.url)
        await client.upload_module("MlPipeline", component("ml-pipeline"))
        labels = [
            {"name": "billing", "description": "payments, invoices, refunds"},
            {"name": "account", "description": "login, password and account access"},
            {"name": "shipping", "description": "deliveries and parcels"},
        ]
        tickets = [
            "I was charged twice, please refund me",
            "my password reset email never arrives",
            "the courier says it was delivered but my parcel is not here",
            "asdf qwerty",
        ]
        handle = await client.start_workflow(
            "MlPipeline",
            {
                "tickets": tickets,
                "labels": labels,
                "min_confidence": 0.6,
                "review_timeout_ms": 1500,
                "inference_queue": "inference-py",
            },
            id="triage-py",
        )
        table = await handle.result(timeout=120)
        routes = {r["ticket"]: (r["label"], r["decided_by"]) for r in table["routes"]}
        assert routes == {
            0: ("billing", "model"),
            1: ("account", "model"),
            2: ("shipping", "model"),
            3: ("needs-human", "timeout"),
        }, table
        assert all(0.6 <= r["score"] <= 1.0 for r in table["routes"][:3]), table
        # Every classify ran on the Python worker's queue.
        history = await handle.history()
        queues = {
            e["name"]: e["options"]["task_queue"]
            for e in history["events"]
            if e["type"] == "ActivityScheduled"
        }
        assert queues == {"normalize": "cpu", "classify": "inference-py"}, queues

        # A label the model was not trained on is bad input: no retries, the run fails.
        bad = await client.start_workflow(
            "MlPipeline",
            {
                "tickets": ["hello"],
                "labels": [{"name": "legal", "description": "lawyers"}],
                "inference_queue": "inference-py",
            },
            id="triage-bad-label",
        )
        try:
            await bad.result(timeout=60)
            raise AssertionError("an unknown label should fail the run")
        except WorkflowFailed as e:
            assert e.kind == "InvalidInput", e
            assert "after 1 attempt(s)" in e.message and "asked for legal" in e.message

    try:
        asyncio.run(main())
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, out.decode(errors="replace")
