-- Due deliveries of one endpoint, in due order: lets a claim reach endpoints whose work sits
-- behind another endpoint's backlog without scanning that backlog.
CREATE INDEX delivery_due_by_endpoint ON delivery (endpoint_id, next_attempt_at)
    WHERE status IN (1, 3);
