-- FIFO endpoints (`ordering: "fifo"`, see src/store/fifo.rs): their deliveries go out one at a
-- time, in the order they were queued. ordering: 0 concurrent, 1 fifo. fifo_head is the
-- delivery at the head of the endpoint's line (NULL: none); the others wait parked (pending
-- with a NULL next_attempt_at) until the head succeeds or fails for good.
ALTER TABLE endpoint ADD COLUMN ordering SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE endpoint ADD COLUMN fifo_head BIGINT;
-- An endpoint's parked deliveries in queue order: the next head is the first of them.
CREATE INDEX delivery_parked ON delivery (endpoint_id, id)
    WHERE status = 1 AND next_attempt_at IS NULL;
