-- Payload retention: when a message's payload is removed (payloadRetentionPeriod or
-- payloadRetentionHours, or the payload_retention_days default). NULL: kept until expunged,
-- and also once removed, so the index holds only payloads still waiting to expire and the
-- expiry job walks nothing else.
ALTER TABLE message ADD COLUMN payload_expires_at INTEGER;
CREATE INDEX message_payload_expiry ON message (payload_expires_at)
    WHERE payload_expires_at IS NOT NULL;

-- Background tasks (`GET /api/v1/background-task`). kind: the contract's task type
-- ("application.purge_content", ...); status: 0 running, 1 finished, 2 failed. `data` is what
-- the API shows (JSON object); `cursor` is where the task goes on from (its own format per
-- kind). A running task is run by whoever holds its lease (`lease_until`, 0 for a new task):
-- a task whose runner died is taken over once the lease runs out.
CREATE TABLE background_task (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    status       INTEGER NOT NULL,
    app_id       TEXT,
    data         TEXT NOT NULL,
    cursor       TEXT,
    lease_until  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX background_task_runnable ON background_task (lease_until) WHERE status = 0;
