-- How long one attempt may hold the task (its shorter timeout), so a claim sets each
-- task's lease in the same statement. NULL: the server's default.
ALTER TABLE activity_tasks ADD COLUMN lease_ms BIGINT;
