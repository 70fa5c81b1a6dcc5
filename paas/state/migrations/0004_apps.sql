-- Apps and what deploying them records; the SSH keys allowed to push and run commands.

CREATE TABLE apps (
    name           TEXT PRIMARY KEY,              -- a lowercase DNS label (paas.apps.check_app_name)
    deploy_branch  TEXT,                          -- NULL: main (master accepted too)
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- The app's environment (config:set); copied into each release when it is made.
CREATE TABLE app_config (
    app    TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (app, key)
);

-- A release = one image + the config and process types it runs with. Numbered per app (v1, v2, ...).
CREATE TABLE releases (
    app           TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    commit_sha    TEXT,
    image         TEXT,                            -- tag in the image store
    image_digest  TEXT,
    config        TEXT NOT NULL DEFAULT '{}',      -- JSON: environment at release time
    processes     TEXT NOT NULL DEFAULT '{}',      -- JSON: {type: command} (Procfile or detected)
    port          INTEGER,                         -- the port the web process listens on ($PORT)
    status        TEXT NOT NULL,                   -- building, starting, active, failed, superseded
    error         TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    finished_at   TEXT,
    PRIMARY KEY (app, version)
);

-- Which containers run which process of which release (containers.id; no foreign key: a container
-- row may go first when it is removed by hand).
CREATE TABLE app_processes (
    container_id  TEXT PRIMARY KEY,
    app           TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    type          TEXT NOT NULL,                   -- web, worker, ...
    idx           INTEGER NOT NULL                 -- 1..N within the type
);

-- One row per deploy attempt: who runs it (pid) and how far it got, so a restarted paasd can tell an
-- interrupted deploy from a running one.
CREATE TABLE deploys (
    id           INTEGER PRIMARY KEY,
    app          TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    version      INTEGER,
    commit_sha   TEXT,
    pid          INTEGER,
    phase        TEXT NOT NULL DEFAULT 'receive',  -- receive, build, start, health, switch, done
    status       TEXT NOT NULL DEFAULT 'running',  -- running, succeeded, failed, interrupted
    error        TEXT,
    log_path     TEXT,
    started_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at  TEXT
);
CREATE INDEX deploys_by_app ON deploys(app, id);

CREATE TABLE ssh_keys (
    name         TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL UNIQUE,             -- SHA256:... as `ssh-keygen -l` prints it
    public_key   TEXT NOT NULL,                    -- one authorized_keys line: type, base64, comment
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
