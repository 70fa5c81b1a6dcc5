-- Persistent storage of apps (storage:mount, issue 15): directories bind-mounted into every process and one-off
-- of the app at its next start. Outside releases, so data survives redeploys and rollbacks.
-- kind 'named': source is a name made by storage:ensure-directory, the directory <root>/storage/<name>,
-- kind 'host': source is an absolute host path inside one of the operator's storage.allowed_roots.
CREATE TABLE app_storage (
    app             TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE ON UPDATE CASCADE,
    container_path  TEXT NOT NULL,          -- absolute, normalised (one mount per path and app)
    kind            TEXT NOT NULL CHECK (kind IN ('named', 'host')),
    source          TEXT NOT NULL,
    read_only       INTEGER NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1)),
    created_by      TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (app, container_path)
);
CREATE INDEX app_storage_by_source ON app_storage (kind, source);
