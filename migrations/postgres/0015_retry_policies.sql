-- Retry policies (see src/domain/retry.rs): an endpoint's and an event type's, as the
-- camelCase JSON the API takes (NULL: none); a message's priority (1 high, 2 normal, 3 low;
-- NULL: normal), which picks a policy from the configuration; and, on each attempt, the
-- policy it ran under ('endpoint', 'eventType', 'priority:high', 'default'…) and its timeout.
-- Attempts made before this migration have NULL in both.
ALTER TABLE endpoint ADD COLUMN retry_policy TEXT;
ALTER TABLE event_type ADD COLUMN retry_policy TEXT;
ALTER TABLE message ADD COLUMN priority SMALLINT;
ALTER TABLE attempt ADD COLUMN policy TEXT;
ALTER TABLE attempt ADD COLUMN timeout_ms BIGINT;
