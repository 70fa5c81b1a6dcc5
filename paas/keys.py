"""SSH keys allowed to push and run commands: parse authorized_keys lines, store them, find them at login.

Every key belongs to a user (paas.access); what it may do is that user's role and access levels. Fingerprints are
spelled as `ssh-keygen -l` prints them (SHA256:<unpadded base64>), so users can compare them by eye.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from .errors import NotFound, UserError
from .state import transaction

NAME_RE = re.compile(r"[A-Za-z0-9._@-]{1,64}")
MIN_RSA_BITS = 2048

KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
# types OpenSSH knows that we refuse with a reason instead of "not a key"
REFUSED_TYPES = {
    "ssh-dss": "DSA keys are not supported (OpenSSH disabled them too)",
    "sk-ssh-ed25519@openssh.com": "security-key (sk-*) keys are not supported by paasd",
    "sk-ecdsa-sha2-nistp256@openssh.com": "security-key (sk-*) keys are not supported by paasd",
}
KEY_HINT = "pass the public key file (e.g. ~/.ssh/id_ed25519.pub); make one with `ssh-keygen -t ed25519`"


@dataclass(frozen=True)
class ParsedKey:
    type: str
    blob_b64: str
    comment: str
    fingerprint: str

    @property
    def line(self) -> str:
        """The key as one authorized_keys line (type, base64, comment)."""
        return " ".join(part for part in (self.type, self.blob_b64, self.comment) if part)


def fingerprint(blob: bytes) -> str:
    """SHA256:<unpadded base64 of sha256(blob)>, exactly as `ssh-keygen -lf` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def check_key_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UserError(f"invalid SSH key name {name!r}",
                        "use 1-64 letters, digits and . _ @ - (e.g. alice@laptop)")
    return name


