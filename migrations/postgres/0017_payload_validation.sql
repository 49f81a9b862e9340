-- Whether messages of an event type are checked against its JSON Schema at ingest
-- (`validatePayloads`); the server's `validate_payloads` turns it on for every event type.
ALTER TABLE event_type ADD COLUMN validate_payloads BOOLEAN NOT NULL DEFAULT FALSE;
