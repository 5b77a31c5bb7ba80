"""Every client call against a real server, including the errors each one raises."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import activities as acts
import pytest
from conftest import Server, component
from helpers import call, running_worker

import weft.sync
from weft import (
    AlreadyExists,
    FailedPrecondition,
    Client,
    InvalidArgument,
    NotFound,
    RunStatus,
    Unavailable,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowTerminated,
)


def test_every_client_call_round_trips(server: Server, tmp_path: Path) -> None:
    async def main() -> None:
        async with await Client.connect(server.url) as client:
            module_id = await client.upload_module("Approval", component("approval"))
            assert len(module_id) == 64
            await client.upload_module("EdgeCases", component("edge-cases").read_bytes())

            # A module that is not a workflow component is refused, naming what is wrong.
            with pytest.raises(InvalidArgument) as bad:
                await client.upload_module("Broken", b"\0asm\x01\0\0\0")
            assert bad.value.code.name == "INVALID_ARGUMENT"
            assert "UploadModule" in str(bad.value)

            # Start, signal, result.
            handle = await client.start_workflow(
                "Approval", {"request": "deploy", "timeout_ms": 600_000}, id="approve-1"
            )
            assert handle.run_id and not handle.existing
            with pytest.raises(AlreadyExists):
                await client.start_workflow(
                    "Approval", {"request": "deploy", "timeout_ms": 1}, id="approve-1"
                )
            again = await client.start_workflow(
                "Approval", {"request": "x", "timeout_ms": 1}, id="approve-1", return_existing=True
            )
            assert (again.run_id, again.existing) == (handle.run_id, True)
            with pytest.raises(TimeoutError):
                await handle.result(timeout=0.2)
            d = await handle.describe()
            assert d.run.status is RunStatus.RUNNING
            assert d.input == {"request": "deploy", "timeout_ms": 600_000}
            assert [s.name for s in d.raw.awaited_signals] == ["approve"]
            await handle.signal("approve", {"approver": "ada"})
            assert await handle.result(timeout=30) == {
                "request": "deploy",
                "approved": True,
                "approver": "ada",
            }
            d = await client.describe("approve-1")
            assert (d.run.status, d.output["approver"]) == (RunStatus.COMPLETED, "ada")
            assert d.run.closed_at is not None and d.run.history_length > 3

            # The history, written to a file, replays with the CLI.
            history = await handle.history()
            assert history["format"] == 1 and history["workflow_id"] == "approve-1"
            path = tmp_path / "approve-1.json"
            path.write_text(json.dumps(history))
            replayed = server.weft(
                "replay", "--history", str(path), "--module", str(component("approval"))
            )
            assert replayed.returncode == 0, replayed.stderr + replayed.stdout

            # Failed, cancelled and terminated runs raise their own errors.
            failed = await client.start_workflow(
                "EdgeCases", {"mode": "fail", "kind": "OutOfStock"}, id="fails"
            )
            with pytest.raises(WorkflowFailed) as f:
                await failed.result(timeout=30)
            assert (f.value.kind, f.value.workflow_id) == ("OutOfStock", "fails")

            cancelled = await client.start_workflow(
                "EdgeCases", call("wait_async", None, heartbeat_timeout_ms=5000), id="to-cancel"
            )
            async with running_worker(client, "py", [acts.wait_async]):
                assert await cancelled.cancel("no longer needed") is True
                with pytest.raises(WorkflowCancelled):
                    await cancelled.result(timeout=30)
            assert (await cancelled.describe()).run.status is RunStatus.CANCELLED

            terminated = await client.start_workflow(
                "Approval", {"request": "t", "timeout_ms": 600_000}, id="to-terminate"
            )
            await terminated.terminate("wrong request")
            with pytest.raises(WorkflowTerminated) as t:
                await terminated.result(timeout=30)
            assert "wrong request" in t.value.message

            # List pages through everything, newest first.
            for i in range(5):
                await client.start_workflow("EdgeCases", {"mode": "echo", "value": i}, id=f"echo-{i}")
            for i in range(5):
                assert await client.get_handle(f"echo-{i}").result(timeout=30) == i
            ids = [r.workflow_id async for r in client.list(workflow_id_prefix="echo-", page_size=2)]
            assert sorted(ids) == [f"echo-{i}" for i in range(5)]
            completed = [
                r.workflow_id
                async for r in client.list(status=RunStatus.COMPLETED, workflow_type="Approval")
            ]
            assert completed == ["approve-1"]

            # What does not exist is NotFound, with the id in the message.
            with pytest.raises(NotFound) as nf:
                await client.describe("no-such-run")
            assert "no-such-run" in str(nf.value)
            for op in (
                client.signal("no-such-run", "approve", {}),
                client.cancel("no-such-run"),
                client.terminate("no-such-run"),
                client.history("no-such-run"),
            ):
                with pytest.raises(NotFound):
                    await op
            with pytest.raises(NotFound):
                await client.start_workflow("NoSuchType", None, id="x")
            with pytest.raises(InvalidArgument) as empty:
                await client.start_workflow("EdgeCases", None, id="")
            assert "workflow_id" in str(empty.value)

    asyncio.run(main())


def test_the_sync_facade_for_scripts(server: Server) -> None:
    with weft.sync.Client.connect(server.url) as client:
        client.upload_module("EdgeCases", component("edge-cases"))
        handle = client.start_workflow("EdgeCases", {"mode": "echo", "value": 7}, id="sync-1")
        assert handle.result(timeout=30) == 7
        assert client.describe("sync-1").run.status is RunStatus.COMPLETED
        assert [r.workflow_id for r in client.list(page_size=1)] == ["sync-1"]
        assert client.history("sync-1")["events"][-1]["type"] == "RunCompleted"
        with pytest.raises(NotFound):
            client.get_handle("nope").describe()


def test_an_unreachable_server_is_unavailable() -> None:
    async def main() -> None:
        client = await Client.connect("http://127.0.0.1:1")
        with pytest.raises(Unavailable):
            await client.describe("x")
        await client.close()

    asyncio.run(main())


def test_bad_urls_and_tls_files_are_refused_with_what_to_fix() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="scheme must be http:// or https://"):
            await Client.connect("ftp://example.com")
        with pytest.raises(ValueError, match="cannot read the CA PEM file /nonexistent.pem"):
            await Client.connect("https://example.com", tls=weft.TLSConfig(ca="/nonexistent.pem"))

    asyncio.run(main())


def test_vetting_a_new_version_before_it_goes_live(server: Server) -> None:
    async def main() -> None:
        client = await Client.connect(server.url)
        await client.upload_module("GreetingWorkflow", component("hello-activity"))
        async with running_worker(client, "hello-activity-task-queue", [acts.compose_greeting]):
            for i in range(3):
                handle = await client.start_workflow("GreetingWorkflow", f"n{i}", id=f"g-{i}")
                assert await handle.result(timeout=30) == f"Hello, n{i}!"
        # Version 2 adds a timer where version 1 scheduled the activity: every run diverges.
        report = await client.vet_module("GreetingWorkflow", component("hello-activity-v2"))
        assert (report.vetted, report.clean, len(report.divergences)) == (3, 0, 3)
        assert {d.workflow_id for d in report.divergences} == {"g-0", "g-1", "g-2"}
        assert all(d.seq == 2 and d.new == "TimerStarted #0 1000ms" for d in report.divergences)
        with pytest.raises(FailedPrecondition) as refused:
            await client.upload_module(
                "GreetingWorkflow", component("hello-activity-v2"), vet_recent=3
            )
        assert "cannot replay 3 of the 3 most recent runs" in str(refused.value)
        # Version 3 puts the timer behind `patched`: the old runs stay on the old path.
        report = await client.vet_module("GreetingWorkflow", component("hello-activity-v3"))
        assert (report.vetted, report.clean, report.divergences) == (3, 3, [])
        await client.upload_module("GreetingWorkflow", component("hello-activity-v3"), vet_recent=3)

    asyncio.run(main())


def test_migrating_waiting_runs_to_a_version_that_adds_a_step(server: Server) -> None:
    async def main() -> None:
        client = await Client.connect(server.url)
        await client.upload_module("GreetingWorkflow", component("hello-activity"))
        # No worker yet: both runs wait on their first activity.
        handles = [
            await client.start_workflow("GreetingWorkflow", f"m{i}", id=f"move-{i}")
            for i in range(2)
        ]
        v4 = await client.upload_module("GreetingWorkflow", component("hello-activity-v4"))
        planned = await client.migrate_runs("GreetingWorkflow", v4, dry_run=True)
        assert [(m.workflow_id, m.outcome) for m in planned] == [
            ("move-0", "would_migrate"),
            ("move-1", "would_migrate"),
        ]
        done = await client.migrate_runs("GreetingWorkflow", v4, workflow_ids=["move-1"])
        assert [(m.workflow_id, m.outcome, m.events) for m in done] == [("move-1", "migrated", 2)]
        async with running_worker(client, "hello-activity-task-queue", [acts.compose_greeting]):
            # Moved: the new step runs. Not moved: version 1 to the end.
            assert await handles[1].result(timeout=30) == "Hello, m1! Welcome back, m1!"
            assert await handles[0].result(timeout=30) == "Hello, m0!"
        with pytest.raises(weft.NotFound):
            await client.migrate_runs("GreetingWorkflow", "00" * 32)

    asyncio.run(main())
