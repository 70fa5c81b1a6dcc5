"""Stacks built for real with mmdebstrap, run in containers, reused from the store and the machine cache.

The machine cache (PAAS_STACK_CACHE, default here /var/cache/paas-test/stacks) makes reruns fast;
from an empty cache the first run builds base (~45 s) and python (~55 s); static takes seconds.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from paas import stacks
from paas.config import init_root, paths_from_env
from paas.context import open_context
from paas.runtime import containers, spec
from tests.conftest import need_root, need_tool, run_paas

MACHINE_CACHE = "/var/cache/paas-test/stacks"


@pytest.fixture(autouse=True)
def prerequisites(monkeypatch):
    need_root()
    need_tool("mmdebstrap")
    monkeypatch.setenv(stacks.CACHE_ENV, os.environ.get(stacks.CACHE_ENV) or MACHINE_CACHE)


@pytest.fixture
def other_root(tmp_path):
    """A second, fresh data root on the same machine."""
    paths = paths_from_env(tmp_path / "other-root")
    init_root(paths)
    context = open_context(paths.root)
    yield context
    context.close()


def run_in(ctx, image: str, *cmd: str) -> tuple[int, str]:
    out = []
    info = containers.run(ctx, image, spec.RunOptions(cmd=cmd, network="none"), remove_after=True,
                          on_line=lambda line: out.append(line.text))
    return info["exit_code"], "\n".join(out)


def labels(image) -> dict:
    return image.config["config"]["Labels"]


def test_static_stack_from_an_empty_cache_then_from_the_cache(ctx, other_root, tmp_path, monkeypatch):
    monkeypatch.setenv(stacks.CACHE_ENV, str(tmp_path / "empty-cache"))
    lines: list[str] = []
    built = stacks.make_stack(ctx, "static", progress=lines.append)
    assert built.source == "built" and built.ref == "paas/stack-static:bookworm"
    assert any(line.startswith("success in") for line in lines), lines
    assert built.image.total_size < 5_000_000  # busybox-static alone
    assert labels(built.image)["io.paas.stack"] == "static"
    assert labels(built.image)["io.paas.stack.inputs"] == stacks.inputs_hash(stacks.STACKS["static"],
                                                                            stacks.host_mirrors())
    entries = sorted(p.name for p in (tmp_path / "empty-cache").glob("stack-static-*"))
    assert len(entries) == 2 and entries[0].endswith(".tar.gz") and entries[1].endswith(".tar.gz.json")
    assert not list(ctx.paths.tmp.iterdir())  # the scratch rootfs is gone

    code, out = run_in(ctx, built.ref, "sh", "-c", "busybox echo ok; ls /usr/bin/wget /usr/sbin/httpd; "
                       "id -u nobody; ls /dev/null; cat /etc/resolv.conf")
    assert code == 0, out
    assert out.splitlines() == ["ok", "/usr/bin/wget", "/usr/sbin/httpd", "65534", "/dev/null"]

    again = stacks.make_stack(ctx, "static")
    assert again.source == "store" and again.image.digest == built.image.digest and again.seconds < 2

    loaded = stacks.make_stack(other_root, "static")
    assert loaded.source == "cache" and loaded.image.digest == built.image.digest
    assert loaded.seconds < built.seconds
    print(f"\nstatic: built in {built.seconds:.2f}s, loaded from the cache in {loaded.seconds:.2f}s")
    code, out = run_in(other_root, loaded.ref, "busybox", "echo", "ok")
    assert (code, out) == (0, "ok")

    rebuilt = stacks.make_stack(other_root, "static", rebuild=True)
    assert rebuilt.source == "built"


def test_base_stack_runs_reuses_and_loads_from_the_machine_cache(ctx, other_root):
    first = stacks.make_stack(ctx, "base")
    assert first.source in ("built", "cache")
    code, out = run_in(ctx, first.ref, "sh", "-c",
                       "useradd --create-home --uid 10001 app && id app && stat -c %U:%G /etc/shadow "
                       "&& test -s /etc/ssl/certs/ca-certificates.crt && test -e /usr/share/zoneinfo/UTC "
                       "&& echo $LANG && find /usr/share/doc -type f ! -name copyright | wc -l "
                       "&& find /usr/share/man /usr/share/locale /var/lib/apt/lists -type f | wc -l")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("uid=10001(app)") and lines[1] == "root:shadow" and lines[2] == "C.UTF-8"
    assert lines[3:] == ["0", "1"]  # docs: copyright files only; no man pages, apt lists; locale.alias
    assert stacks.make_stack(ctx, "base").source == "store"
    assert run_in(ctx, first.ref, *stacks.STACKS["base"].version_cmd)[1].startswith("12.")

    started = time.monotonic()
    loaded = stacks.make_stack(other_root, "base")
    assert loaded.source == "cache" and loaded.image.digest == first.image.digest
    assert time.monotonic() - started < 10
    print(f"\nbase: {first.source} in {first.seconds:.2f}s, loaded from the cache in {loaded.seconds:.2f}s, "
          f"{first.image.total_size / 1e6:.1f} MB")


def test_python_stack_makes_a_venv(ctx):
    build = stacks.make_stack(ctx, "python")
    code, out = run_in(ctx, stacks.ensure_stack(ctx, "python"), "sh", "-c",
                       "python3 -c 'import venv, ssl, sys; print(sys.version_info[:2]); print(ssl.OPENSSL_VERSION)' "
                       "&& python3 -m venv /tmp/venv && /tmp/venv/bin/pip --version && echo $PYTHONUNBUFFERED")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "(3, 11)" and lines[1].startswith("OpenSSL 3.")
    assert lines[2].startswith("pip ") and "python 3.11" in lines[2] and lines[3] == "1"
    code, out = run_in(ctx, build.ref, *stacks.STACKS["python"].version_cmd)
    assert code == 0 and out.startswith("Python 3.11."), out
    print(f"\npython: {build.source} in {build.seconds:.2f}s, {build.image.total_size / 1e6:.1f} MB")


def test_cli_builds_and_lists(ctx):
    result = run_paas("stacks:build", "static")
    assert result.stdout.startswith("static: paas/stack-static:bookworm sha256:")
    assert "-----> stack static" in result.stderr
    result = run_paas("stacks:build", "static", "--json")
    (row,) = json.loads(result.stdout)
    assert row["source"] == "store" and row["digest"].startswith("sha256:")
    rows = {r["name"]: r for r in json.loads(run_paas("stacks", "--json").stdout)}
    assert rows["static"]["present"] and rows["static"]["current"] and rows["static"]["size"] > 0
    assert not rows["node"]["present"]
