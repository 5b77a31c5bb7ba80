"""1,000 activities through one Python worker (the figure goes to BENCHMARKS.md; run
`python python/tools/bench_worker.py` for the comparison with weft-worker)."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import Server, component
from helpers import running_worker

from weft import Client, activity


@activity.defn(name="square")
async def square(i: int) -> int:
    return i * i


def test_a_thousand_activities_through_one_python_worker(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> float:
        client = await Client.connect(server.url)
        await client.upload_module("FanOut", component("fan-out"))
        async with running_worker(client, "default", [square], max_concurrent=100):
            started = time.perf_counter()
            handle = await client.start_workflow("FanOut", {"n": 1000}, id="fan-out-1000")
            result = await handle.result(timeout=300)
            elapsed = time.perf_counter() - started
        assert result == {"n": 1000, "sum": sum(i * i for i in range(1000))}
        d = await handle.describe()
        assert d.run.history_length == 2 + 2 * 1000, d.run.history_length
        return elapsed

    elapsed = asyncio.run(main())
    with capsys.disabled():
        print(f"\n1,000 activities through one Python worker: {1000 / elapsed:.0f} tasks/s")
