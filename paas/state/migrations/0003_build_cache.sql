-- The builder's layer cache: one row per executed filesystem step, keyed by what determines its result
-- (parent chain + instruction after expansion + content hash of COPY sources). Shared by all builds.

CREATE TABLE build_cache (
    key           TEXT PRIMARY KEY,                 -- sha256:… of the step's inputs
    layer_digest  TEXT,                             -- NULL: the step changed nothing (empty layer)
    media_type    TEXT,
    size          INTEGER,
    diff_id       TEXT,
    created_by    TEXT NOT NULL,                    -- the instruction, for `build:cache` listings
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    last_used_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE INDEX build_cache_last_used ON build_cache (last_used_at);
