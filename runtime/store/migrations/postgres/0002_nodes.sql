-- Several server nodes may share a database (PostgreSQL); each running run has one owner,
-- the node that steps it. Others route commands for it through the owner's inbox.
ALTER TABLE runs ADD COLUMN owner TEXT;

-- A node is alive while its lease is in the future; its runs are adopted once it is not.
CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY,
    lease_until_ms BIGINT NOT NULL
);

-- Commands for a run owned by another node, consumed (deleted) by the owner's step.
CREATE TABLE inbox (
    id BIGSERIAL PRIMARY KEY,
    owner TEXT NOT NULL,
    run_id TEXT NOT NULL,
    command TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX inbox_by_owner ON inbox (owner, id);
CREATE INDEX runs_by_owner ON runs (owner) WHERE status = 'running';
