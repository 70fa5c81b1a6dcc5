-- Issue 18: where an app's processes run (scheduler:set): `local` (this host's containers) or `swarm` (services on
-- the operator's Docker Swarm cluster, swarm.* in paas.yml). Each release records where it ran, so the next deploy
-- knows what to retire when the app moved, and the image reference the cluster ran it by.
ALTER TABLE apps ADD COLUMN scheduler TEXT NOT NULL DEFAULT 'local';
ALTER TABLE releases ADD COLUMN scheduler TEXT NOT NULL DEFAULT 'local';
ALTER TABLE releases ADD COLUMN cluster_image TEXT;
