"""The exceptions weft raises, and the ones activities raise to say how they failed.

Every error of a call to the server is a :class:`WeftError` carrying the gRPC status code, so
``except weft.NotFound`` and ``except weft.WeftError as e: e.code`` both work. A run that did
not complete raises one of the :class:`WorkflowError` classes from ``handle.result()``.
"""

from __future__ import annotations

import grpc


class WeftError(Exception):
    """A call to the weft server failed; ``code`` is the gRPC status code."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(WeftError):
    """No such workflow, run, module or task."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(WeftError):
    """A run of that workflow id is running already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class InvalidArgument(WeftError):
    """The server refused an argument; the message says which and what to fix."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(WeftError):
    """The call does not fit the state of its target (a closed run, a superseded attempt)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(WeftError):
    """No token, or a token the server does not know (revoked, expired)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(WeftError):
    """The token's role or scope does not allow the call; the message names the right."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(WeftError):
    """The server cannot be reached (it is down or restarting)."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(WeftError):
    """The call's deadline passed before the server answered."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhausted(WeftError):
    """A rate or size limit of the server was hit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


_BY_CODE: dict[grpc.StatusCode, type[WeftError]] = {
    cls.code: cls
    for cls in (
        NotFound,
        AlreadyExists,
        InvalidArgument,
        FailedPrecondition,
        Unauthenticated,
        PermissionDenied,
        Unavailable,
        DeadlineExceeded,
        ResourceExhausted,
    )
}


def from_rpc_error(error: grpc.RpcError, method: str) -> WeftError:
    """The :class:`WeftError` subclass for a failed call of ``method``."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    cls = _BY_CODE.get(code, WeftError)
    return cls(f"{method}: {details}", code)


class WorkflowError(Exception):
    """A run closed without a result."""

    def __init__(self, workflow_id: str, run_id: str, kind: str, message: str) -> None:
        super().__init__(f"workflow {workflow_id} (run {run_id}): {kind}: {message}")
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.kind = kind
        self.message = message


class WorkflowFailed(WorkflowError):
    """The workflow returned an error, or an activity's failure ended it.

    ``attempts`` is how many attempts the failing activity had (0 if the workflow failed on its
    own).
    """

    def __init__(
        self, workflow_id: str, run_id: str, kind: str, message: str, attempts: int
    ) -> None:
        super().__init__(workflow_id, run_id, kind, message)
        self.attempts = attempts


class WorkflowCancelled(WorkflowError):
    """The run was asked to cancel and returned the cancellation."""


class WorkflowTerminated(WorkflowError):
    """The run was terminated; its code did not run again."""


class ActivityError(Exception):
    """Raise from an activity to fail the attempt with a chosen ``kind``.

    Retryable unless ``non_retryable`` is set; the workflow's retry policy decides how often.
    Any other exception fails the attempt too, retryably, with its class name as the kind.
    """

    def __init__(self, kind: str, message: str, *, non_retryable: bool = False) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.non_retryable = non_retryable


class NonRetryableError(ActivityError):
    """Raise from an activity to fail it for good: no further attempts, whatever the policy."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message, non_retryable=True)
