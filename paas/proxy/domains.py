"""Domain names an app answers on, checked and normalised (pure: no I/O). The first piece of custom domains
(issue 14): what `domains:add` will accept, in the form nginx's server_name and certificates compare.

A name is stored as its ASCII (IDNA 2008, UTS #46 mapped) lowercase form without a trailing dot; a wildcard is
`*.` followed by a name of at least two labels and matches exactly one label, as in nginx and TLS certificates.
"""

from __future__ import annotations

import re

import idna

from ..errors import UserError
from .plan import is_ip

MAX_NAME = 253
LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
HINT = "give a host name such as www.example.com or *.example.com (no scheme, port or path)"


def normalize_domain(text: str) -> str:
    """The ASCII lowercase form of a domain or wildcard, or a UserError naming what is wrong."""
    raw = (text or "").strip()
    if not raw:
        raise UserError("empty domain name", HINT)
    for bad, what in (("://", "a URL"), ("/", "a path"), ("@", "a user part"), (" ", "a space")):
        if bad in raw:
            raise UserError(f"{raw!r} is not a domain name: it holds {what}", HINT)
    if is_ip(raw.strip("[]")):
        raise UserError(f"{raw!r} is an IP address, not a domain name", HINT)
    if ":" in raw:
        raise UserError(f"{raw!r} is not a domain name: it names a port", "nginx listens on proxy.http_port; give "
                        "the name alone")
    wildcard = raw.startswith("*.")
    name = raw[2:] if wildcard else raw
    if "*" in name:
        raise UserError(f"{raw!r}: a wildcard may only be the whole first label (*.example.com)", HINT)
    name = name.rstrip(".")
    if len(raw) > MAX_NAME:
        raise UserError(f"{_shown(raw)} is longer than {MAX_NAME} characters", HINT)
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise UserError(f"{_shown(raw)} is an invalid domain name ({exc})", HINT) from None
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise UserError(f"{raw!r} has one label", "custom domains (and a wildcard's rest) need a dot, e.g. "
                        "example.com; APP.<domain> is routed already")
    bad = next((label for label in labels if not LABEL_RE.fullmatch(label)), None)
    if bad is not None:
        raise UserError(f"{raw!r} has an invalid label {bad!r}", "labels are 1-63 letters, digits and '-', not "
                        "starting or ending with '-'")
    if labels[-1].isdigit():
        raise UserError(f"{raw!r} ends in a numeric label", HINT)
    full = ("*." if wildcard else "") + ascii_name
    if len(full) > MAX_NAME:
        raise UserError(f"{_shown(raw)} is longer than {MAX_NAME} characters", HINT)
    return full


def matches(pattern: str, name: str) -> bool:
    """Does pattern (a normalised name or wildcard) cover the normalised name? `*.a.b` covers `x.a.b` only."""
    if not pattern.startswith("*."):
        return pattern == name
    head, _, rest = name.partition(".")
    return bool(head) and rest == pattern[2:]


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")
