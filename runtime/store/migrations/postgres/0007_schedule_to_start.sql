-- An activity's schedule-to-start timeout: an attempt not claimed within this many ms of
-- becoming visible fails (ScheduleToStartTimeout). NULL: it waits for a worker forever.
ALTER TABLE activity_tasks ADD COLUMN start_within_ms BIGINT;
