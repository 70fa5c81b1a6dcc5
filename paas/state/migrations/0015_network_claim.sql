-- Issue 17: the bridge and subnet this data root owns (one row). The owner string is also the bridge's link
-- alias (IFLA_IFALIAS) and a host-wide record under /run/paas/networks, so another root on the same host never
-- uses, changes or deletes them.
CREATE TABLE IF NOT EXISTS network_claim (
    bridge      TEXT PRIMARY KEY,
    subnet      TEXT NOT NULL,
    owner       TEXT NOT NULL,
    claimed_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
