-- An endpoint's signature scheme as JSON ({"scheme": "stripe", "header": ...}); NULL is the
-- standard scheme, which every endpoint created before this migration keeps.
ALTER TABLE endpoint ADD COLUMN signature TEXT;
