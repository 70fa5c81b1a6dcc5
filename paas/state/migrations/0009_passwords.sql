-- Dashboard passwords: one per user (set with `paas users:passwd`), kept as a salted scrypt hash
-- (scrypt$N$r$p$salt$hash, base64), never the password.
CREATE TABLE user_passwords (
    user       TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
    hash       TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
