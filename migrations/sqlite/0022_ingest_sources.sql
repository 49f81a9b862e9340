-- Ingest sources (src/ingest.rs). Each owns an internal application (app_id, uid
-- hookd-ingest-<id>) whose endpoints and messages are the source's: deleting the application
-- deletes the source. config: the SDK's config object as JSON, sealed under the main key
-- when one is set (it holds the sender's secret). token: the current token of the ingest
-- URL (NULL for cron sources); earlier tokens stay valid in ingest_source_token until
-- expires_at. next_run_at: a cron source's next scheduled time not run yet.
CREATE TABLE ingest_source (
    id           TEXT PRIMARY KEY,
    uid          TEXT UNIQUE,
    name         TEXT NOT NULL,
    source_type  TEXT NOT NULL,
    config       TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    app_id       TEXT NOT NULL UNIQUE REFERENCES application (id) ON DELETE CASCADE,
    token        TEXT UNIQUE,
    next_run_at  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX ingest_source_next_run ON ingest_source (next_run_at) WHERE next_run_at IS NOT NULL;

CREATE TABLE ingest_source_token (
    token       TEXT PRIMARY KEY,
    source_id   TEXT NOT NULL REFERENCES ingest_source (id) ON DELETE CASCADE,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX ingest_source_token_source ON ingest_source_token (source_id);

-- Every request an ingest URL received: accepted (msg_id set) or refused (error_text).
CREATE TABLE ingest_log (
    id           TEXT PRIMARY KEY,
    source_id    TEXT NOT NULL REFERENCES ingest_source (id) ON DELETE CASCADE,
    status_code  INTEGER NOT NULL,
    error_text   TEXT NOT NULL,
    headers      TEXT NOT NULL,
    payload      BLOB NOT NULL,
    msg_id       TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX ingest_log_source ON ingest_log (source_id, id);
CREATE INDEX ingest_log_created ON ingest_log (created_at);

-- A monitor may watch an ingest source (its application is then the source's).
ALTER TABLE monitor ADD COLUMN source_id TEXT;
