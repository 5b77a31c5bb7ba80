"""weft for Python: workflows, activity workers and a client for the weft durable-execution
server.

Workflows (:mod:`weft.workflow`) are built into WebAssembly components by ``weft build``;
activities run in a :class:`Worker`, which with the :class:`Client` starts and watches runs::

    import asyncio
    from weft import Client, Worker, activity

    @activity.defn
    async def compose_greeting(req: dict[str, str]) -> str:
        return f"{req['greeting']}, {req['name']}!"

    async def main() -> None:
        client = await Client.connect("http://127.0.0.1:7233")
        await Worker(client, task_queue="hello-activity-task-queue",
                     activities=[compose_greeting]).run()

    asyncio.run(main())
"""

from typing import TYPE_CHECKING, Any

# Pure Python (the standard library only): importable inside a workflow component, where
# grpcio does not exist. Everything else is imported on first use.
from weft import activity, workflow
from weft.converter import ConversionError

if TYPE_CHECKING:
    from weft._rpc import TLSConfig
    from weft.client import (
        Client,
        Description,
        Divergence,
        ErrorInfo,
        PendingActivity,
        RunInfo,
        RunMigration,
        RunStatus,
        VetReport,
        WorkflowHandle,
    )
    from weft.errors import (
        ActivityError,
        AlreadyExists,
        DeadlineExceeded,
        FailedPrecondition,
        InvalidArgument,
        NonRetryableError,
        NotFound,
        PermissionDenied,
        ResourceExhausted,
        Unauthenticated,
        Unavailable,
        WeftError,
        WorkflowCancelled,
        WorkflowError,
        WorkflowFailed,
        WorkflowTerminated,
    )
    from weft.worker import Worker

#: Where each lazily imported name lives.
_LAZY = {
    "TLSConfig": "weft._rpc",
    **dict.fromkeys(
        [
            "Client",
            "Description",
            "Divergence",
            "ErrorInfo",
            "PendingActivity",
            "RunInfo",
            "RunMigration",
            "RunStatus",
            "VetReport",
            "WorkflowHandle",
        ],
        "weft.client",
    ),
    **dict.fromkeys(
        [
            "ActivityError",
            "AlreadyExists",
            "DeadlineExceeded",
            "FailedPrecondition",
            "InvalidArgument",
            "NonRetryableError",
            "NotFound",
            "PermissionDenied",
            "ResourceExhausted",
            "Unauthenticated",
            "Unavailable",
            "WeftError",
            "WorkflowCancelled",
            "WorkflowError",
            "WorkflowFailed",
            "WorkflowTerminated",
        ],
        "weft.errors",
    ),
    "Worker": "weft.worker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'weft' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ActivityError",
    "AlreadyExists",
    "Client",
    "ConversionError",
    "DeadlineExceeded",
    "Description",
    "Divergence",
    "ErrorInfo",
    "FailedPrecondition",
    "InvalidArgument",
    "NonRetryableError",
    "NotFound",
    "PendingActivity",
    "PermissionDenied",
    "ResourceExhausted",
    "RunInfo",
    "RunMigration",
    "RunStatus",
    "TLSConfig",
    "Unauthenticated",
    "Unavailable",
    "VetReport",
    "WeftError",
    "Worker",
    "WorkflowCancelled",
    "WorkflowError",
    "WorkflowFailed",
    "WorkflowHandle",
    "WorkflowTerminated",
    "activity",
    "workflow",
]
