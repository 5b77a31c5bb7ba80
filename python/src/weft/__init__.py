"""weft for Python: activity workers and a client for the weft durable-execution server.

Workflows stay WebAssembly components (written with the Rust ``weft-sdk``); Python runs the
activities they call, and starts and watches runs::

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

from weft import activity
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
from weft.converter import ConversionError
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
]
