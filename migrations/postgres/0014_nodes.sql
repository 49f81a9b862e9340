-- The delivering nodes sharing this database, and which of them holds each claim, so that a
-- node that died is noticed by its heartbeat going stale (seconds) rather than by its
-- leases running out (the request timeout plus 30 s). PostgreSQL only: SQLite is one
-- process, with no peer to notice.
--
-- `last_heartbeat` is the database's own clock (microseconds), written by the node every
-- `node_heartbeat_secs` and compared with the same clock, so the nodes' clocks may differ.
-- A node's row is inserted by its first heartbeat and deleted when it stops cleanly, or by
-- the node that finds it stale and gives its claims back.
CREATE TABLE node (
    id              TEXT COLLATE "C" PRIMARY KEY,
    address         TEXT NOT NULL,
    version         TEXT NOT NULL,
    started_at      BIGINT NOT NULL,
    last_heartbeat  BIGINT NOT NULL
);

-- The node that claimed the delivery last (its `node.id`); meaningful while the delivery is
-- being sent (status 3). Not cleared when the claim ends: whatever moves a delivery out of
-- status 3 takes it out of the index below, which is all that reads it. NULL for claims made
-- before this migration, which come back when their lease expires, as before.
ALTER TABLE delivery ADD COLUMN claimed_by TEXT COLLATE "C";
-- The claims of one node, to give back those of a node found dead. Only deliveries being
-- sent have an entry (a few per endpoint in flight), so it stays small; a claim adds one
-- entry and recording the attempt leaves it (`status` is in `delivery_due`'s predicate
-- already, so these updates were never HOT).
CREATE INDEX delivery_claimed_by ON delivery (claimed_by) WHERE status = 3;
