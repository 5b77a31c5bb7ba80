from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_COMPLETED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_CONTINUED_AS_NEW: _ClassVar[RunStatus]
    RUN_STATUS_TERMINATED: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]

class MigrationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MIGRATION_OUTCOME_UNSPECIFIED: _ClassVar[MigrationOutcome]
    MIGRATION_OUTCOME_MIGRATED: _ClassVar[MigrationOutcome]
    MIGRATION_OUTCOME_WOULD_MIGRATE: _ClassVar[MigrationOutcome]
    MIGRATION_OUTCOME_DIVERGED: _ClassVar[MigrationOutcome]
    MIGRATION_OUTCOME_ALREADY_ON_MODULE: _ClassVar[MigrationOutcome]
    MIGRATION_OUTCOME_SKIPPED: _ClassVar[MigrationOutcome]
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_COMPLETED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_CONTINUED_AS_NEW: RunStatus
RUN_STATUS_TERMINATED: RunStatus
RUN_STATUS_CANCELLED: RunStatus
MIGRATION_OUTCOME_UNSPECIFIED: MigrationOutcome
MIGRATION_OUTCOME_MIGRATED: MigrationOutcome
MIGRATION_OUTCOME_WOULD_MIGRATE: MigrationOutcome
MIGRATION_OUTCOME_DIVERGED: MigrationOutcome
MIGRATION_OUTCOME_ALREADY_ON_MODULE: MigrationOutcome
MIGRATION_OUTCOME_SKIPPED: MigrationOutcome

class ErrorInfo(_message.Message):
    __slots__ = ("kind", "message", "attempts")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    message: str
    attempts: int
    def __init__(self, kind: _Optional[str] = ..., message: _Optional[str] = ..., attempts: _Optional[int] = ...) -> None: ...

class UploadModuleRequest(_message.Message):
    __slots__ = ("workflow_type", "component", "vet_recent")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    VET_RECENT_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    component: bytes
    vet_recent: int
    def __init__(self, workflow_type: _Optional[str] = ..., component: _Optional[bytes] = ..., vet_recent: _Optional[int] = ...) -> None: ...

class VetModuleRequest(_message.Message):
    __slots__ = ("workflow_type", "component", "limit", "running_only")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_ONLY_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    component: bytes
    limit: int
    running_only: bool
    def __init__(self, workflow_type: _Optional[str] = ..., component: _Optional[bytes] = ..., limit: _Optional[int] = ..., running_only: _Optional[bool] = ...) -> None: ...

class VetModuleResponse(_message.Message):
    __slots__ = ("module_id", "vetted", "clean", "divergences")
    MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    VETTED_FIELD_NUMBER: _ClassVar[int]
    CLEAN_FIELD_NUMBER: _ClassVar[int]
    DIVERGENCES_FIELD_NUMBER: _ClassVar[int]
    module_id: str
    vetted: int
    clean: int
    divergences: _containers.RepeatedCompositeFieldContainer[VetDivergence]
    def __init__(self, module_id: _Optional[str] = ..., vetted: _Optional[int] = ..., clean: _Optional[int] = ..., divergences: _Optional[_Iterable[_Union[VetDivergence, _Mapping]]] = ...) -> None: ...

