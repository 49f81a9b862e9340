-- Change detection (src/entities.rs). entity_type: the rules of a type, shared by every
-- application; rules is the JSON array the API shows. entity: the current state of each key
-- (version 0 and a NULL state: a row inserted before its first snapshot, so that concurrent
-- first snapshots of a key lock one row and apply one after the other). entity_history:
-- every version, with the events it fired (a JSON array). entity_event: the outbox of those
-- events, written in the snapshot's transaction and drained into messages of the
-- application with the eventId `hookd-ent-<id>`; payload is the message payload.
CREATE TABLE entity_type (
    name         TEXT COLLATE "C" PRIMARY KEY,
    description  TEXT,
    rules        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE TABLE entity (
    app_id       TEXT COLLATE "C" NOT NULL REFERENCES application (id) ON DELETE CASCADE,
    entity_type  TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    version      BIGINT NOT NULL,
    state        TEXT,
    observed_at  BIGINT,
    PRIMARY KEY (app_id, entity_type, key)
);
CREATE TABLE entity_history (
    app_id       TEXT COLLATE "C" NOT NULL REFERENCES application (id) ON DELETE CASCADE,
    entity_type  TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    version      BIGINT NOT NULL,
    state        TEXT NOT NULL,
    events       TEXT NOT NULL,
    observed_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, entity_type, key, version)
);
CREATE TABLE entity_event (
    id           BIGSERIAL PRIMARY KEY,
    app_id       TEXT COLLATE "C" NOT NULL REFERENCES application (id) ON DELETE CASCADE,
    event_type   TEXT COLLATE "C" NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
