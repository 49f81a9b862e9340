-- API tokens with abilities, an optional application, an expiry and a rate limit
-- (src/api/auth.rs). Tokens made before this migration become named admin tokens with no
-- rate limit (rate_limit 0), as they had none.
-- kind: 0 named, 1 app portal. abilities: names separated by spaces. hint: the token's
-- first characters. window_start/window_count: the rate limit's current window (unix
-- seconds) and the requests counted in it, by every node.
ALTER TABLE api_token
    ADD COLUMN id TEXT COLLATE "C",
    ADD COLUMN name TEXT NOT NULL DEFAULT 'admin',
    ADD COLUMN kind INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN abilities TEXT NOT NULL DEFAULT 'admin',
    ADD COLUMN app_id TEXT COLLATE "C" REFERENCES application (id) ON DELETE CASCADE,
    ADD COLUMN session_id TEXT,
    ADD COLUMN rate_limit BIGINT,
    ADD COLUMN hint TEXT NOT NULL DEFAULT 'hk_',
    ADD COLUMN expires_at BIGINT,
    ADD COLUMN last_used_at BIGINT,
    ADD COLUMN window_start BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN window_count BIGINT NOT NULL DEFAULT 0;
UPDATE api_token SET id = 'tok_0' || upper(substr(token_hash, 1, 25)), rate_limit = 0;
ALTER TABLE api_token DROP CONSTRAINT api_token_pkey;
ALTER TABLE api_token ALTER COLUMN id SET NOT NULL;
ALTER TABLE api_token ADD PRIMARY KEY (id);
ALTER TABLE api_token ADD CONSTRAINT api_token_hash_key UNIQUE (token_hash);
ALTER TABLE api_token ALTER COLUMN name DROP DEFAULT;
ALTER TABLE api_token ALTER COLUMN kind DROP DEFAULT;
ALTER TABLE api_token ALTER COLUMN abilities DROP DEFAULT;
ALTER TABLE api_token ALTER COLUMN hint DROP DEFAULT;
CREATE INDEX api_token_app ON api_token (app_id) WHERE app_id IS NOT NULL;
CREATE INDEX api_token_expiry ON api_token (expires_at) WHERE expires_at IS NOT NULL;
