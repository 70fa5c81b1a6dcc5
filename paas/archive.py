"""The Debian archive's Release files: when the dists a stack is built from last changed.

A stack's packages come from its suite's dists (`trixie`, `trixie-updates`, `trixie-security`), as named by the
mirror lines mmdebstrap gets. Each dist publishes a signed `InRelease` whose `Date:` moves whenever its
packages change (a security update, a point release). A stack records those dates when it is built (label
io.paas.stack.archive); `paas stacks:update` fetches them again and rebuilds the stacks whose dists moved on.

The signature is checked with gpgv against the keyring the mirror line names (signed-by), else Debian's
archive keyring, so a forged Date cannot hold back a security rebuild. Parsing and comparing are pure; only
`fetch_dates` touches the network (requests) and runs gpgv (through paas.proc).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from . import proc
from .errors import CommandFailed, UserError

DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
TIMEOUT_S = 20
MIRROR_HINT = "check this host's network and its apt sources (/etc/apt), then run it again"


@dataclass(frozen=True)
class Dist:
    """One dist of a mirror line: `deb [signed-by=K] http://deb.debian.org/debian trixie-updates main`."""

    uri: str
    name: str
    keyring: str | None = None

    @property
    def url(self) -> str:
        return f"{self.uri.rstrip('/')}/dists/{self.name}/InRelease"


def dists(mirror_lines: Iterable[str]) -> list[Dist]:
    """The dists of one-line mirror entries, in their order (duplicates once)."""
    out: list[Dist] = []
    for line in mirror_lines:
        words = line.split()
        keyring = None
        if len(words) > 1 and words[1].startswith("["):
            options = []
            while words and not words[1].endswith("]"):
                options.append(words.pop(1))
            options.append(words.pop(1))
            for option in " ".join(options).strip("[]").split():
                key, _, value = option.partition("=")
                if key == "signed-by" and value.startswith("/"):
                    keyring = value
        if len(words) >= 3 and words[0] == "deb":
            dist = Dist(words[1], words[2], keyring)
            if dist not in out:
                out.append(dist)
    return out


def release_date(text: str) -> datetime:
    """The `Date:` of a Release file's text (the part before the first file list), as an aware datetime."""
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        if key == "Date":
            try:
                when = parsedate_to_datetime(value.strip())
            except (TypeError, ValueError):
                break
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    raise ValueError("no Date field")


def newer(current: Mapping[str, str], built_from: Mapping[str, str] | None) -> list[str]:
    """The dists (names) whose Release date is later than what a stack was built from. A stack that does not
    know what it was built from (older images) counts as behind on every dist."""
    behind = []
    for name, date in sorted(current.items()):
        seen = (built_from or {}).get(name)
        if seen is None or datetime.fromisoformat(date) > datetime.fromisoformat(seen):
            behind.append(name)
    return behind


Getter = Callable[[str], "tuple[int, bytes]"]  # url -> (HTTP status, body)


def http_get(url: str) -> tuple[int, bytes]:
    import requests

    try:
        response = requests.get(url, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        errno = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))  # the cause, under urllib3's wrapping
        reason = errno.group(0).strip() if errno else type(exc).__name__
        raise UserError(f"cannot reach the Debian mirror for {url}: {reason}", MIRROR_HINT) from None
    return response.status_code, response.content


def verified_text(data: bytes, keyring: str | None, url: str) -> str:
    """The signed text of an InRelease file, checked with gpgv; a bad signature is an error."""
    try:
        result = proc.run(["gpgv", "--keyring", keyring or DEBIAN_KEYRING, "--output", "-"], input=data,
                          desc=f"gpgv {url}")
    except CommandFailed as exc:
        said = (exc.output_tail.strip().splitlines() or ["gpgv failed"])[-1]
        raise UserError(f"{url}: the signature does not verify ({said})",
                        "the mirror, or something between, changed the file; check the apt sources and keyrings"
                        ) from None
    return result.stdout.decode("utf-8", "replace")


def fetch_dates(dist_list: Iterable[Dist], *, get: Getter = http_get) -> dict[str, str]:
    """Dist name -> the ISO date of its InRelease (the newest when several mirrors serve the same dist)."""
    dates: dict[str, str] = {}
    for dist in dist_list:
        status, body = get(dist.url)
        if status != 200:
            raise UserError(f"cannot fetch {dist.url}: HTTP {status}",
                            f"{MIRROR_HINT}; the mirror may not carry {dist.name}")
        try:
            when = release_date(verified_text(body, dist.keyring, dist.url)).astimezone(UTC).isoformat()
        except ValueError:
            raise UserError(f"{dist.url} has no readable Date field", MIRROR_HINT) from None
        if dist.name not in dates or when > dates[dist.name]:
            dates[dist.name] = when
    return dates
