-- Resource limits an app sets for itself (resource:limit): process_type '' holds the app's own limits (every
-- type), other rows one process type's. NULL: not set there (the app's own, else the operator's default).
CREATE TABLE app_resources (
    app           TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    process_type  TEXT NOT NULL DEFAULT '',
    memory        INTEGER CHECK (memory IS NULL OR memory > 0),
    cpus          REAL CHECK (cpus IS NULL OR cpus > 0),
    pids          INTEGER CHECK (pids IS NULL OR pids > 0),
    PRIMARY KEY (app, process_type)
);
