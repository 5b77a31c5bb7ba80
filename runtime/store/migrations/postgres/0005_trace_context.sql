-- The W3C trace context a run's spans hang from (its starter's span), and the one an
-- activity task's attempts hang from (its run's span). NULL when tracing was off.
ALTER TABLE runs ADD COLUMN trace_context TEXT;
ALTER TABLE activity_tasks ADD COLUMN trace_context TEXT;
