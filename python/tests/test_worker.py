"""The Python worker against a real server: results, retries, failures, heartbeats,
cancellation, shutdown and server restarts."""

from __future__ import annotations

import asyncio
import signal

import activities as acts
import pytest
from conftest import Server, WorkerProcess, component
from helpers import call, edge_cases_client, running_worker, until

from weft import Client, WorkflowCancelled, WorkflowFailed


def test_hello_activity_with_a_python_worker(server: Server) -> None:
    async def main() -> None:
        client = await Client.connect(server.url)
        await client.upload_module("GreetingWorkflow", component("hello-activity"))
        async with running_worker(
            client, "hello-activity-task-queue", [acts.compose_greeting]
        ):
            handle = await client.start_workflow("GreetingWorkflow", "World", id="hello-py")
            assert await handle.result(timeout=30) == "Hello, World!"
        history = await handle.history()
        kinds = [e["type"] for e in history["events"]]
        assert kinds == ["RunStarted", "ActivityScheduled", "ActivityCompleted", "RunCompleted"]

    asyncio.run(main())


def test_a_failing_activity_is_retried_until_it_succeeds(server: Server) -> None:
    async def main() -> None:
        client = await edge_cases_client(server)
        async with running_worker(client, "py", [acts.flaky]):
            handle = await client.start_workflow("EdgeCases", call("flaky", 2), id="flaky")
            assert await handle.result(timeout=60) == {"attempt": 3}
        d = await handle.describe()
        retried = [(a.attempt, a.error_kind, a.error_message) for a in d.raw.retried_attempts]
        assert retried == [
            (1, "ConnectionError", "attempt 1: the model server is not up yet"),
            (2, "ConnectionError", "attempt 2: the model server is not up yet"),
        ]

    asyncio.run(main())


def test_non_retryable_errors_and_bad_input_fail_the_run_at_once(server: Server) -> None:
    async def main() -> None:
        client = await edge_cases_client(server)
        async with running_worker(client, "py", [acts.refuse, acts.count_to]):
            handle = await client.start_workflow(
                "EdgeCases", call("refuse", "no such customer"), id="refused"
            )
            with pytest.raises(WorkflowFailed) as failed:
                await handle.result(timeout=30)
            assert failed.value.kind == "BadTicket"
            assert failed.value.message == "activity failed after 1 attempt(s): no such customer"
            # `count_to` takes a Count dataclass: a payload without `step_s` does not convert.
            handle = await client.start_workflow(
                "EdgeCases", call("count_to", {"n": 3}), id="bad-input"
            )
            with pytest.raises(WorkflowFailed) as failed:
                await handle.result(timeout=30)
            assert failed.value.kind == "InvalidInput"
            assert "after 1 attempt(s)" in failed.value.message
            assert "missing field `step_s` of Count" in failed.value.message
            # An activity this worker does not have.
            handle = await client.start_workflow(
                "EdgeCases", call("nope", None), id="unregistered"
            )
            with pytest.raises(WorkflowFailed) as failed:
                await handle.result(timeout=30)
            assert failed.value.kind == "ActivityNotRegistered"
            assert "count_to, refuse" in failed.value.message

    asyncio.run(main())


def test_heartbeat_details_survive_a_sigkill_of_the_worker(
    server: Server, worker_processes: list[WorkerProcess]
) -> None:
    async def main() -> None:
        client = await edge_cases_client(server)
        first = WorkerProcess(server.url, "py")
        worker_processes.append(first)
        handle = await client.start_workflow(
            "EdgeCases",
            call("count_to", {"n": 60, "step_s": 0.05}, heartbeat_timeout_ms=1000),
            id="resume",
        )
        seen = 0

        async def progressed() -> bool:
            nonlocal seen
            d = await handle.describe()
            pending = d.pending_activities
            seen = int(pending[0].heartbeat_details or 0) if pending else 0
            return seen >= 10

        await until(progressed, what="10 heartbeats")
        first.kill()
        second = WorkerProcess(server.url, "py")
        worker_processes.append(second)
        result = await handle.result(timeout=60)
        assert result["attempt"] == 2, result
        assert seen <= result["resumed_from"] < 60, (seen, result)

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_cancelling_the_run_reaches_a_running_activity(server: Server, kind: str) -> None:
    async def main() -> None:
        client = await edge_cases_client(server)
        name = f"wait_{kind}"
        async with running_worker(client, "py", [acts.wait_async, acts.wait_sync]):
            handle = await client.start_workflow(
                "EdgeCases", call(name, None, heartbeat_timeout_ms=5000), id=f"cancel-{kind}"
            )

            async def running() -> bool:
                d = await handle.describe()
                return any(a.running for a in d.pending_activities)

            await until(running, what="the activity to run")
            assert await handle.cancel("the user closed the page") is True
            with pytest.raises(WorkflowCancelled):
                await handle.result(timeout=30)
            flags = acts.cancelled_async if kind == "async" else acts.cancelled_sync

            async def reached() -> bool:
                return workflow_flag_set(flags, f"cancel-{kind}")

            await until(reached, timeout=10, what=f"the cancellation to reach the {kind} activity")

    asyncio.run(main())


def workflow_flag_set(flags: dict[str, object], workflow_id: str) -> bool:
    flag = flags.get(workflow_id)
    return flag is not None and bool(flag.is_set())  # type: ignore[attr-defined]


def test_sigterm_drains_then_hands_unfinished_tasks_back(
    server: Server, worker_processes: list[WorkerProcess]
) -> None:
    async def main() -> None:
        client = await edge_cases_client(server)
        worker = WorkerProcess(server.url, "py", "0.5")
        worker_processes.append(worker)
        handle = await client.start_workflow(
            "EdgeCases", call("slow_first", 120), id="handed-back"
        )

        async def running() -> bool:
            d = await handle.describe()
            return any(a.running for a in d.pending_activities)

        await until(running, what="the first attempt to run")
        worker.signal(signal.SIGTERM)
        code, out = worker.wait(timeout=30)
        assert code == 0, out
        assert "handed back slow_first of handed-back" in out, out
        # Handed back, the task is offered again at once, whatever the retry backoff.
        async with running_worker(client, "py", [acts.slow_first]):
            assert await handle.result(timeout=30) == "done on attempt 2"
        d = await handle.describe()
        assert [(a.attempt, a.error_kind) for a in d.raw.retried_attempts] == [
            (1, "WorkerShutdown")
        ]

    asyncio.run(main())


def test_the_worker_rides_out_a_server_restart_and_reports_what_finished_meanwhile(
    server: Server,
) -> None:
    async def main() -> None:
        client = await edge_cases_client(server)
        async with running_worker(client, "py", [acts.slow_sync, acts.square]):
            handle = await client.start_workflow("EdgeCases", call("slow_sync", 3), id="restart")

            async def running() -> bool:
                d = await handle.describe()
                return any(a.running for a in d.pending_activities)

            await until(running, what="the activity to run")
            server.kill()
            # The activity finishes while the server is down; its result waits for it.
            await asyncio.sleep(4)
            server.start()
            assert await handle.result(timeout=60) == "slept 3.0"
            # Polling resumed too: a new run's activity is served.
            handle = await client.start_workflow(
                "EdgeCases", call("square", 12), id="after-restart"
            )
            assert await handle.result(timeout=60) == 144
        history = await client.history("restart")
        kinds = [e["type"] for e in history["events"]]
        assert kinds == ["RunStarted", "ActivityScheduled", "ActivityCompleted", "RunCompleted"]

    asyncio.run(main())
