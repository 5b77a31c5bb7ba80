-- The sweeper's two reads of tasks, each node every 20 ms: attempts whose lease ran out, and
-- unclaimed attempts with a schedule-to-start timeout. Without these indexes both scanned
-- the whole table, rows deleted but not yet vacuumed included (on PostgreSQL, 1.2 ms a read
-- after 3,000 hello workflows; a full scan per read at any size).
CREATE INDEX tasks_by_lease ON activity_tasks (lease_until_ms) WHERE lease_until_ms IS NOT NULL;
CREATE INDEX tasks_unstarted ON activity_tasks (visible_at_ms)
    WHERE lease_until_ms IS NULL AND start_within_ms IS NOT NULL;
