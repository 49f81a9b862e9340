-- Retention: prune the oldest messages in small batches (`hookd prune`), walking this index.
CREATE INDEX message_by_created ON message (created_at);
