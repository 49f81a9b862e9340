-- Pending deliveries of one endpoint (to park and unpark them) are found through
-- delivery_due_by_endpoint, whose predicate (status IN (1, 3)) covers status = 1: one
-- index less to maintain on every delivery written and moved on.
DROP INDEX IF EXISTS delivery_pending_by_endpoint;
