-- Bearer tokens: only the SHA-256 of the secret is kept. queues / types are comma-separated
-- scopes (NULL: no limit).
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    queues TEXT,
    types TEXT,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    last_used_ms BIGINT,
    revoked_at_ms BIGINT
);

-- Who did what to the server, append-only.
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    peer TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (at_ms, id);

-- The secret of the current claim of a task: task tokens carry it, so a token cannot be
-- made up from a task's id and attempt.
ALTER TABLE activity_tasks ADD COLUMN claim_secret TEXT;
