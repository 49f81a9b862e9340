-- The index PostgreSQL has and SQLite lacked (a test now keeps the two schemas' tables,
-- columns and indexes the same by name): expired idempotency keys are pruned by start time,
-- every hour while serving.
CREATE INDEX IF NOT EXISTS idempotency_key_by_start ON idempotency_key (started_at);
