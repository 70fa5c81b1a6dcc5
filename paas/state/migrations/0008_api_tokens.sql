-- Per-user API tokens: the secret is shown once and only its SHA-256 is kept; scopes cap what the token may do
-- beyond what its user may.
CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,                -- public part of the token (paas_<id>_<secret>)
    user          TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    scopes        TEXT NOT NULL,                   -- space-separated: read read:sensitive deploy manage admin
    secret_sha256 TEXT NOT NULL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    expires_at    TEXT,                            -- NULL: never
    last_used_at  TEXT,
    UNIQUE (user, name)
);
CREATE INDEX api_tokens_by_user ON api_tokens(user);
