-- No query walks attempts by creation time (retention deletes them by message), and the
-- index cost an entry for every attempt recorded. SQLite never had it; a test keeps the
-- two schemas' indexes the same by name.
DROP INDEX IF EXISTS attempt_by_created;
