-- hookd schema (PostgreSQL): the same shape as the SQLite one. Times are BIGINT microseconds
-- since the epoch; JSON is TEXT (payloads must come back byte for byte, which JSONB would
-- not do); flags are BOOLEAN. Ids and names sort bytewise (COLLATE "C"), as on SQLite, so
-- keyset pagination means the same thing on both backends.

CREATE TABLE api_token (
    token_hash  TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE application (
    id          TEXT COLLATE "C" PRIMARY KEY,
    uid         TEXT COLLATE "C" UNIQUE,
    name        TEXT NOT NULL,
    rate_limit  INTEGER,
    metadata    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE event_type (
    name          TEXT COLLATE "C" PRIMARY KEY,
    description   TEXT NOT NULL,
    archived      BOOLEAN NOT NULL,
    deprecated    BOOLEAN NOT NULL,
    feature_flags TEXT,                 -- JSON array or NULL
    group_name    TEXT,
    schemas       TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE endpoint (
    id                TEXT COLLATE "C" PRIMARY KEY,
    app_id            TEXT COLLATE "C" NOT NULL REFERENCES application (id) ON DELETE CASCADE,
    uid               TEXT COLLATE "C",
    url               TEXT NOT NULL,
    description       TEXT NOT NULL,
    disabled          BOOLEAN NOT NULL,
    rate_limit        INTEGER,
    event_types       TEXT,             -- JSON array, NULL = all event types
    channels          TEXT,             -- JSON array, NULL = no channel filter
    metadata          TEXT NOT NULL,
    headers           TEXT NOT NULL,
    secret            TEXT NOT NULL,
    previous_secrets  TEXT NOT NULL,    -- JSON [{"key": "whsec_..", "expiresAt": micros}]
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (app_id, uid)
);
CREATE INDEX endpoint_by_app ON endpoint (app_id, id);

CREATE TABLE message (
    id          TEXT COLLATE "C" PRIMARY KEY,
    app_id      TEXT COLLATE "C" NOT NULL REFERENCES application (id) ON DELETE CASCADE,
    event_type  TEXT COLLATE "C" NOT NULL,
    event_id    TEXT COLLATE "C",
    channels    TEXT,                   -- JSON array or NULL
    payload     TEXT,                   -- NULL once expunged
    created_at  BIGINT NOT NULL,
    UNIQUE (app_id, event_id)
);
CREATE INDEX message_by_app ON message (app_id, id);
-- Retention: prune the oldest messages in small batches (see the README).
CREATE INDEX message_by_created ON message (created_at);

-- One row per (message, endpoint) that must be delivered: the delivery queue.
-- status: 0 success, 1 pending, 2 failed, 3 sending (the contract's MessageStatus codes).
-- trigger_type: 0 scheduled, 1 manual (resend / recover): the trigger of the next attempt.
-- The hottest table: every delivery is updated two or three times, so autovacuum is asked
-- to clean it far sooner than the default 20 % of dead rows.
CREATE TABLE delivery (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msg_id           TEXT COLLATE "C" NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    endpoint_id      TEXT COLLATE "C" NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    app_id           TEXT COLLATE "C" NOT NULL,
    status           SMALLINT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    lease_until      BIGINT,
    trigger_type     SMALLINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (msg_id, endpoint_id)
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
-- Only deliveries still to be made are in the queue index, so it stays small however long
-- the history; parked deliveries (disabled endpoint) have a NULL time and are never scanned.
CREATE INDEX delivery_due ON delivery (next_attempt_at) WHERE status IN (1, 3);
CREATE INDEX delivery_by_endpoint ON delivery (endpoint_id, msg_id);
-- Pending deliveries of one endpoint, to park and unpark them when it is disabled/enabled.
CREATE INDEX delivery_pending_by_endpoint ON delivery (endpoint_id) WHERE status = 1;

CREATE TABLE attempt (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    msg_id                TEXT COLLATE "C" NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    endpoint_id           TEXT COLLATE "C" NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    app_id                TEXT COLLATE "C" NOT NULL,
    url                   TEXT NOT NULL,
    status                SMALLINT NOT NULL,      -- 0 success, 2 fail
    response_status_code  INTEGER NOT NULL,       -- 0: no response
    response              TEXT NOT NULL,          -- capped body
    response_headers      TEXT NOT NULL,          -- JSON object
    duration_ms           BIGINT NOT NULL,
    trigger_type          SMALLINT NOT NULL,
    error_class           TEXT,
    error                 TEXT,
    created_at            BIGINT NOT NULL
);
CREATE INDEX attempt_by_msg ON attempt (msg_id, id);
CREATE INDEX attempt_by_endpoint ON attempt (endpoint_id, id);
-- Retention: prune old attempts in small batches (see the README).
CREATE INDEX attempt_by_created ON attempt (created_at);

-- state: 0 running, 1 completed.
CREATE TABLE idempotency_key (
    key         TEXT PRIMARY KEY,
    state       SMALLINT NOT NULL,
    status      INTEGER,
    body        BYTEA,
    started_at  BIGINT NOT NULL
);
CREATE INDEX idempotency_key_by_start ON idempotency_key (started_at);
