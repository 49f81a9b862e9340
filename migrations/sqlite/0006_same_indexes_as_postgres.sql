-- The indexes PostgreSQL has and SQLite lacked (a test now keeps the two schemas' tables,
-- columns and indexes the same by name).

-- Expired idempotency keys are pruned by start time (every few minutes, while serving).
CREATE INDEX IF NOT EXISTS idempotency_key_by_start ON idempotency_key (started_at);

-- eventIds are unique per application. SQLite cannot drop the table's older
-- UNIQUE (app_id, event_id) without rebuilding the message table, so that constraint stays
-- as well; this index only holds messages that have an eventId.
CREATE UNIQUE INDEX IF NOT EXISTS message_event_id ON message (app_id, event_id)
    WHERE event_id IS NOT NULL;
