-- Image store bookkeeping. Blobs themselves live on disk (content-addressed); this records
-- names and who holds which extracted layer snapshot.

CREATE TABLE image_tags (
    name            TEXT PRIMARY KEY,          -- normalised reference, e.g. busybox:latest
    manifest_digest TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    size            INTEGER NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX image_tags_digest ON image_tags (manifest_digest);

-- One extracted directory per layer diff_id, shared by every image and container using it.
CREATE TABLE snapshots (
    diff_id     TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- Reference counts: a holder is 'image:<manifest digest>' or 'container:<id>'.
CREATE TABLE snapshot_refs (
    diff_id TEXT NOT NULL REFERENCES snapshots (diff_id) ON DELETE CASCADE,
    holder  TEXT NOT NULL,
    PRIMARY KEY (diff_id, holder)
);
CREATE INDEX snapshot_refs_holder ON snapshot_refs (holder);

-- Where a blob is known to exist on a registry, so a push can ask for a cross-repository mount.
CREATE TABLE registry_blobs (
    registry    TEXT NOT NULL,
    repository  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    PRIMARY KEY (registry, digest, repository)
);
