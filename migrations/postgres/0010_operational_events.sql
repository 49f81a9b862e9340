-- Operational events waiting to be turned into messages of the internal operational
-- application (an outbox). A row is written in the same transaction as the fact it reports
-- (an attempt recorded, an endpoint changed), so an event is never lost and never reported
-- twice; the events module drains the table in id order, creating each message with the
-- eventId `hookd-op-<id>` (idempotent across nodes and restarts), then deletes the row.
-- event_type: "endpoint.disabled", ...; payload: the event's JSON ({"type": ..., "data": ...}).
CREATE TABLE operational_event (
    id          BIGSERIAL PRIMARY KEY,
    event_type  TEXT COLLATE "C" NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