def parse_public_key(text: str) -> ParsedKey:
    """Parse one authorized_keys-style line `TYPE BASE64 [COMMENT]` (blank and # lines ignored)."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise UserError("no SSH public key given (the input is empty)", KEY_HINT)
    if lines[0].startswith("-----BEGIN") or "PRIVATE KEY" in lines[0]:
        raise UserError("this is a private key, not a public key", "pass the .pub file next to it; keep the "
                        "private key to yourself")
    if "SSH2 PUBLIC KEY" in lines[0]:
        raise UserError("this public key is in RFC 4716 format", "convert it with `ssh-keygen -i -f FILE`")
    if len(lines) > 1:
        raise UserError(f"the input holds {len(lines)} lines, expected one public key", "add keys one by one")
    fields = lines[0].split(None, 2)
    key_type = fields[0]
    if key_type not in KEY_TYPES:
        if key_type in REFUSED_TYPES:
            raise UserError(REFUSED_TYPES[key_type], "register an ed25519, ecdsa or RSA (>= 2048 bits) key")
        if key_type.endswith("-cert-v01@openssh.com"):
            raise UserError("SSH certificates are not supported", "register the plain public key")
        if any(t in lines[0].split() for t in (*KEY_TYPES, *REFUSED_TYPES)):
            raise UserError("options before the key type (command=..., from=...) are not allowed",
                            "give the plain public key line as in the .pub file")
        raise UserError("not an SSH public key (its first word is no key type we know)", KEY_HINT)
    if len(fields) < 2:
        raise UserError(f"{key_type} key has no base64 data", KEY_HINT)
    blob_b64 = fields[1]
    try:
        blob = binascii.a2b_base64(blob_b64, strict_mode=True)
    except binascii.Error as exc:
        raise UserError(f"{key_type} key data is not valid base64 ({exc})", "the line was cut or mangled; "
                        "copy the .pub file again") from exc
    _check_blob(key_type, blob)
    return ParsedKey(key_type, blob_b64, fields[2].strip() if len(fields) > 2 else "", fingerprint(blob))


def _check_blob(key_type: str, blob: bytes) -> None:
    """The blob must name the same type as the line and be exactly one well-formed key of that type, as
    OpenSSH writes it: paramiko loads it, and writing it back must give the same bytes (nothing cut or added)."""
    import paramiko  # here: importing it takes ~0.2 s, and only adding a key needs it (not listing or login)

    mangled = UserError(f"{key_type} key data is not a valid {key_type} key", "the line was cut or mangled; "
                        "copy the .pub file again")
    embedded = paramiko.Message(blob).get_string().decode(errors="replace")  # the blob's first field: its type
    if embedded != key_type:
        raise UserError(f"key type mismatch: the line says {key_type} but the key data holds "
                        f"{embedded if embedded in (*KEY_TYPES, *REFUSED_TYPES) else 'another type'}",
                        "the line was edited; copy the .pub file again")
    try:
        key = paramiko.PKey.from_type_string(key_type, blob)
    except (paramiko.SSHException, ValueError) as exc:
        raise mangled from exc
    if key.asbytes() != blob:
        raise mangled
    if key_type == "ssh-rsa" and key.get_bits() < MIN_RSA_BITS:
        raise UserError(f"RSA key of {key.get_bits()} bits is too short (at least {MIN_RSA_BITS})",
                        "make a new key with `ssh-keygen -t ed25519`")


def _row(row: sqlite3.Row) -> dict[str, Any]:
    fields = row["public_key"].split(None, 2)
    return {"name": row["name"], "user": row["user"], "fingerprint": row["fingerprint"], "type": fields[0],
            "comment": fields[2] if len(fields) > 2 else "", "created_at": row["created_at"]}


def add_key(conn: sqlite3.Connection, name: str, text: str, user: str) -> dict[str, Any]:
    """Register a public key of user under a name; the same key may not be registered twice."""
    check_key_name(name)
    key = parse_public_key(text)
    with transaction(conn):
        if conn.execute("SELECT 1 FROM users WHERE name = ?", (user,)).fetchone() is None:
            raise NotFound(f"no user named {user}", f"add it first: `paas users:add {user}`")
        if conn.execute("SELECT 1 FROM ssh_keys WHERE name = ?", (name,)).fetchone():
            raise UserError(f"an SSH key named {name} already exists",
                            f"pick another name, or `paas ssh-keys:remove {name}` first")
        other = conn.execute("SELECT name FROM ssh_keys WHERE fingerprint = ?", (key.fingerprint,)).fetchone()
        if other:
            raise UserError(f"this key ({key.fingerprint}) is already registered as {other['name']}",
                            "one key, one name; remove the other entry first to rename it")
        conn.execute("INSERT INTO ssh_keys (name, fingerprint, public_key, user) VALUES (?, ?, ?, ?)",
                     (name, key.fingerprint, key.line, user))
        row = conn.execute("SELECT * FROM ssh_keys WHERE name = ?", (name,)).fetchone()
    return _row(row)


def list_keys(conn: sqlite3.Connection, user: str | None = None) -> list[dict[str, Any]]:
    """Every key, or only user's."""
    if user is None:
        return [_row(row) for row in conn.execute("SELECT * FROM ssh_keys ORDER BY name")]
    return [_row(row) for row in conn.execute("SELECT * FROM ssh_keys WHERE user = ? ORDER BY name", (user,))]


def owner_of(conn: sqlite3.Connection, name: str) -> str | None:
    """The user a key belongs to, or None (no such key)."""
    row = conn.execute("SELECT user FROM ssh_keys WHERE name = ?", (name,)).fetchone()
    return None if row is None else row["user"]


def remove_key(conn: sqlite3.Connection, name: str, user: str | None = None) -> None:
    """Remove a key; with user, only one of that user's keys (another's reads as missing)."""
    with transaction(conn):
        owner = owner_of(conn, name)
        if owner is None or (user is not None and owner != user):
            raise NotFound(f"no SSH key named {name}", "see `paas ssh-keys:list`")
        conn.execute("DELETE FROM ssh_keys WHERE name = ?", (name,))


def key_name_for(conn: sqlite3.Connection, key_type: str, blob: bytes) -> str | None:
    """The name a key offered at login is registered under, or None."""
    row = conn.execute("SELECT name, public_key FROM ssh_keys WHERE fingerprint = ?",
                       (fingerprint(blob),)).fetchone()
    if row is None or row["public_key"].split(None, 1)[0] != key_type:
        return None
    return row["name"]
