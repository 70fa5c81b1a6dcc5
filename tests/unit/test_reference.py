"""paas.image.reference: Docker's reference grammar, registry detection, defaults and errors."""

from __future__ import annotations

import pytest

from paas.errors import UserError
from paas.image.reference import Reference, api_host, local_name, parse

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("text, registry, repository", [
    ("localhost:5000/x", "localhost:5000", "x"),
    ("localhost/x", "localhost", "x"),
    ("127.0.0.1:5000/team/app", "127.0.0.1:5000", "team/app"),
    ("[::1]:5000/x", "[::1]:5000", "x"),
    ("example.com/a/b", "example.com", "a/b"),
    ("registry.example.com:443/a", "registry.example.com:443", "a"),
    ("a/b", None, "a/b"),
    ("a/b/c", None, "a/b/c"),
    ("busybox", None, "busybox"),
    ("a_b/c__d/e-f.g", None, "a_b/c__d/e-f.g"),
])
def test_registry_detection(text, registry, repository):
    """The first component is a registry only when it has a '.', a ':' or is 'localhost'."""
    ref = parse(text)
    assert (ref.registry, ref.repository) == (registry, repository)


def test_missing_tag_defaults_to_latest():
    """No tag and no digest: the tag is 'latest' (or the given default, or none at all)."""
    assert parse("a/b").tag == "latest"
    assert parse("localhost:5000/x").tag == "latest"
    assert parse("a", default_tag="stable").tag == "stable"
    bare = parse("a", default_tag=None)
    assert bare.tag is None and bare.reference == "latest"


def test_explicit_tag_and_port_are_not_confused():
    """The colon of a registry port is not a tag separator; the last ':' after the last '/' is."""
    ref = parse("localhost:5000/x:1.2-rc_3")
    assert (ref.registry, ref.repository, ref.tag) == ("localhost:5000", "x", "1.2-rc_3")
    assert str(ref) == "localhost:5000/x:1.2-rc_3"
    assert ref.reference == "1.2-rc_3"


def test_digest_reference():
    """A digest reference has no default tag; the digest is what a registry URL uses."""
    ref = parse(f"localhost:5000/a/b@{DIGEST}")
    assert ref == Reference("localhost:5000", "a/b", None, DIGEST)
    assert ref.reference == DIGEST
    assert str(ref) == f"localhost:5000/a/b@{DIGEST}"
    assert ref.name == "localhost:5000/a/b"


def test_tag_and_digest_together():
    """name:tag@digest keeps both; the digest is what gets fetched."""
    ref = parse(f"a:1@{DIGEST}")
    assert (ref.tag, ref.digest, ref.reference) == ("1", DIGEST, DIGEST)
    assert str(ref) == f"a:1@{DIGEST}"


def test_docker_hub_names_are_normalised():
    """docker.io aliases become docker.io, single names go under library/, API host differs."""
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        ref = parse(f"{host}/busybox:1")
        assert (ref.registry, ref.repository, ref.tag) == ("docker.io", "library/busybox", "1")
    assert parse("docker.io/me/app").repository == "me/app"
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("localhost:5000") == "localhost:5000"


def test_with_tag_drops_the_digest():
    ref = parse(f"localhost:5000/x@{DIGEST}").with_tag("v2")
    assert ref == Reference("localhost:5000", "x", "v2", None)


@pytest.mark.parametrize("text, local", [
    ("busybox", "busybox:latest"),
    ("a/b:1", "a/b:1"),
    ("localhost:5000/x", "localhost:5000/x:latest"),
    (f"localhost:5000/x@{DIGEST}", f"localhost:5000/x@{DIGEST}"),
    (f"x:1@{DIGEST}", "x:1"),
])
def test_local_name(text, local):
    """Stored under name:tag; digest-only references keep the digest."""
    assert local_name(parse(text)) == local


def test_local_name_is_a_fixed_point():
    """Parsing a local name gives the same local name (tags round-trip through the store)."""
    for text in ("busybox", "localhost:5000/a/b:v1", f"x@{DIGEST}"):
        once = local_name(parse(text))
        assert local_name(parse(once)) == once


@pytest.mark.parametrize("text, problem", [
    ("", "invalid image reference"),
    (" busybox", "invalid image reference"),
    ("busybox ", "invalid image reference"),
    ("busy box", "invalid repository name"),
    ("busybox:1 2", "invalid tag"),
    ("Busybox", "invalid repository name"),
    ("UPPER/x", "invalid repository name"),
    ("example.com/A/b", "invalid repository name"),
    ("a//b", "invalid repository name"),
    ("a/", "invalid repository name"),
    ("-a", "invalid repository name"),
    ("a--", "invalid repository name"),
    ("a" * 256, "invalid repository name"),
    ("a:", "invalid tag"),
    ("a:-x", "invalid tag"),
    ("a:.x", "invalid tag"),
    ("a:x!", "invalid tag"),
    ("a:" + "t" * 129, "invalid tag"),
    ("a@sha256:abc", "invalid digest"),
    ("a@sha256:" + "A" * 64, "invalid digest"),
    ("a@md5:" + "a" * 32, "invalid digest"),
    ("a@", "invalid digest"),
    ("a@" + DIGEST + "x", "invalid digest"),
    (":5000/x", "invalid registry host"),
    ("exa_mple.com/x", "invalid registry host"),
])
def test_invalid_references_raise_user_error(text, problem):
    """Each malformed reference is a UserError naming the broken part and quoting the input."""
    with pytest.raises(UserError) as info:
        parse(text)
    assert problem in info.value.message
    assert repr(text) in info.value.message
    assert info.value.hint and "lowercase" in info.value.hint


def test_longest_valid_tag_is_accepted():
    assert parse("a:" + "t" * 128).tag == "t" * 128
