-- For failed attempts, the headers hookd set on the request (credentials redacted), as
-- JSON; '{}' for attempts that succeeded and for those made before hookd kept them.
ALTER TABLE attempt ADD COLUMN request_headers TEXT NOT NULL DEFAULT '{}';
