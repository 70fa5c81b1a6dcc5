-- Issue 15: per-app settings (apps:lock, checks:disable, nginx:set) and the names apps were renamed away from.

-- One row per setting: `locked` (JSON {by, at}), `checks.disabled` (JSON list of process types, ["*"]: all),
-- `nginx.client-max-body-size`, `nginx.proxy-read-timeout` (paas.apps). apps:rename moves them with the app.
CREATE TABLE app_settings (
    app    TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (app, key)
);

-- apps:rename OLD NEW leaves OLD here: a push to OLD creates nothing and names NEW to those who may see it.
-- Creating an app named OLD on purpose (apps:create, the API) frees the name. No foreign key: NEW may go.
CREATE TABLE app_renames (
    name        TEXT PRIMARY KEY,
    renamed_to  TEXT NOT NULL,
    renamed_by  TEXT,
    renamed_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX app_renames_by_target ON app_renames (renamed_to);
