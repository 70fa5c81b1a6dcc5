"""Image references: `[registry[:port]/]repository[:tag][@sha256:…]`, Docker's grammar."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
HOST_RE = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
DOCKER_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True)
class Reference:
    registry: str | None  # host[:port], None for purely local names
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """registry/repository without tag or digest."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    @property
    def reference(self) -> str:
        """What goes after /manifests/ in a registry URL."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.registry, self.repository, tag, None)


def _looks_like_host(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost" or part.startswith("[")


def parse(text: str, default_tag: str | None = "latest") -> Reference:
    """Parse and validate a reference; a missing tag (and digest) becomes default_tag."""
    original = text
    hint = "use [REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST], lowercase name"
    if not text or text != text.strip():
        raise UserError(f"invalid image reference {original!r}", hint)
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise UserError(f"invalid digest in image reference {original!r}", hint)
    registry = None
    first, sep, rest = text.partition("/")
    if sep and _looks_like_host(first):
        if not HOST_RE.match(first):
            raise UserError(f"invalid registry host in image reference {original!r}", hint)
        registry, text = first, rest
    tag = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1:]
        if not TAG_RE.match(tag):
            raise UserError(f"invalid tag in image reference {original!r}", hint)
    if not REPOSITORY_RE.match(text) or len(text) > 255:
        raise UserError(f"invalid repository name in image reference {original!r}", hint)
    if registry in DOCKER_HUB_NAMES:
        registry = "docker.io"
        if "/" not in text:
            text = "library/" + text  # Docker Hub's official images live under library/
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry, text, tag, digest)


def local_name(ref: Reference) -> str:
    """The name an image is stored under locally: name:tag (digest references keep the digest)."""
    if ref.tag:
        return f"{ref.name}:{ref.tag}"
    return f"{ref.name}@{ref.digest}"


def api_host(registry: str) -> str:
    """The host serving the registry API (Docker Hub's differs from its name)."""
    return DOCKER_HUB_API if registry == "docker.io" else registry
