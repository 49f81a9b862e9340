-- Pending deliveries of one endpoint (to park and unpark them) are found through
-- delivery_due_by_endpoint, whose predicate (status IN (1, 3)) the queries repeat so SQLite
-- can use it: one index less to maintain on every delivery written, claimed and moved on.
DROP INDEX IF EXISTS delivery_pending_by_endpoint;
