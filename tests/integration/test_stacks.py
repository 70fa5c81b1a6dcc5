"""Stacks built for real with mmdebstrap, run in containers, reused from the store and the machine cache; trixie
stacks beside bookworm ones; stacks:update against the real Debian archive, and the builder rebuilding an app on
an updated stack.

The machine cache (PAAS_STACK_CACHE, default here /var/cache/paas-test/stacks) makes reruns fast;
from an empty cache the first run builds base (~45 s), python for bookworm and trixie (~70 s each); static
takes seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from paas import linux, stacks
from paas.config import init_root, paths_from_env
from paas.context import open_context
from paas.runtime import containers, spec
from paas.stacks import build as stack_build
from tests.conftest import need_root, need_tool, run_paas
from tests.platformkit import MACHINE_STACK_CACHE


@pytest.fixture(autouse=True)
def prerequisites(monkeypatch):
    need_root()
    need_tool("mmdebstrap")
    monkeypatch.setenv(stacks.CACHE_ENV, os.environ.get(stacks.CACHE_ENV) or MACHINE_STACK_CACHE)


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
    assert built.source == "built" and built.ref == "paas/stack-static:bookworm" and built.suite == "bookworm"
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
                       "id app && stat -c %U:%G /etc/shadow "
                       "&& test -s /etc/ssl/certs/ca-certificates.crt && test -e /usr/share/zoneinfo/UTC "
                       "&& echo $LANG && find /usr/share/doc -type f ! -name copyright | wc -l "
                       "&& find /usr/share/man /usr/share/locale /var/lib/apt/lists -type f | wc -l")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "uid=1000(app) gid=1000(app) groups=1000(app)"  # the user apps run as comes with the stack
    assert lines[1] == "root:shadow" and lines[2] == "C.UTF-8"
    assert lines[3:] == ["0", "1"]  # docs: copyright files only; no man pages, apt lists; locale.alias
    assert stacks.make_stack(ctx, "base").source == "store"
    assert run_in(ctx, first.ref, *stacks.STACKS["base"].version_cmd)[1].startswith("12.")

    started = time.monotonic()
    loaded = stacks.make_stack(other_root, "base")
    assert loaded.source == "cache" and loaded.image.digest == first.image.digest
    assert time.monotonic() - started < 10
    print(f"\nbase: {first.source} in {first.seconds:.2f}s, loaded from the cache in {loaded.seconds:.2f}s, "
          f"{first.image.total_size / 1e6:.1f} MB")


APP_SETUP = ("id app; stat -c '%U:%G %a' /app; stat -c %U /home/app; echo $VIRTUAL_ENV; "
             "command -v python3; command -v pip; "
             "python3 -c 'import sys, ssl; print(sys.prefix, sys.version_info[:2]); print(ssl.OPENSSL_VERSION)'; "
             "pip --version")


@pytest.mark.parametrize(("suite", "version"), [("bookworm", "3.11"), ("trixie", "3.13")])
def test_python_stack_has_the_app_user_and_a_ready_venv(ctx, suite, version):
    build = stacks.make_stack(ctx, "python", suite)
    assert build.ref == f"paas/stack-python:{suite}" == stacks.ensure_stack(ctx, "python", suite)
    assert labels(build.image)["io.paas.stack.version"] == version
    assert labels(build.image)["io.paas.stack.suite"] == suite
    code, out = run_in(ctx, build.ref, "sh", "-c", APP_SETUP)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "uid=1000(app) gid=1000(app) groups=1000(app)"
    assert lines[1:4] == ["app:app 755", "app", "/opt/venv"]
    assert lines[4:6] == ["/opt/venv/bin/python3", "/opt/venv/bin/pip"]
    assert lines[6] == f"/opt/venv {tuple(int(n) for n in version.split('.'))}" and lines[7].startswith("OpenSSL 3.")
    assert lines[8].startswith("pip ") and f"python {version}" in lines[8]
    code, out = run_in(ctx, build.ref, *stacks.STACKS["python"].version_cmd)
    assert code == 0 and out.startswith(f"Python {version}."), out
    print(f"\npython:{suite}: {build.source} in {build.seconds:.2f}s, {build.image.total_size / 1e6:.1f} MB")


def test_a_trixie_stack_is_its_own_image_and_cache_entry(ctx, other_root):
    """Both suites of one stack side by side: separate images, separate machine cache entries (saving one keeps
    the other), the archive dates each was built from, Debian 13 inside."""
    trixie = stacks.make_stack(ctx, "base", "trixie")
    bookworm = stacks.make_stack(ctx, "base", "bookworm")
    assert trixie.ref == "paas/stack-base:trixie" and trixie.image.digest != bookworm.image.digest
    assert run_in(ctx, trixie.ref, *stacks.STACKS["base"].version_cmd)[1].startswith("13.")
    assert run_in(ctx, bookworm.ref, *stacks.STACKS["base"].version_cmd)[1].startswith("12.")
    assert run_in(ctx, trixie.ref, "id", "app")[1] == "uid=1000(app) gid=1000(app) groups=1000(app)"
    cache = stacks.MachineCache.from_env()
    for build in (trixie, bookworm):
        key = stacks.rootfs_key(stacks.STACKS["base"], stacks.host_mirrors(suite=build.suite), build.suite)
        assert cache.layer_path("base", build.suite, key, "gzip").is_file()
    recorded = stacks.built_from(trixie.image)
    assert sorted(recorded) == ["trixie", "trixie-security", "trixie-updates"]
    assert all(date.startswith("20") for date in recorded.values())
    loaded = stacks.make_stack(other_root, "base", "trixie")
    assert loaded.source == "cache" and loaded.image.digest == trixie.image.digest
    assert stacks.built_from(loaded.image) == recorded  # the sidecar keeps the dates
    print(f"\nbase:trixie built in {trixie.seconds:.1f}s, {trixie.image.total_size / 1e6:.1f} MB; "
          f"bookworm {bookworm.seconds:.1f}s, {bookworm.image.total_size / 1e6:.1f} MB")


def test_update_rebuilds_a_stack_behind_the_archive_and_the_app_on_it_rebuilds(ctx, tmp_path, monkeypatch):
    """A stack whose recorded Release dates are older than the real archive's is rebuilt by stacks:update; an app
    built FROM it then misses the build cache (the builder keys FROM on the image's config digest), so its next
    deploy starts from the new stack."""
    from paas.build.executor import BuildOptions, build

    monkeypatch.setenv(stacks.CACHE_ENV, str(tmp_path / "cache"))  # the fake dates never reach the machine cache
    old = stacks.make_stack(ctx, "static", archive={"bookworm": "2001-01-01T00:00:00+00:00"}).image
    app = tmp_path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text("FROM paas/stack-static:bookworm\nRUN echo built > /built\n")

    def build_app():
        return build(ctx, BuildOptions(context_dir=app, tags=("stacky:test",), network="none", progress=lambda _: None))

    first = build_app()
    assert build_app().steps[-1].cached  # nothing changed: the RUN step comes from the cache

    checked = run_paas("stacks:update", "--check", "--json")
    (row,) = json.loads(checked.stdout)
    assert (row["image"], row["status"]) == ("paas/stack-static:bookworm", "behind")
    assert ctx.store.get("paas/stack-static:bookworm").digest == old.digest  # --check changes nothing

    result = run_paas("stacks:update")
    line = result.stdout.strip()
    assert line.startswith("paas/stack-static:bookworm: rebuilt (newer packages in bookworm, bookworm-security, "
                           "bookworm-updates) in "), result
    fresh = ctx.store.get("paas/stack-static:bookworm")
    assert fresh.digest != old.digest
    assert sorted(stacks.built_from(fresh)) == ["bookworm", "bookworm-security", "bookworm-updates"]
    (row,) = json.loads(run_paas("stacks:update", "--json").stdout)
    assert row["status"] == "current" and row["digest"] == fresh.digest  # nothing newer now: nothing rebuilt

    again = build_app()
    assert not again.steps[-1].cached and again.image.digest != first.image.digest


def test_an_interrupted_build_leaves_no_mount_and_removes_nothing_through_one(ctx, tmp_path):
    """Mounts left in a build's scratch root (as an interrupted root-mode mmdebstrap leaves /proc, /dev, /dev/pts;
    one at a path with a space) are unmounted, deepest first, before the scratch directory is removed: the
    directory bound in keeps its file."""
    host = tmp_path / "host dir"
    host.mkdir()
    (host / "keep").write_text("kept")
    try:
        with pytest.raises(RuntimeError, match="interrupted"), stack_build._scratch(ctx, "base", "bookworm") as scratch:
            points = [scratch / "rootfs" / rel for rel in ("dev", "dev/pts", "my proc")]
            for point in points:
                point.mkdir(parents=True, exist_ok=True)
                subprocess.run(["mount", "--bind", str(host), str(point)], check=True)
            assert linux.mounts_under(scratch) == [str(points[1]), str(points[0]), str(points[2])]
            raise RuntimeError("interrupted")
        assert not scratch.exists() and linux.mounts_under(ctx.paths.tmp) == []
        assert (host / "keep").read_text() == "kept"
    finally:  # a failure above leaves no mount behind
        for point in linux.mounts_under(ctx.paths.tmp):
            subprocess.run(["umount", "--lazy", point], check=False)


def test_unreachable_mirror_is_one_line(ctx, tmp_path):
    fake = tmp_path / "apt"
    (fake / "sources.list.d").mkdir(parents=True)
    (fake / "sources.list").write_text("deb http://127.0.0.1:9/debian bookworm main\n")
    mirrors = stacks.host_mirrors(fake, "trixie")
    assert mirrors == ["deb http://127.0.0.1:9/debian trixie main"]
    lines: list[str] = []
    assert stacks.archive_now(mirrors, "trixie", lines.append) is None  # a build goes on without the record
    assert lines == ["W: cannot reach the Debian mirror for http://127.0.0.1:9/debian/dists/trixie/InRelease: "
                     "[Errno 111] Connection refused (check this host's network and its apt sources (/etc/apt), "
                     "then run it again); the stack will not know which archive state it was built from"]


def test_cli_builds_and_lists(ctx):
    result = run_paas("stacks:build", "static")
    assert result.stdout.startswith("static: paas/stack-static:bookworm sha256:")
    assert "-----> stack static" in result.stderr
    result = run_paas("stacks:build", "static", "--json")
    (row,) = json.loads(result.stdout)
    assert row["source"] == "store" and row["digest"].startswith("sha256:")
    rows = {(r["name"], r["suite"]): r for r in json.loads(run_paas("stacks", "--json").stdout)}
    assert rows[("static", "bookworm")]["present"] and rows[("static", "bookworm")]["current"]
    assert rows[("static", "bookworm")]["size"] > 0
    assert not rows[("node", "bookworm")]["present"] and not rows[("node", "trixie")]["present"]
    result = run_paas("stacks:build", "python:sid", check=False)
    assert result.returncode == 1 and "the python stack has no sid suite (its suites are: bookworm, trixie)" in \
        result.stderr
