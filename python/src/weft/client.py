"""Starting and watching workflows: :class:`Client` and the :class:`WorkflowHandle` of a run."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import grpc

from weft import converter
from weft._rpc import Connection, TLSConfig
from weft.errors import (
    WeftError,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowTerminated,
)
from weft.v1 import weft_pb2 as pb


class RunStatus(enum.Enum):
    """Where a run is."""

    RUNNING = pb.RUN_STATUS_RUNNING
    COMPLETED = pb.RUN_STATUS_COMPLETED
    FAILED = pb.RUN_STATUS_FAILED
    CONTINUED_AS_NEW = pb.RUN_STATUS_CONTINUED_AS_NEW
    TERMINATED = pb.RUN_STATUS_TERMINATED
    CANCELLED = pb.RUN_STATUS_CANCELLED


def _time(ms: int) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc) if ms else None


@dataclasses.dataclass(frozen=True)
class ErrorInfo:
    """Why a run or an activity attempt failed."""

    kind: str
    message: str
    attempts: int


def _error(e: pb.ErrorInfo) -> ErrorInfo | None:
    return ErrorInfo(e.kind, e.message, e.attempts) if e.kind or e.message else None


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """One run of a workflow, as lists and descriptions show it."""

    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: RunStatus
    run_number: int
    module_id: str
    started_at: datetime.datetime | None
    closed_at: datetime.datetime | None
    history_length: int

    @staticmethod
    def from_proto(r: pb.WorkflowRun) -> RunInfo:
        return RunInfo(
            workflow_id=r.workflow_id,
            run_id=r.run_id,
            workflow_type=r.workflow_type,
            task_queue=r.task_queue,
            status=RunStatus(r.status),
            run_number=r.run_number,
            module_id=r.module_id,
            started_at=_time(r.started_at_ms),
            closed_at=_time(r.closed_at_ms),
            history_length=r.history_length,
        )


@dataclasses.dataclass(frozen=True)
class PendingActivity:
    """An activity the run waits on."""

    activity_name: str
    task_queue: str
    attempt: int
    running: bool
    heartbeat_details: Any
    last_failure: ErrorInfo | None


@dataclasses.dataclass(frozen=True)
class Description:
    """A run's state: its summary, input, result or error, and what it waits on.

    ``raw`` is the server's whole answer (``weft.v1.weft_pb2.DescribeWorkflowResponse``), for
    the fields this class does not lift (timers, signals, retried attempts, children).
    """

    run: RunInfo
    input: Any
    output: Any
    error: ErrorInfo | None
    pending_activities: list[PendingActivity]
    raw: pb.DescribeWorkflowResponse


@dataclasses.dataclass(frozen=True)
class Divergence:
    """A run a new module cannot replay: the recorded event at ``seq`` and what the new code
    did instead (``seq`` is 0 when the replay failed otherwise; ``message`` says how)."""

    workflow_id: str
    run_id: str
    seq: int
    recorded: str
    new: str
    message: str


@dataclasses.dataclass(frozen=True)
class VetReport:
    """What :meth:`Client.vet_module` found."""

    module_id: str
    vetted: int
    clean: int
    divergences: list[Divergence]


@dataclasses.dataclass(frozen=True)
class RunMigration:
    """What :meth:`Client.migrate_runs` did with one running run. ``outcome`` is one of
    ``migrated``, ``would_migrate`` (dry run), ``diverged`` (``seq``, ``recorded``, ``new``
    say where), ``already_on_module`` or ``skipped`` (``message`` says why)."""

    workflow_id: str
    run_id: str
    from_module_id: str
    outcome: str
    events: int
    seq: int
    recorded: str
    new: str
    message: str


_MIGRATION_OUTCOMES = {
    pb.MIGRATION_OUTCOME_MIGRATED: "migrated",
    pb.MIGRATION_OUTCOME_WOULD_MIGRATE: "would_migrate",
    pb.MIGRATION_OUTCOME_DIVERGED: "diverged",
    pb.MIGRATION_OUTCOME_ALREADY_ON_MODULE: "already_on_module",
    pb.MIGRATION_OUTCOME_SKIPPED: "skipped",
}


def _component(component: bytes | str | Path) -> bytes:
    return component if isinstance(component, bytes) else Path(component).read_bytes()


def _json_or_bytes(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data


class Client:
    """A connection to a weft server for starting, signalling and inspecting workflows.

    Make one with :meth:`connect` and share it: it holds one HTTP/2 channel, and its calls are
    safe to make concurrently from one event loop.
    """

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    @staticmethod
    async def connect(
        url: str = "http://127.0.0.1:7233",
        *,
        token: str | None = None,
        tls: TLSConfig | bool | None = None,
    ) -> Client:
        """Connects to the server at ``url`` (``http://`` or ``https://``).

        ``token``: a bearer token (``weft token create``), default ``WEFT_TOKEN``; ``tls``: a
        :class:`TLSConfig` for a private CA or mTLS, default from ``WEFT_CA``/``WEFT_CERT``/
        ``WEFT_KEY``; ``https://`` with no config uses the system's roots. The channel connects
        lazily: an unreachable server shows as :class:`weft.Unavailable` on the first call.
        """
        if token is None:
            token = os.environ.get("WEFT_TOKEN") or None
        if tls is None:
            tls = TLSConfig.from_env()
        return Client(Connection(url, token, tls))

    @property
    def url(self) -> str:
        """The server's URL."""
        return self._conn.url

    async def close(self) -> None:
        """Closes the channel; calls in flight fail."""
        await self._conn.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def upload_module(
        self, workflow_type: str, component: bytes | str | Path, *, vet_recent: int = 0
    ) -> str:
        """Registers a workflow component (bytes, or the path of a ``.wasm`` file) as the
        newest version of ``workflow_type``; returns its module id (hex SHA-256). A component
        the engine cannot run is :class:`weft.InvalidArgument` naming the import or export.

        ``vet_recent``: first replay the type's N most recent runs on it; if any diverges the
        upload is refused with :class:`weft.FailedPrecondition` naming the runs and events,
        and nothing is stored.
        """
        reply = await self._conn.call(
            self._conn.workflows.UploadModule,
            pb.UploadModuleRequest(
                workflow_type=workflow_type,
                component=_component(component),
                vet_recent=vet_recent,
            ),
        )
        module_id: str = reply.module_id
        return module_id

    async def vet_module(
        self,
        workflow_type: str,
        component: bytes | str | Path,
        *,
        limit: int = 100,
        running_only: bool = False,
    ) -> VetReport:
        """Replays the ``limit`` most recent runs of ``workflow_type`` (only running ones with
        ``running_only``) on a component, on the server, without storing it."""
        r = await self._conn.call(
            self._conn.workflows.VetModule,
            pb.VetModuleRequest(
                workflow_type=workflow_type,
                component=_component(component),
                limit=limit,
                running_only=running_only,
            ),
        )
        return VetReport(
            module_id=r.module_id,
            vetted=r.vetted,
            clean=r.clean,
            divergences=[
                Divergence(d.workflow_id, d.run_id, d.seq, d.recorded, d.new, d.message)
                for d in r.divergences
            ],
        )

    async def migrate_runs(
        self,
        workflow_type: str,
        to_module_id: str,
        *,
        workflow_ids: Sequence[str] = (),
        dry_run: bool = False,
    ) -> list[RunMigration]:
        """Moves the running runs of ``workflow_type`` (or only those of ``workflow_ids``) to
        the uploaded module ``to_module_id``, each only if its history replays clean on it
        (``weft migrate``); with ``dry_run``, only says which would move."""
        r = await self._conn.call(
            self._conn.workflows.MigrateRuns,
            pb.MigrateRunsRequest(
                workflow_type=workflow_type,
                to_module_id=to_module_id,
                workflow_ids=list(workflow_ids),
                dry_run=dry_run,
            ),
        )
        return [
            RunMigration(
                m.workflow_id,
                m.run_id,
                m.from_module_id,
                _MIGRATION_OUTCOMES.get(m.outcome, "unknown"),
                m.events,
                m.seq,
                m.recorded,
                m.new,
                m.message,
            )
            for m in r.runs
        ]

    async def start_workflow(
        self,
        workflow_type: str,
        input: Any = None,
        *,
        id: str,
        task_queue: str = "",
        return_existing: bool = False,
    ) -> WorkflowHandle:
        """Starts a run of ``workflow_type`` with ``input`` (JSON-encoded, bytes as they are).

        A running run of ``id`` is :class:`weft.AlreadyExists`, unless ``return_existing``,
        which returns its handle instead (``handle.existing`` is then True).
        """
        reply = await self._conn.call(
            self._conn.workflows.StartWorkflow,
            pb.StartWorkflowRequest(
                workflow_type=workflow_type,
                workflow_id=id,
                input=converter.to_payload(input),
                task_queue=task_queue,
                return_existing=return_existing,
            ),
        )
        return WorkflowHandle(self, id, reply.run_id, existing=reply.existing)

    def get_handle(self, workflow_id: str, run_id: str = "") -> WorkflowHandle:
        """A handle on a run that exists already (the latest of the id when ``run_id`` is
        empty)."""
        return WorkflowHandle(self, workflow_id, run_id)

    async def describe(self, workflow_id: str, run_id: str = "") -> Description:
        """The run's state (the latest run of the id when ``run_id`` is empty)."""
        r = await self._conn.call(
            self._conn.workflows.DescribeWorkflow,
            pb.DescribeWorkflowRequest(workflow_id=workflow_id, run_id=run_id),
        )
        return Description(
            run=RunInfo.from_proto(r.run),
            input=_json_or_bytes(r.input),
            output=_json_or_bytes(r.output),
            error=_error(r.error),
            pending_activities=[
                PendingActivity(
                    activity_name=a.activity_name,
                    task_queue=a.task_queue,
                    attempt=a.attempt,
                    running=a.running,
                    heartbeat_details=_json_or_bytes(a.heartbeat_details),
                    last_failure=_error(a.last_failure),
                )
                for a in r.pending_activities
            ],
            raw=r,
        )

    async def list(
        self,
        *,
        status: RunStatus | None = None,
        workflow_type: str = "",
        workflow_id_prefix: str = "",
        page_size: int = 100,
    ) -> AsyncIterator[RunInfo]:
        """Every run that matches, newest first, fetched a page at a time as you iterate."""
        token = ""
        while True:
            reply = await self._conn.call(
                self._conn.workflows.ListWorkflows,
                pb.ListWorkflowsRequest(
                    status=status.value if status else pb.RUN_STATUS_UNSPECIFIED,
                    workflow_type=workflow_type,
                    workflow_id_prefix=workflow_id_prefix,
                    page_size=page_size,
                    page_token=token,
                ),
            )
            for run in reply.runs:
                yield RunInfo.from_proto(run)
            token = reply.next_page_token
            if not token:
                return

    async def history(self, workflow_id: str, run_id: str = "") -> dict[str, Any]:
        """The run's event history in the versioned JSON form (``format: 1``).

        Write it with ``json.dump`` and ``weft replay FILE --module M.wasm`` replays it.
        """
        reply = await self._conn.call(
            self._conn.workflows.GetHistory,
            pb.GetHistoryRequest(workflow_id=workflow_id, run_id=run_id),
        )
        history: dict[str, Any] = json.loads(reply.history_json)
        return history

    async def signal(self, workflow_id: str, name: str, payload: Any = None) -> None:
        """Sends signal ``name`` to the id's running run."""
        await self._conn.call(
            self._conn.workflows.SignalWorkflow,
            pb.SignalWorkflowRequest(
                workflow_id=workflow_id, signal_name=name, payload=converter.to_payload(payload)
            ),
        )

    async def cancel(self, workflow_id: str, reason: str = "") -> bool:
        """Asks the id's running run to cancel; False when it had been asked already."""
        reply = await self._conn.call(
            self._conn.workflows.CancelWorkflow,
            pb.CancelWorkflowRequest(workflow_id=workflow_id, reason=reason),
        )
        newly: bool = reply.newly_requested
        return newly

    async def terminate(self, workflow_id: str, reason: str = "") -> None:
        """Ends the id's running run now; its code does not run again."""
        await self._conn.call(
            self._conn.workflows.TerminateWorkflow,
            pb.TerminateWorkflowRequest(workflow_id=workflow_id, reason=reason),
        )

    async def _result(
        self, workflow_id: str, run_id: str, timeout: float | None, result_type: Any
    ) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait_s = 60.0 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                r = await self._conn.call(
                    self._conn.workflows.GetWorkflowResult,
                    pb.GetWorkflowResultRequest(
                        workflow_id=workflow_id,
                        run_id=run_id,
                        wait=True,
                        wait_timeout_ms=max(1, int(wait_s * 1000)),
                    ),
                    timeout=wait_s + 30,
                    wait_for_ready=True,
                )
            except WeftError as e:
                # The server's wait ended with the run still running, or (for a deadline of
                # our own) the server stayed away: either way, wait on if there is time.
                if e.code != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"workflow {workflow_id} is still running after {timeout} s"
                    ) from None
                continue
            status = RunStatus(r.status)
            if status is RunStatus.COMPLETED:
                return converter.from_payload(r.output, result_type)
            if status is RunStatus.CONTINUED_AS_NEW:
                # The result is the chain's: follow it to the id's latest run.
                run_id = ""
                continue
            if status is RunStatus.FAILED:
                raise WorkflowFailed(
                    workflow_id, r.run_id, r.error.kind, r.error.message, r.error.attempts
                )
            if status is RunStatus.CANCELLED:
                raise WorkflowCancelled(workflow_id, r.run_id, r.error.kind, r.error.message)
            if status is RunStatus.TERMINATED:
                raise WorkflowTerminated(workflow_id, r.run_id, r.error.kind, r.error.message)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"workflow {workflow_id} is still running after {timeout} s"
                )


