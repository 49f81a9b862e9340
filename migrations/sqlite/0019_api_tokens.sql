-- API tokens with abilities, an optional application, an expiry and a rate limit
-- (src/api/auth.rs). Tokens made before this migration become named admin tokens with no
-- rate limit (rate_limit 0), as they had none.
-- kind: 0 named, 1 app portal. abilities: names separated by spaces. hint: the token's
-- first characters. window_start/window_count: the rate limit's current window (unix
-- seconds) and the requests counted in it, by every node.
CREATE TABLE api_token_v2 (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    kind          INTEGER NOT NULL,
    abilities     TEXT NOT NULL,
    app_id        TEXT REFERENCES application (id) ON DELETE CASCADE,
    session_id    TEXT,
    rate_limit    INTEGER,
    hint          TEXT NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    window_start  INTEGER NOT NULL DEFAULT 0,
    window_count  INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
INSERT INTO api_token_v2 (id, token_hash, name, kind, abilities, rate_limit, hint, created_at)
    SELECT 'tok_0' || upper(substr(token_hash, 1, 25)), token_hash, 'admin', 0, 'admin', 0, 'hk_',
           created_at
    FROM api_token;
DROP TABLE api_token;
ALTER TABLE api_token_v2 RENAME TO api_token;
CREATE INDEX api_token_app ON api_token (app_id) WHERE app_id IS NOT NULL;
CREATE INDEX api_token_expiry ON api_token (expires_at) WHERE expires_at IS NOT NULL;
