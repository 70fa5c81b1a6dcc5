-- Users own SSH keys and hold per-app access levels; an event log of who did what.
-- Keys registered before users existed become keys of an `admin` user (they could do everything).

CREATE TABLE users (
    name        TEXT PRIMARY KEY,                  -- paas.access.store.check_user_name
    role        TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

INSERT INTO users (name, role) SELECT 'admin', 'admin' WHERE EXISTS (SELECT 1 FROM ssh_keys);

CREATE TABLE ssh_keys_owned (
    name         TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL UNIQUE,
    public_key   TEXT NOT NULL,
    user         TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
INSERT INTO ssh_keys_owned (name, fingerprint, public_key, user, created_at)
    SELECT name, fingerprint, public_key, 'admin', created_at FROM ssh_keys;
DROP TABLE ssh_keys;
ALTER TABLE ssh_keys_owned RENAME TO ssh_keys;
CREATE INDEX ssh_keys_by_user ON ssh_keys(user);

-- Heroku's levels: view < deploy < manage. Admins need no row.
CREATE TABLE app_access (
    app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    level       TEXT NOT NULL CHECK (level IN ('view', 'deploy', 'manage')),
    granted_by  TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (app, user)
);
CREATE INDEX app_access_by_user ON app_access(user);

-- Who did what to which app. No foreign keys: events outlive the apps and users they name.
CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    actor   TEXT NOT NULL,                         -- a user name, local:<login> or key:<fingerprint>
    app     TEXT,
    action  TEXT NOT NULL,                         -- push, config.set, scale, rollback, access.add, denied, ...
    detail  TEXT NOT NULL DEFAULT '{}'             -- JSON, never secret values
);
CREATE INDEX events_by_app ON events(app, id);
