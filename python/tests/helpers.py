"""What the tests share: running an async test body with an in-process worker."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

from conftest import Server, component

from weft import Client, Worker


def call(
    name: str, input: Any, queue: str = "py", heartbeat_timeout_ms: int = 60_000
) -> dict[str, Any]:
    """The edge-cases workflow's input for one activity `name(input)` on `queue`."""
    return {
        "mode": "call",
        "name": name,
        "input": input,
        "queue": queue,
        "heartbeat_timeout_ms": heartbeat_timeout_ms,
    }


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, queue: str, activities: Iterable[Callable[..., Any]], **options: Any
) -> AsyncIterator[Worker]:
    worker = Worker(client, task_queue=queue, activities=activities, **options)
    task = asyncio.ensure_future(worker.run(handle_signals=False))
    try:
        yield worker
    finally:
        worker.shutdown()
        await asyncio.wait_for(task, 30)


async def edge_cases_client(server: Server) -> Client:
    client = await Client.connect(server.url)
    await client.upload_module("EdgeCases", component("edge-cases"))
    return client


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30, what: str = "") -> None:
    """Polls `check` until it is true; fails naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
