"""This host's apt sources -> the mirror lines mmdebstrap builds a suite from, and the archive dists whose
Release dates a stack records (paas.archive). Parsing is pure; reading /etc/apt and fetching the dates are one
small function each."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .table import DEFAULT_SUITE, SUITES, Progress, quiet


@dataclass(frozen=True)
class AptSource:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None


def parse_one_line_sources(text: str) -> list[AptSource]:
    """`deb [signed-by=…] URI SUITE COMPONENT…` lines (sources.list format)."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        options: dict[str, str] = {}
        kind, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest.startswith("["):
            inside, _, rest = rest[1:].partition("]")
            for item in inside.split():
                key, _, value = item.partition("=")
                options[key.lower()] = value
        words = rest.split()
        if len(words) < 2:
            continue
        out.append(AptSource((kind,), (words[0],), (words[1],), tuple(words[2:]), options.get("signed-by")))
    return out


def parse_deb822_sources(text: str) -> list[AptSource]:
    """`.sources` files: stanzas of `Key: value` fields (continuation lines ignored)."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip() or line[0].isspace():
                continue
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        if not fields.get("uris") or fields.get("enabled", "yes").lower() == "no":
            continue
        signed_by = fields.get("signed-by") or None
        out.append(AptSource(tuple(fields.get("types", "deb").split()), tuple(fields["uris"].split()),
                             tuple(fields.get("suites", "").split()), tuple(fields.get("components", "").split()),
                             signed_by if signed_by and signed_by.startswith("/") else None))
    return out


def _dists_of(suite: str) -> tuple[str, str, str]:
    return (suite, f"{suite}-updates", f"{suite}-security")


def mirror_lines(sources: Iterable[AptSource], suite: str = DEFAULT_SUITE) -> list[str]:
    """One-line mirror entries for SUITE, SUITE-updates and SUITE-security, component main.

    When the sources name none of those, the entries of the Debian release they do name (this host's, e.g.
    bookworm) are used with the suite swapped in: the same mirrors carry every release (trixie-security
    beside bookworm-security)."""
    sources = list(sources)
    entries = [(source, uri, entry) for source in sources if "deb" in source.types and "main" in source.components
               for uri in source.uris for entry in source.suites]
    rename: dict[str, str] = {dist: dist for dist in _dists_of(suite)}
    if not any(entry in rename for _, _, entry in entries):
        host = next((entry for _, _, entry in entries if entry in SUITES), None)
        if host is not None:
            rename = dict(zip(_dists_of(host), _dists_of(suite), strict=True))
    lines: list[str] = []
    for source, uri, entry in entries:
        if entry in rename:
            options = f"[signed-by={source.signed_by}] " if source.signed_by else ""
            line = f"deb {options}{uri.rstrip('/')} {rename[entry]} main"
            if line not in lines:
                lines.append(line)
    # the base suite first: mmdebstrap reads the Essential set from it
    return sorted(lines, key=lambda line: line.split()[-2] != suite)


def host_mirrors(etc_apt: Path = Path("/etc/apt"), suite: str = DEFAULT_SUITE) -> list[str]:
    """The mirror lines this host's apt uses for SUITE ([] when it has none: mmdebstrap's default)."""
    sources: list[AptSource] = []
    files = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list")),
             *sorted((etc_apt / "sources.list.d").glob("*.sources"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        sources += parse_deb822_sources(text) if path.suffix == ".sources" else parse_one_line_sources(text)
    return mirror_lines(sources, suite)


def archive_dists(mirrors: Iterable[str], suite: str) -> list:
    """The dists whose Release dates a stack of suite records (paas.archive.Dist): those of its mirror lines,
    or Debian's own mirrors when there are none (mmdebstrap's default, deb.debian.org)."""
    from .. import archive

    mirrors = list(mirrors)
    if mirrors:
        return archive.dists(mirrors)
    return [archive.Dist("http://deb.debian.org/debian", suite),
            archive.Dist("http://deb.debian.org/debian", f"{suite}-updates"),
            archive.Dist("http://deb.debian.org/debian-security", f"{suite}-security")]



def fetch_archive(suite: str, mirrors: list[str]) -> dict[str, str]:
    """The Release dates of suite's dists as the archive has them now (UserError when they cannot be read)."""
    from .. import archive

    return archive.fetch_dates(archive_dists(mirrors, suite))


def archive_now(mirrors: list[str], suite: str, progress: Progress = quiet) -> dict[str, str] | None:
    """fetch_archive, or None (said in progress) when the dates cannot be read: the stack is then built without
    the record, and `stacks:update` rebuilds it."""
    try:
        return fetch_archive(suite, mirrors)
    except UserError as exc:
        progress(f"W: {exc.one_line()}; the stack will not know which archive state it was built from")
        return None
