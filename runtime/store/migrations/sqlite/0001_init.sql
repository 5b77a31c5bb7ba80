CREATE TABLE modules (
    module_id TEXT PRIMARY KEY,
    workflow_type TEXT NOT NULL,
    component BLOB NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE workflow_types (
    name TEXT PRIMARY KEY,
    module_id TEXT NOT NULL REFERENCES modules (module_id),
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    workflow_type TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    run_number INTEGER NOT NULL,
    module_id TEXT NOT NULL REFERENCES modules (module_id),
    input BLOB NOT NULL,
    seed BIGINT NOT NULL,
    status TEXT NOT NULL,
    output BLOB,
    error_kind TEXT,
    error_message TEXT,
    started_at_ms BIGINT NOT NULL,
    closed_at_ms BIGINT,
    history_length INTEGER NOT NULL,
    -- A child run's parent and the parent's handle for it.
    parent_run_id TEXT,
    parent_handle BIGINT
);
-- One running run per workflow id.
CREATE UNIQUE INDEX runs_one_running ON runs (workflow_id) WHERE status = 'running';
CREATE INDEX runs_by_workflow ON runs (workflow_id, started_at_ms);
CREATE INDEX runs_by_start ON runs (started_at_ms, run_id);

-- Append-only: rows are inserted, never updated.
CREATE TABLE events (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    seq BIGINT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE activity_tasks (
    task_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    workflow_id TEXT NOT NULL,
    handle BIGINT NOT NULL,
    task_queue TEXT NOT NULL,
    activity_name TEXT NOT NULL,
    input BLOB NOT NULL,
    options TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    scheduled_at_ms BIGINT NOT NULL,
    visible_at_ms BIGINT NOT NULL,
    lease_until_ms BIGINT,
    heartbeat_details BLOB
);
CREATE INDEX tasks_ready ON activity_tasks (task_queue, visible_at_ms);

CREATE TABLE timers (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    handle BIGINT NOT NULL,
    fire_at_ms BIGINT NOT NULL,
    PRIMARY KEY (run_id, handle)
);
CREATE INDEX timers_due ON timers (fire_at_ms);
