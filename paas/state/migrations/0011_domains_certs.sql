-- Custom domains, global domains, how the proxy serves each app, and its certificate (issue 14).

-- domains:add: a name (or a wildcard `*.example.com`) belongs to one app. Stored normalised
-- (paas.proxy.domains.normalize_domain: ASCII lowercase, no trailing dot).
CREATE TABLE app_domains (
    name        TEXT PRIMARY KEY,
    app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX app_domains_by_app ON app_domains (app);

-- domains:add-global: every app also answers on APP.<name>, besides APP.<domain of the config file>.
CREATE TABLE global_domains (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- Per app: the port of its stable upstream address (paas.proxy.steering), HSTS, automatic certificates.
CREATE TABLE app_proxy (
    app           TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
    route_port    INTEGER UNIQUE,
    hsts_max_age  INTEGER NOT NULL DEFAULT 0 CHECK (hsts_max_age >= 0),   -- 0: no Strict-Transport-Security
    acme          INTEGER CHECK (acme IN (0, 1))                          -- NULL: certs.auto of the config
);

-- The certificate nginx serves for an app (files under <root>/nginx/certs/); what certs:report shows.
CREATE TABLE app_certificates (
    app           TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
    source        TEXT NOT NULL CHECK (source IN ('manual', 'acme')),
    names         TEXT NOT NULL,            -- JSON list of the certificate's DNS names
    issuer        TEXT NOT NULL,
    not_before    TEXT NOT NULL,
    not_after     TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,            -- sha256 of the leaf, hex
    installed_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- ACME attempts per app: the last error and when the next attempt may be made (rate limits back off).
CREATE TABLE acme_attempts (
    app              TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
    last_attempt_at  TEXT,
    last_error       TEXT,
    failures         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT
);
