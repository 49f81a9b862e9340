-- The attempt log, and what the dispatcher needs on the delivery queue.

-- 0 scheduled, 1 manual (resend / recover): the trigger of the next attempt.
ALTER TABLE delivery ADD COLUMN trigger_type INTEGER NOT NULL DEFAULT 0;

-- Pending deliveries of one endpoint, to park and unpark them when it is disabled/enabled.
CREATE INDEX delivery_pending_by_endpoint ON delivery (endpoint_id) WHERE status = 1;

CREATE TABLE attempt (
    id                    TEXT PRIMARY KEY,
    msg_id                TEXT NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    endpoint_id           TEXT NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    app_id                TEXT NOT NULL,
    url                   TEXT NOT NULL,
    status                INTEGER NOT NULL,       -- 0 success, 2 fail
    response_status_code  INTEGER NOT NULL,       -- 0: no response
    response              TEXT NOT NULL,          -- capped body
    response_headers      TEXT NOT NULL,          -- JSON object
    duration_ms           INTEGER NOT NULL,
    trigger_type          INTEGER NOT NULL,
    error_class           TEXT,
    error                 TEXT,
    created_at            INTEGER NOT NULL
);
CREATE INDEX attempt_by_msg ON attempt (msg_id, id);
CREATE INDEX attempt_by_endpoint ON attempt (endpoint_id, id);
