-- The last foreign keys on the hot path: message.app_id, delivery.endpoint_id and
-- attempt.endpoint_id. Each was checked per row inserted, by a query of its own that also
-- locked the row it found: about a tenth of the server's CPU per message accepted and
-- delivered (`perf record -a` under `hookd-bench a`, docs/performance.md step 22).
--
-- The writers take those locks themselves, one statement per batch rather than one query
-- per row, and write nothing for a row that is gone:
-- - accepting messages (src/store/postgres/ingest.rs) locks the batch's applications, then
--   their enabled endpoints, FOR KEY SHARE before it inserts;
-- - recording attempts (src/store/postgres/records.rs) already locks the batch's endpoints
--   FOR NO KEY UPDATE before it inserts, and inserts an attempt only for a delivery that
--   still exists;
-- - resending and replaying (src/store/queries) lock the endpoint FOR KEY SHARE first.
-- A delete of the application or endpoint waits for those locks, and the deletes below,
-- run after it (AFTER triggers, each statement with a snapshot of its own), see every row
-- the writers committed meanwhile: what the constraints' ON DELETE CASCADE did.
ALTER TABLE message DROP CONSTRAINT IF EXISTS message_app_id_fkey;
ALTER TABLE delivery DROP CONSTRAINT IF EXISTS delivery_endpoint_id_fkey;
ALTER TABLE attempt DROP CONSTRAINT IF EXISTS attempt_endpoint_id_fkey;

-- An application's messages; its endpoints still go by their own foreign key, and with them
-- every delivery and attempt (each is to one of the application's endpoints).
CREATE FUNCTION hookd_application_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message WHERE app_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER application_deleted AFTER DELETE ON application
    FOR EACH ROW EXECUTE FUNCTION hookd_application_deleted();

-- An endpoint's deliveries and attempts. A batch of records under way held the endpoint's
-- row, so the delete waited for it and these see its attempts.
CREATE FUNCTION hookd_endpoint_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM delivery WHERE endpoint_id = OLD.id;
    DELETE FROM attempt WHERE endpoint_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER endpoint_deleted AFTER DELETE ON endpoint
    FOR EACH ROW EXECUTE FUNCTION hookd_endpoint_deleted();
