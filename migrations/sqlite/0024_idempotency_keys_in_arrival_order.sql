-- Idempotency keys stored in the order they arrive, found by a unique index on the key.
--
-- The table was clustered on the key (WITHOUT ROWID), with each stored response (about
-- 500 bytes) inline: the Svix SDKs' random keys put every new key on a leaf of its own,
-- seven rows to a 4 KiB page, so leaves split every few inserts and each message wrote
-- about 24 KB more to the WAL and again at the checkpoint. Now the rows, responses and
-- all, are appended to the table's last page, and a new key touches one leaf of the index,
-- whose ~80-byte entries fill a page fifty at a time.
CREATE TABLE idempotency_key_by_arrival (
    key         TEXT NOT NULL UNIQUE,
    state       INTEGER NOT NULL,
    status      INTEGER,
    body        BLOB,
    started_at  INTEGER NOT NULL
);

INSERT INTO idempotency_key_by_arrival (key, state, status, body, started_at)
SELECT key, state, status, body, started_at FROM idempotency_key ORDER BY started_at;

DROP TABLE idempotency_key;

ALTER TABLE idempotency_key_by_arrival RENAME TO idempotency_key;

CREATE INDEX idempotency_key_by_start ON idempotency_key (started_at);
