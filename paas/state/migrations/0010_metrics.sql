-- Metrics paasd samples (paas.metrics): per-minute aggregates, kept 24 h. Minutes are counted since the Unix epoch.

-- One container of an app in one minute: CPU time over the wall time it was measured across (CPU % = ratio),
-- memory in use summed over the samples (mean = mem_sum / samples) and its maximum, OOM kills seen. The last
-- sample's CPU % and time answer "now" for the process list.
CREATE TABLE metrics_process (
    app           TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    minute        INTEGER NOT NULL,
    container_id  TEXT NOT NULL,
    process       TEXT NOT NULL,                    -- web.1
    cpu_ns        INTEGER NOT NULL DEFAULT 0,
    wall_ns       INTEGER NOT NULL DEFAULT 0,
    mem_sum       INTEGER NOT NULL DEFAULT 0,
    mem_max       INTEGER NOT NULL DEFAULT 0,
    samples       INTEGER NOT NULL DEFAULT 0,
    mem_limit     INTEGER,                          -- NULL: no limit
    oom_kills     INTEGER NOT NULL DEFAULT 0,
    cpu_last      REAL,                             -- % of one core over the last sampling interval
    sampled_at    REAL NOT NULL,                    -- Unix time of the last sample
    PRIMARY KEY (app, minute, container_id)
) WITHOUT ROWID;

-- Requests to one app through nginx in one minute (from its access log): count, 5xx, response times as a
-- histogram (paas.metrics.aggregate: `bucket:count` pairs).
CREATE TABLE metrics_http (
    app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    minute      INTEGER NOT NULL,
    requests    INTEGER NOT NULL DEFAULT 0,
    errors_5xx  INTEGER NOT NULL DEFAULT 0,
    histogram   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (app, minute)
) WITHOUT ROWID;

-- How far each app's access log has been read (stored with the figures read from it, in one transaction).
CREATE TABLE metrics_log_offsets (
    app     TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
    inode   INTEGER NOT NULL,
    offset  INTEGER NOT NULL
);
