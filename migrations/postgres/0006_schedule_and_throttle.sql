-- Scheduled messages (`deliverAt`): the time the producer asked for, NULL for a message sent
-- at once. Its deliveries are written due at that time, so the queue needs nothing more.
ALTER TABLE message ADD COLUMN deliver_at BIGINT;
-- The scheduled messages of an application, in id order (`GET …/msg/scheduled`): only
-- messages sent with a `deliverAt` have an entry.
CREATE INDEX message_scheduled ON message (app_id, id) WHERE deliver_at IS NOT NULL;

-- throttleRate: one token bucket per throttled endpoint (`endpoint:<id>`) and application
-- (`application:<id>`), taken from (and locked) by claims on every node. next_at is the
-- time the bucket is full again if nothing more is taken (NULL: never used). Rows of
-- deleted endpoints and applications are removed with them.
CREATE TABLE throttle (
    key      TEXT COLLATE "C" PRIMARY KEY,
    next_at  BIGINT
);
