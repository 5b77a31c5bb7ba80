"""A blocking facade over :class:`weft.Client` for scripts and notebooks.

It runs the async client on an event loop in a thread of its own, so it works where a loop is
running already (Jupyter) as well as where none is::

    from weft.sync import Client
    with Client.connect("http://127.0.0.1:7233") as client:
        print(client.start_workflow("GreetingWorkflow", "World", id="hello-1").result())
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Coroutine, Iterator, Sequence, TypeVar

from weft import client as aio
from weft._rpc import TLSConfig

T = TypeVar("T")


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="weft-sync", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class Client:
    """:class:`weft.Client` with blocking methods; see it for what each does."""

    def __init__(self, loop: _Loop, inner: aio.Client) -> None:
        self._loop = loop
        self._inner = inner

    @staticmethod
    def connect(
        url: str = "http://127.0.0.1:7233",
        *,
        token: str | None = None,
        tls: TLSConfig | bool | None = None,
    ) -> Client:
        loop = _Loop()
        inner = loop.run(aio.Client.connect(url, token=token, tls=tls))
        return Client(loop, inner)

    def close(self) -> None:
        self._loop.run(self._inner.close())
        self._loop.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def upload_module(
        self, workflow_type: str, component: bytes | str | Path, *, vet_recent: int = 0
    ) -> str:
        return self._loop.run(
            self._inner.upload_module(workflow_type, component, vet_recent=vet_recent)
        )

    def vet_module(
        self,
        workflow_type: str,
        component: bytes | str | Path,
        *,
        limit: int = 100,
        running_only: bool = False,
    ) -> aio.VetReport:
        return self._loop.run(
            self._inner.vet_module(
                workflow_type, component, limit=limit, running_only=running_only
            )
        )

    def migrate_runs(
        self,
        workflow_type: str,
        to_module_id: str,
        *,
        workflow_ids: Sequence[str] = (),
        dry_run: bool = False,
    ) -> list[aio.RunMigration]:
        return self._loop.run(
            self._inner.migrate_runs(
                workflow_type, to_module_id, workflow_ids=workflow_ids, dry_run=dry_run
            )
        )

    def start_workflow(
        self,
        workflow_type: str,
        input: Any = None,
        *,
        id: str,
        task_queue: str = "",
        return_existing: bool = False,
    ) -> WorkflowHandle:
        handle = self._loop.run(
            self._inner.start_workflow(
                workflow_type,
                input,
                id=id,
                task_queue=task_queue,
                return_existing=return_existing,
            )
        )
        return WorkflowHandle(self._loop, handle)

    def get_handle(self, workflow_id: str, run_id: str = "") -> WorkflowHandle:
        return WorkflowHandle(self._loop, self._inner.get_handle(workflow_id, run_id))

    def describe(self, workflow_id: str, run_id: str = "") -> aio.Description:
        return self._loop.run(self._inner.describe(workflow_id, run_id))

    def list(
        self,
        *,
        status: aio.RunStatus | None = None,
        workflow_type: str = "",
        workflow_id_prefix: str = "",
        page_size: int = 100,
    ) -> Iterator[aio.RunInfo]:
        runs = self._inner.list(
            status=status,
            workflow_type=workflow_type,
            workflow_id_prefix=workflow_id_prefix,
            page_size=page_size,
        )

        async def next_run() -> aio.RunInfo | None:
            try:
                return await runs.__anext__()
            except StopAsyncIteration:
                return None

        while (run := self._loop.run(next_run())) is not None:
            yield run

    def history(self, workflow_id: str, run_id: str = "") -> dict[str, Any]:
        return self._loop.run(self._inner.history(workflow_id, run_id))

    def signal(self, workflow_id: str, name: str, payload: Any = None) -> None:
        self._loop.run(self._inner.signal(workflow_id, name, payload))

    def cancel(self, workflow_id: str, reason: str = "") -> bool:
        return self._loop.run(self._inner.cancel(workflow_id, reason))

    def terminate(self, workflow_id: str, reason: str = "") -> None:
        self._loop.run(self._inner.terminate(workflow_id, reason))


class WorkflowHandle:
    """:class:`weft.WorkflowHandle` with blocking methods."""

    def __init__(self, loop: _Loop, inner: aio.WorkflowHandle) -> None:
        self._loop = loop
        self._inner = inner
        self.workflow_id = inner.workflow_id
        self.run_id = inner.run_id
        self.existing = inner.existing

    def result(self, timeout: float | None = None, *, result_type: Any = Any) -> Any:
        return self._loop.run(self._inner.result(timeout, result_type=result_type))

    def describe(self) -> aio.Description:
        return self._loop.run(self._inner.describe())

    def history(self) -> dict[str, Any]:
        return self._loop.run(self._inner.history())

    def signal(self, name: str, payload: Any = None) -> None:
        self._loop.run(self._inner.signal(name, payload))

    def cancel(self, reason: str = "") -> bool:
        return self._loop.run(self._inner.cancel(reason))

    def terminate(self, reason: str = "") -> None:
        self._loop.run(self._inner.terminate(reason))
