-- Change detection (src/entities.rs). entity_type: the rules of a type, shared by every
-- application; rules is the JSON array the API shows. entity: the current state of each key
-- (version 0 and a NULL state: a row inserted with the first snapshot's lock, before it is
-- applied, so concurrent first snapshots of a key lock one row). entity_history: every
-- version, with the events it fired (a JSON array). entity_event: the outbox of those
-- events, written in the snapshot's transaction and drained into messages of the
-- application with the eventId `hookd-ent-<id>`; payload is the message payload.
CREATE TABLE entity_type (
    name         TEXT PRIMARY KEY,
    description  TEXT,
    rules        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE TABLE entity (
    app_id       TEXT NOT NULL REFERENCES application (id) ON DELETE CASCADE,
    entity_type  TEXT NOT NULL,
    key          TEXT NOT NULL,
    version      INTEGER NOT NULL,
    state        TEXT,
    observed_at  INTEGER,
    PRIMARY KEY (app_id, entity_type, key)
);
CREATE TABLE entity_history (
    app_id       TEXT NOT NULL REFERENCES application (id) ON DELETE CASCADE,
    entity_type  TEXT NOT NULL,
    key          TEXT NOT NULL,
    version      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    events       TEXT NOT NULL,
    observed_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, entity_type, key, version)
);
CREATE TABLE entity_event (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id       TEXT NOT NULL REFERENCES application (id) ON DELETE CASCADE,
    event_type   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
