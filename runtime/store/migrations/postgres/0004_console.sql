-- What the console shows of an attempt in flight: when it was claimed, its last heartbeat,
-- and the error of the attempt before it.
ALTER TABLE activity_tasks ADD COLUMN claimed_at_ms BIGINT;
ALTER TABLE activity_tasks ADD COLUMN last_heartbeat_ms BIGINT;
ALTER TABLE activity_tasks ADD COLUMN last_error_kind TEXT;
ALTER TABLE activity_tasks ADD COLUMN last_error_message TEXT;

-- Attempts that failed or timed out and were retried (the history records only an
-- activity's outcome). Written on the failure path only; never updated.
CREATE TABLE activity_attempts (
    run_id TEXT NOT NULL,
    handle BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    started_at_ms BIGINT,
    ended_at_ms BIGINT NOT NULL,
    error_kind TEXT NOT NULL,
    error_message TEXT NOT NULL,
    retry_at_ms BIGINT NOT NULL,
    PRIMARY KEY (run_id, handle, attempt)
);

-- The runs page: newest first within a status or a type, and a run's children.
CREATE INDEX runs_by_status ON runs (status, started_at_ms, run_id);
CREATE INDEX runs_by_type ON runs (workflow_type, started_at_ms, run_id);
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_by_module ON runs (module_id, status);
-- Counts per status of one type (the runs page asks with every refresh).
CREATE INDEX runs_by_type_status ON runs (workflow_type, status);
