"""A server with --auth: the Python worker and client send their tokens, and the server's
refusals arrive as the right exceptions."""

from __future__ import annotations

import asyncio
import subprocess

import activities as acts
import pytest
from conftest import Server, _weft_bin, component
from helpers import call, running_worker

from weft import Client, PermissionDenied, Unauthenticated, Worker


def token(server: Server, *args: str) -> str:
    out = subprocess.run(
        [str(_weft_bin()), "token", "create", "--database", f"sqlite:{server.database}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_tokens_reach_the_server_from_workers_and_clients(server: Server) -> None:
    server.kill()
    admin = token(server, "--role", "admin", "--name", "admin")
    worker = token(server, "--role", "worker", "--queues", "py", "--name", "py-worker")
    reader = token(server, "--role", "reader", "--name", "dashboard")
    server.extra_flags = ["--auth"]
    server.start()

    async def main() -> None:
        anonymous = await Client.connect(server.url)
        with pytest.raises(Unauthenticated):
            await anonymous.describe("x")
        client = await Client.connect(server.url, token=admin)
        await client.upload_module("EdgeCases", component("edge-cases"))
        readonly = await Client.connect(server.url, token=reader)
        with pytest.raises(PermissionDenied) as denied:
            await readonly.start_workflow("EdgeCases", call("square", 3), id="denied")
        assert "reader" in str(denied.value)
        as_worker = await Client.connect(server.url, token=worker)
        async with running_worker(as_worker, "py", [acts.square]):
            handle = await client.start_workflow("EdgeCases", call("square", 9), id="authed")
            assert await handle.result(timeout=30) == 81
        assert (await readonly.describe("authed")).output == 81
        # A worker token scoped to `py` cannot poll another queue.
        outside = Worker(as_worker, task_queue="cpu", activities=[acts.square])
        with pytest.raises(PermissionDenied):
            await outside.run(handle_signals=False)

    asyncio.run(main())

