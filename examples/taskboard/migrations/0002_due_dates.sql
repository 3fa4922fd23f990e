-- Due dates, and the overdue flag the background job sets.
ALTER TABLE tasks ADD COLUMN due_at_ms BIGINT;
ALTER TABLE tasks ADD COLUMN overdue INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_due ON tasks (due_at_ms) WHERE overdue = 0;
