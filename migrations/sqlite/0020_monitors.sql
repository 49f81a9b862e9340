-- Freshness monitors (src/monitors.rs). state: 0 ok, 1 stale. event_type NULL: any message
-- of the application. One of max_silence (seconds) and deadline (a cron schedule, UTC).
-- due_at: when an ok monitor goes stale if nothing more comes (what the checker looks for). scanned_to: the greatest message id of
-- the application already looked at, so each message is read at most once per monitor.
CREATE TABLE monitor (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    app_id        TEXT NOT NULL REFERENCES application (id) ON DELETE CASCADE,
    event_type    TEXT,
    max_silence   INTEGER,
    deadline      TEXT,
    state         INTEGER NOT NULL,
    last_seen_at  INTEGER,
    state_since   INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    scanned_to    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX monitor_due ON monitor (due_at);
CREATE INDEX monitor_app ON monitor (app_id);
