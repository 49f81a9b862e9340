-- hookd core schema (SQLite). Times are integer microseconds since the epoch; JSON is text.

CREATE TABLE api_token (
    token_hash  TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE application (
    id          TEXT PRIMARY KEY,
    uid         TEXT UNIQUE,
    name        TEXT NOT NULL,
    rate_limit  INTEGER,
    metadata    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE event_type (
    name          TEXT PRIMARY KEY,
    description   TEXT NOT NULL,
    archived      INTEGER NOT NULL,
    deprecated    INTEGER NOT NULL,
    feature_flags TEXT,                 -- JSON array or NULL
    group_name    TEXT,
    schemas       TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE endpoint (
    id                TEXT PRIMARY KEY,
    app_id            TEXT NOT NULL REFERENCES application (id) ON DELETE CASCADE,
    uid               TEXT,
    url               TEXT NOT NULL,
    description       TEXT NOT NULL,
    disabled          INTEGER NOT NULL,
    rate_limit        INTEGER,
    event_types       TEXT,             -- JSON array, NULL = all event types
    channels          TEXT,             -- JSON array, NULL = no channel filter
    metadata          TEXT NOT NULL,
    headers           TEXT NOT NULL,
    secret            TEXT NOT NULL,
    previous_secrets  TEXT NOT NULL,    -- JSON [{"key": "whsec_..", "expiresAt": micros}]
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (app_id, uid)
);
CREATE INDEX endpoint_by_app ON endpoint (app_id, id);

CREATE TABLE message (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES application (id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    event_id    TEXT,
    channels    TEXT,                   -- JSON array or NULL
    payload     TEXT,                   -- NULL once expunged
    created_at  INTEGER NOT NULL,
    UNIQUE (app_id, event_id)
);
CREATE INDEX message_by_app ON message (app_id, id);

-- One row per (message, endpoint) that must be delivered: the delivery queue.
-- status: 0 success, 1 pending, 2 failed, 3 sending (the contract's MessageStatus codes).
CREATE TABLE delivery (
    id               INTEGER PRIMARY KEY,
    msg_id           TEXT NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL REFERENCES endpoint (id) ON DELETE CASCADE,
    app_id           TEXT NOT NULL,
    status           INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_until      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (msg_id, endpoint_id)
);
CREATE INDEX delivery_due ON delivery (next_attempt_at) WHERE status IN (1, 3);
CREATE INDEX delivery_by_endpoint ON delivery (endpoint_id, msg_id);

-- state: 0 running, 1 completed.
CREATE TABLE idempotency_key (
    key         TEXT PRIMARY KEY,
    state       INTEGER NOT NULL,
    status      INTEGER,
    body        BLOB,
    started_at  INTEGER NOT NULL
) WITHOUT ROWID;
