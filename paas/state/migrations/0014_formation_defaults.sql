-- Issue 16: a type ps:scale never named runs its default (web 1; others 0, as in Dokku) instead of one container.
-- Deployed apps keep what they ran: every long-running type of the active release that has no count gets the 1
-- it had. `formation.app_json` (app_settings) marks a formation set by the active release's app.json.
INSERT OR IGNORE INTO app_formation (app, type, count)
SELECT r.app, j.key, 1 FROM releases r, json_each(r.processes) j
WHERE r.status = 'active' AND j.key != 'release';
