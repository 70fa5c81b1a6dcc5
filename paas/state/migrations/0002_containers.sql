-- Containers (runtime) and IP address leases (network).

CREATE TABLE containers (
    id              TEXT PRIMARY KEY,              -- 32 hex chars
    name            TEXT NOT NULL UNIQUE,
    image           TEXT NOT NULL,                 -- the name the user gave
    image_digest    TEXT NOT NULL,                 -- manifest digest it was created from
    options         TEXT NOT NULL,                 -- JSON: run options as given (env, ports, volumes, limits…)
    runtime         TEXT NOT NULL,                 -- crun or runc
    status          TEXT NOT NULL,                 -- created, running, exited, stopped
    restart_policy  TEXT NOT NULL DEFAULT 'no',
    restart_count   INTEGER NOT NULL DEFAULT 0,
    exit_code       INTEGER,
    pid             INTEGER,
    supervisor_pid  INTEGER,
    started_at      TEXT,
    finished_at     TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- One address per holder (container id) per network; freed on rm, reclaimed after a crash.
CREATE TABLE ip_leases (
    network     TEXT NOT NULL,
    address     TEXT NOT NULL,
    holder      TEXT NOT NULL,
    leased_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (network, address),
    UNIQUE (network, holder)
);