class WorkflowHandle:
    """A run (or, with an empty ``run_id``, the latest run of a workflow id)."""

    def __init__(
        self, client: Client, workflow_id: str, run_id: str, *, existing: bool = False
    ) -> None:
        self.client = client
        self.workflow_id = workflow_id
        self.run_id = run_id
        #: True when ``start_workflow(return_existing=True)`` found the run running already.
        self.existing = existing

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.workflow_id!r}, {self.run_id!r})"

    async def result(self, timeout: float | None = None, *, result_type: Any = Any) -> Any:
        """Waits for the run to close and returns its output, decoded into ``result_type``.

        Raises :class:`weft.WorkflowFailed`, :class:`weft.WorkflowCancelled` or
        :class:`weft.WorkflowTerminated` when it did not complete, and ``TimeoutError`` when
        it is still running after ``timeout`` seconds (None: wait as long as it takes). A run
        that continued as new is followed to the chain's last run.
        """
        return await self.client._result(self.workflow_id, self.run_id, timeout, result_type)

    async def describe(self) -> Description:
        return await self.client.describe(self.workflow_id, self.run_id)

    async def history(self) -> dict[str, Any]:
        return await self.client.history(self.workflow_id, self.run_id)

    async def signal(self, name: str, payload: Any = None) -> None:
        await self.client.signal(self.workflow_id, name, payload)

    async def cancel(self, reason: str = "") -> bool:
        return await self.client.cancel(self.workflow_id, reason)

    async def terminate(self, reason: str = "") -> None:
        await self.client.terminate(self.workflow_id, reason)
