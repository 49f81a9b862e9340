-- Endpoint health, kept up to date in the same write as each batch of attempt records (see
-- src/domain/health.rs): never computed by scanning the attempt log. An endpoint without a
-- row has had no attempt recorded: healthy, with nothing to show.
-- outcomes: the last health_window outcomes, oldest first, '1' a success and '0' a failure.
-- alerted: the greatest of failing_alert_at reported for the current streak (0: none).
-- state: 'healthy', 'degraded' or 'failing' after the last batch; 'disabled' is the
-- endpoint's own flag, shown over it.
CREATE TABLE endpoint_health (
    endpoint_id           TEXT PRIMARY KEY REFERENCES endpoint (id) ON DELETE CASCADE,
    consecutive_failures  INTEGER NOT NULL,
    failing_since         INTEGER,
    outcomes              TEXT NOT NULL,
    last_success_at       INTEGER,
    last_failure_at       INTEGER,
    alerted               INTEGER NOT NULL,
    state                 TEXT NOT NULL,
    updated_at            INTEGER NOT NULL
);

-- Per-endpoint overrides of auto_disable_after_failures and auto_disable_after_secs;
-- NULL: the global option.
ALTER TABLE endpoint ADD COLUMN auto_disable_after_failures INTEGER;
ALTER TABLE endpoint ADD COLUMN auto_disable_after_secs INTEGER;