class VetDivergence(_message.Message):
    __slots__ = ("workflow_id", "run_id", "seq", "recorded", "new", "message")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    run_id: str
    seq: int
    recorded: str
    new: str
    message: str
    def __init__(self, workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., seq: _Optional[int] = ..., recorded: _Optional[str] = ..., new: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class MigrateRunsRequest(_message.Message):
    __slots__ = ("workflow_type", "to_module_id", "workflow_ids", "dry_run")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    TO_MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_IDS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    to_module_id: str
    workflow_ids: _containers.RepeatedScalarFieldContainer[str]
    dry_run: bool
    def __init__(self, workflow_type: _Optional[str] = ..., to_module_id: _Optional[str] = ..., workflow_ids: _Optional[_Iterable[str]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class MigrateRunsResponse(_message.Message):
    __slots__ = ("to_module_id", "runs", "migrated", "diverged")
    TO_MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    MIGRATED_FIELD_NUMBER: _ClassVar[int]
    DIVERGED_FIELD_NUMBER: _ClassVar[int]
    to_module_id: str
    runs: _containers.RepeatedCompositeFieldContainer[RunMigration]
    migrated: int
    diverged: int
    def __init__(self, to_module_id: _Optional[str] = ..., runs: _Optional[_Iterable[_Union[RunMigration, _Mapping]]] = ..., migrated: _Optional[int] = ..., diverged: _Optional[int] = ...) -> None: ...

class RunMigration(_message.Message):
    __slots__ = ("workflow_id", "run_id", "from_module_id", "outcome", "events", "seq", "recorded", "new", "message")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    run_id: str
    from_module_id: str
    outcome: MigrationOutcome
    events: int
    seq: int
    recorded: str
    new: str
    message: str
    def __init__(self, workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., from_module_id: _Optional[str] = ..., outcome: _Optional[_Union[MigrationOutcome, str]] = ..., events: _Optional[int] = ..., seq: _Optional[int] = ..., recorded: _Optional[str] = ..., new: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class UploadModuleResponse(_message.Message):
    __slots__ = ("module_id",)
    MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    module_id: str
    def __init__(self, module_id: _Optional[str] = ...) -> None: ...

class StartWorkflowRequest(_message.Message):
    __slots__ = ("workflow_type", "workflow_id", "input", "task_queue", "return_existing")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    RETURN_EXISTING_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    workflow_id: str
    input: bytes
    task_queue: str
    return_existing: bool
    def __init__(self, workflow_type: _Optional[str] = ..., workflow_id: _Optional[str] = ..., input: _Optional[bytes] = ..., task_queue: _Optional[str] = ..., return_existing: _Optional[bool] = ...) -> None: ...

class StartWorkflowResponse(_message.Message):
    __slots__ = ("run_id", "existing")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    existing: bool
    def __init__(self, run_id: _Optional[str] = ..., existing: _Optional[bool] = ...) -> None: ...

class GetWorkflowResultRequest(_message.Message):
    __slots__ = ("workflow_id", "run_id", "wait", "wait_timeout_ms")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    run_id: str
    wait: bool
    wait_timeout_ms: int
    def __init__(self, workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., wait: _Optional[bool] = ..., wait_timeout_ms: _Optional[int] = ...) -> None: ...

class GetWorkflowResultResponse(_message.Message):
    __slots__ = ("run_id", "status", "output", "error")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    status: RunStatus
    output: bytes
    error: ErrorInfo
    def __init__(self, run_id: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., output: _Optional[bytes] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ...) -> None: ...

class WorkflowRun(_message.Message):
    __slots__ = ("workflow_id", "run_id", "workflow_type", "task_queue", "status", "run_number", "module_id", "started_at_ms", "closed_at_ms", "history_length", "parent_close_policy")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RUN_NUMBER_FIELD_NUMBER: _ClassVar[int]
    MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PARENT_CLOSE_POLICY_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: RunStatus
    run_number: int
    module_id: str
    started_at_ms: int
    closed_at_ms: int
    history_length: int
    parent_close_policy: str
    def __init__(self, workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., workflow_type: _Optional[str] = ..., task_queue: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., run_number: _Optional[int] = ..., module_id: _Optional[str] = ..., started_at_ms: _Optional[int] = ..., closed_at_ms: _Optional[int] = ..., history_length: _Optional[int] = ..., parent_close_policy: _Optional[str] = ...) -> None: ...

class DescribeWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "run_id")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    run_id: str
    def __init__(self, workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class DescribeWorkflowResponse(_message.Message):
    __slots__ = ("run", "input", "output", "error", "pending_activities", "pending_timers", "awaited_signals", "retried_attempts", "parent_workflow_id", "parent_run_id", "children", "previous_run_id", "next_run_id")
    RUN_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTIVITIES_FIELD_NUMBER: _ClassVar[int]
    PENDING_TIMERS_FIELD_NUMBER: _ClassVar[int]
    AWAITED_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    RETRIED_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PARENT_WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run: WorkflowRun
    input: bytes
    output: bytes
    error: ErrorInfo
    pending_activities: _containers.RepeatedCompositeFieldContainer[PendingActivity]
    pending_timers: _containers.RepeatedCompositeFieldContainer[PendingTimer]
    awaited_signals: _containers.RepeatedCompositeFieldContainer[AwaitedSignal]
    retried_attempts: _containers.RepeatedCompositeFieldContainer[ActivityAttempt]
    parent_workflow_id: str
    parent_run_id: str
    children: _containers.RepeatedCompositeFieldContainer[WorkflowRun]
    previous_run_id: str
    next_run_id: str
    def __init__(self, run: _Optional[_Union[WorkflowRun, _Mapping]] = ..., input: _Optional[bytes] = ..., output: _Optional[bytes] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ..., pending_activities: _Optional[_Iterable[_Union[PendingActivity, _Mapping]]] = ..., pending_timers: _Optional[_Iterable[_Union[PendingTimer, _Mapping]]] = ..., awaited_signals: _Optional[_Iterable[_Union[AwaitedSignal, _Mapping]]] = ..., retried_attempts: _Optional[_Iterable[_Union[ActivityAttempt, _Mapping]]] = ..., parent_workflow_id: _Optional[str] = ..., parent_run_id: _Optional[str] = ..., children: _Optional[_Iterable[_Union[WorkflowRun, _Mapping]]] = ..., previous_run_id: _Optional[str] = ..., next_run_id: _Optional[str] = ...) -> None: ...

class PendingActivity(_message.Message):
    __slots__ = ("handle", "activity_name", "task_queue", "attempt", "scheduled_at_ms", "running", "claimed_at_ms", "last_heartbeat_ms", "heartbeat_details", "last_failure", "lease_until_ms")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_DETAILS_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    LEASE_UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    handle: int
    activity_name: str
    task_queue: str
    attempt: int
    scheduled_at_ms: int
    running: bool
    claimed_at_ms: int
    last_heartbeat_ms: int
    heartbeat_details: bytes
    last_failure: ErrorInfo
    lease_until_ms: int
    def __init__(self, handle: _Optional[int] = ..., activity_name: _Optional[str] = ..., task_queue: _Optional[str] = ..., attempt: _Optional[int] = ..., scheduled_at_ms: _Optional[int] = ..., running: _Optional[bool] = ..., claimed_at_ms: _Optional[int] = ..., last_heartbeat_ms: _Optional[int] = ..., heartbeat_details: _Optional[bytes] = ..., last_failure: _Optional[_Union[ErrorInfo, _Mapping]] = ..., lease_until_ms: _Optional[int] = ...) -> None: ...

class PendingTimer(_message.Message):
    __slots__ = ("handle", "fire_at_ms")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    FIRE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    handle: int
    fire_at_ms: int
    def __init__(self, handle: _Optional[int] = ..., fire_at_ms: _Optional[int] = ...) -> None: ...

class AwaitedSignal(_message.Message):
    __slots__ = ("handle", "name")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    handle: int
    name: str
    def __init__(self, handle: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class ActivityAttempt(_message.Message):
    __slots__ = ("handle", "attempt", "started_at_ms", "ended_at_ms", "error_kind", "error_message", "retry_at_ms")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_KIND_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_MS_FIELD_NUMBER: _ClassVar[int]
    handle: int
    attempt: int
    started_at_ms: int
    ended_at_ms: int
    error_kind: str
    error_message: str
    retry_at_ms: int
    def __init__(self, handle: _Optional[int] = ..., attempt: _Optional[int] = ..., started_at_ms: _Optional[int] = ..., ended_at_ms: _Optional[int] = ..., error_kind: _Optional[str] = ..., error_message: _Optional[str] = ..., retry_at_ms: _Optional[int] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ("status", "workflow_type", "page_size", "page_token", "workflow_id_prefix")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    status: RunStatus
    workflow_type: str
    page_size: int
    page_token: str
    workflow_id_prefix: str
    def __init__(self, status: _Optional[_Union[RunStatus, str]] = ..., workflow_type: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., workflow_id_prefix: _Optional[str] = ...) -> None: ...

class CountWorkflowsRequest(_message.Message):
    __slots__ = ("workflow_type", "workflow_id_prefix")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    workflow_id_prefix: str
    def __init__(self, workflow_type: _Optional[str] = ..., workflow_id_prefix: _Optional[str] = ...) -> None: ...

class CountWorkflowsResponse(_message.Message):
    __slots__ = ("counts", "total")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[StatusCount]
    total: int
    def __init__(self, counts: _Optional[_Iterable[_Union[StatusCount, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class StatusCount(_message.Message):
    __slots__ = ("status", "count")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    status: RunStatus
    count: int
    def __init__(self, status: _Optional[_Union[RunStatus, str]] = ..., count: _Optional[int] = ...) -> None: ...

class ListModulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModulesResponse(_message.Message):
    __slots__ = ("modules",)
    MODULES_FIELD_NUMBER: _ClassVar[int]
    modules: _containers.RepeatedCompositeFieldContainer[ModuleVersion]
    def __init__(self, modules: _Optional[_Iterable[_Union[ModuleVersion, _Mapping]]] = ...) -> None: ...

class ModuleVersion(_message.Message):
    __slots__ = ("workflow_type", "module_id", "size_bytes", "uploaded_at_ms", "newest", "running_runs", "closed_runs")
    WORKFLOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    MODULE_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIELD_NUMBER: _ClassVar[int]
    RUNNING_RUNS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_RUNS_FIELD_NUMBER: _ClassVar[int]
    workflow_type: str
    module_id: str
    size_bytes: int
    uploaded_at_ms: int
    newest: bool
    running_runs: int
    closed_runs: int
    def __init__(self, workflow_type: _Optional[str] = ..., module_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., uploaded_at_ms: _Optional[int] = ..., newest: _Optional[bool] = ..., running_runs: _Optional[int] = ..., closed_runs: _Optional[int] = ...) -> None: ...

class ListTaskQueuesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTaskQueuesResponse(_message.Message):
    __slots__ = ("queues",)
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[TaskQueueInfo]
    def __init__(self, queues: _Optional[_Iterable[_Union[TaskQueueInfo, _Mapping]]] = ...) -> None: ...

class TaskQueueInfo(_message.Message):
    __slots__ = ("name", "ready_tasks", "running_tasks", "backing_off_tasks", "oldest_ready_age_ms", "workers", "activities")
    NAME_FIELD_NUMBER: _ClassVar[int]
    READY_TASKS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASKS_FIELD_NUMBER: _ClassVar[int]
    BACKING_OFF_TASKS_FIELD_NUMBER: _ClassVar[int]
    OLDEST_READY_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    ACTIVITIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    ready_tasks: int
    running_tasks: int
    backing_off_tasks: int
    oldest_ready_age_ms: int
    workers: _containers.RepeatedCompositeFieldContainer[QueueWorker]
    activities: _containers.RepeatedCompositeFieldContainer[ActivityOutcomes]
    def __init__(self, name: _Optional[str] = ..., ready_tasks: _Optional[int] = ..., running_tasks: _Optional[int] = ..., backing_off_tasks: _Optional[int] = ..., oldest_ready_age_ms: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[QueueWorker, _Mapping]]] = ..., activities: _Optional[_Iterable[_Union[ActivityOutcomes, _Mapping]]] = ...) -> None: ...

class QueueWorker(_message.Message):
    __slots__ = ("worker_id", "last_poll_ms")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_POLL_MS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    last_poll_ms: int
    def __init__(self, worker_id: _Optional[str] = ..., last_poll_ms: _Optional[int] = ...) -> None: ...

class ActivityOutcomes(_message.Message):
    __slots__ = ("activity_name", "completed", "failed", "timed_out", "last_at_ms")
    ACTIVITY_NAME_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    LAST_AT_MS_FIELD_NUMBER: _ClassVar[int]
    activity_name: str
    completed: int
    failed: int
    timed_out: int
    last_at_ms: int
    def __init__(self, activity_name: _Optional[str] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., timed_out: _Optional[int] = ..., last_at_ms: _Optional[int] = ...) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[WorkflowRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[WorkflowRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetHistoryRequest(_message.Message):
    __slots__ = ("workflow_id", "run_id", "include_logs")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_LOGS_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    run_id: str
    include_logs: bool
    def __init__(self, workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., include_logs: _Optional[bool] = ...) -> None: ...

class GetHistoryResponse(_message.Message):
    __slots__ = ("history_json", "logs", "logs_error")
    HISTORY_JSON_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    LOGS_ERROR_FIELD_NUMBER: _ClassVar[int]
    history_json: str
    logs: _containers.RepeatedCompositeFieldContainer[LogLine]
    logs_error: str
    def __init__(self, history_json: _Optional[str] = ..., logs: _Optional[_Iterable[_Union[LogLine, _Mapping]]] = ..., logs_error: _Optional[str] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("after_event", "level", "message")
    AFTER_EVENT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    after_event: int
    level: str
    message: str
    def __init__(self, after_event: _Optional[int] = ..., level: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SignalWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "signal_name", "payload")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    signal_name: str
    payload: bytes
    def __init__(self, workflow_id: _Optional[str] = ..., signal_name: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class SignalWorkflowResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "reason")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    reason: str
    def __init__(self, workflow_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelWorkflowResponse(_message.Message):
    __slots__ = ("run_id", "newly_requested")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NEWLY_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    newly_requested: bool
    def __init__(self, run_id: _Optional[str] = ..., newly_requested: _Optional[bool] = ...) -> None: ...

class TerminateWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "reason")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    reason: str
    def __init__(self, workflow_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class TerminateWorkflowResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PollActivityTaskRequest(_message.Message):
    __slots__ = ("task_queue", "worker_id", "max_tasks", "poll_timeout_ms")
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    POLL_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    task_queue: str
    worker_id: str
    max_tasks: int
    poll_timeout_ms: int
    def __init__(self, task_queue: _Optional[str] = ..., worker_id: _Optional[str] = ..., max_tasks: _Optional[int] = ..., poll_timeout_ms: _Optional[int] = ...) -> None: ...

class ActivityTask(_message.Message):
    __slots__ = ("task_token", "activity_name", "input", "attempt", "workflow_id", "run_id", "idempotency_key", "deadline_ms", "heartbeat_timeout_ms", "heartbeat_details", "traceparent")
    TASK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_DETAILS_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    task_token: str
    activity_name: str
    input: bytes
    attempt: int
    workflow_id: str
    run_id: str
    idempotency_key: str
    deadline_ms: int
    heartbeat_timeout_ms: int
    heartbeat_details: bytes
    traceparent: str
    def __init__(self, task_token: _Optional[str] = ..., activity_name: _Optional[str] = ..., input: _Optional[bytes] = ..., attempt: _Optional[int] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., deadline_ms: _Optional[int] = ..., heartbeat_timeout_ms: _Optional[int] = ..., heartbeat_details: _Optional[bytes] = ..., traceparent: _Optional[str] = ...) -> None: ...

class PollActivityTaskResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[ActivityTask]
    def __init__(self, tasks: _Optional[_Iterable[_Union[ActivityTask, _Mapping]]] = ...) -> None: ...

class CompleteActivityTaskRequest(_message.Message):
    __slots__ = ("task_token", "output")
    TASK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    task_token: str
    output: bytes
    def __init__(self, task_token: _Optional[str] = ..., output: _Optional[bytes] = ...) -> None: ...

class CompleteActivityTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FailActivityTaskRequest(_message.Message):
    __slots__ = ("task_token", "error_kind", "message", "non_retryable", "handed_back")
    TASK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ERROR_KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NON_RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    HANDED_BACK_FIELD_NUMBER: _ClassVar[int]
    task_token: str
    error_kind: str
    message: str
    non_retryable: bool
    handed_back: bool
    def __init__(self, task_token: _Optional[str] = ..., error_kind: _Optional[str] = ..., message: _Optional[str] = ..., non_retryable: _Optional[bool] = ..., handed_back: _Optional[bool] = ...) -> None: ...

class FailActivityTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RecordHeartbeatRequest(_message.Message):
    __slots__ = ("task_token", "details")
    TASK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    task_token: str
    details: bytes
    def __init__(self, task_token: _Optional[str] = ..., details: _Optional[bytes] = ...) -> None: ...

class RecordHeartbeatResponse(_message.Message):
    __slots__ = ("cancel_requested",)
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    cancel_requested: bool
    def __init__(self, cancel_requested: _Optional[bool] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("name", "role", "queues", "types", "expires_in_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    queues: _containers.RepeatedScalarFieldContainer[str]
    types: _containers.RepeatedScalarFieldContainer[str]
    expires_in_ms: int
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., queues: _Optional[_Iterable[str]] = ..., types: _Optional[_Iterable[str]] = ..., expires_in_ms: _Optional[int] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("name", "role", "queues", "types", "created_at_ms", "expires_at_ms", "last_used_ms", "revoked_at_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_MS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    queues: _containers.RepeatedScalarFieldContainer[str]
    types: _containers.RepeatedScalarFieldContainer[str]
    created_at_ms: int
    expires_at_ms: int
    last_used_ms: int
    revoked_at_ms: int
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., queues: _Optional[_Iterable[str]] = ..., types: _Optional[_Iterable[str]] = ..., created_at_ms: _Optional[int] = ..., expires_at_ms: _Optional[int] = ..., last_used_ms: _Optional[int] = ..., revoked_at_ms: _Optional[int] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("token", "info")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    token: str
    info: TokenInfo
    def __init__(self, token: _Optional[str] = ..., info: _Optional[_Union[TokenInfo, _Mapping]] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAuditRequest(_message.Message):
    __slots__ = ("since_ms", "limit")
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    since_ms: int
    limit: int
    def __init__(self, since_ms: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("at_ms", "actor", "action", "target", "peer", "outcome")
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    at_ms: int
    actor: str
    action: str
    target: str
    peer: str
    outcome: str
    def __init__(self, at_ms: _Optional[int] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., target: _Optional[str] = ..., peer: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class ListAuditResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ...) -> None: ...
