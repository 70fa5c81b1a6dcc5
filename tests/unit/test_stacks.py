"""Stacks without building anything: the table, version notes, apt sources, argv, keys, overrides."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

from paas import locks, stacks
from paas.errors import NotFound
from paas.stacks import cache, plan

MIRRORS = [
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main",
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security "
    "bookworm-security main",
]


def test_table_has_every_language_in_both_suites_with_the_versions_debian_ships():
    assert list(stacks.SUITES) == ["bookworm", "trixie"] and stacks.DEFAULT_SUITE == "bookworm"
    versions = {name: stacks.provided_versions(name) for name in ("base", "python", "node", "go", "ruby", "php")}
    assert versions == {
        "base": [("bookworm", "12"), ("trixie", "13")],
        "python": [("bookworm", "3.11"), ("trixie", "3.13")],
        "node": [("bookworm", "18"), ("trixie", "20")],
        "go": [("bookworm", "1.19"), ("trixie", "1.24")],
        "ruby": [("bookworm", "3.1"), ("trixie", "3.3")],
        "php": [("bookworm", "8.2"), ("trixie", "8.4")],
    }
    assert stacks.provided_versions("static") == [("bookworm", "1.35")]  # busybox alone: one suite is enough
    for stack in stacks.STACKS.values():
        for suite in stack.suites:
            assert stack.ref(suite) == f"paas/stack-{stack.name}:{suite}"
            env = dict(item.split("=", 1) for item in stack.image_env(suite))
            assert env["LANG"] == "C.UTF-8" and env["PATH"].endswith("/usr/bin:/sbin:/bin")
        assert stack.version_cmd
    assert "ca-certificates" in stacks.STACKS["python"].packages
    python_env = dict(item.split("=", 1) for item in stacks.STACKS["python"].image_env("trixie"))
    assert python_env["VIRTUAL_ENV"] == "/opt/venv" and python_env["PATH"].startswith("/opt/venv/bin:")
    assert python_env["PYTHONUNBUFFERED"] == "1" and python_env["PIP_DISABLE_PIP_VERSION_CHECK"] == "1"
    go_path = {suite: dict(e.split("=", 1) for e in stacks.STACKS["go"].image_env(suite))["PATH"]
               for suite in stacks.SUITES}
    assert go_path["bookworm"].startswith("/go/bin:/usr/lib/go-1.19/bin:")
    assert go_path["trixie"].startswith("/go/bin:/usr/lib/go-1.24/bin:")


def test_a_suite_a_stack_is_not_built_for_is_refused():
    with pytest.raises(NotFound) as caught:
        stacks.STACKS["static"].ref("trixie")
    assert caught.value.one_line() == "the static stack has no trixie suite (its suites are: bookworm)"
    assert stacks.parse_stack_name("python:trixie") == (stacks.STACKS["python"], "trixie")
    assert stacks.parse_stack_name("node") == (stacks.STACKS["node"], None)
    with pytest.raises(NotFound, match="no sid suite"):
        stacks.parse_stack_name("go:sid")


def test_unknown_stack_names_the_known_ones():
    with pytest.raises(NotFound) as caught:
        stacks.get_stack("cobol")
    assert caught.value.one_line() == f"no stack named 'cobol' (stacks are: {', '.join(stacks.STACKS)})"


@pytest.mark.parametrize(("name", "requested", "suites"), [
    ("python", "3.11", ["bookworm"]),
    ("python", "3.11.4", ["bookworm"]),
    ("python", "3", ["bookworm", "trixie"]),
    ("python", "3.x", ["bookworm", "trixie"]),
    ("python", ">=3.8", ["bookworm", "trixie"]),
    ("python", ">=3.9,<3.13", ["bookworm"]),
    ("python", "~=3.10", ["bookworm", "trixie"]),
    ("python", "==3.11.*", ["bookworm"]),
    ("python", "3.13", ["trixie"]),
    ("python", ">=3.12", ["trixie"]),
    ("python", "~=3.12.1", []),
    ("python", "3.12", []),
    ("python", "<3.11", []),
    ("python", "!=3.11", ["trixie"]),
    ("node", "18", ["bookworm"]),
    ("node", "^18.12.0", ["bookworm"]),
    ("node", "~18.2", ["bookworm"]),
    ("node", ">=16 <20", ["bookworm"]),
    ("node", "16 || 18", ["bookworm"]),
    ("node", "18 || 20", ["bookworm", "trixie"]),
    ("node", "*", ["bookworm", "trixie"]),
    ("node", "v20.11.0", ["trixie"]),
    ("node", "^20.1", ["trixie"]),
    ("node", ">=20.0.0", ["trixie"]),
    ("node", "22", []),
    ("go", "1.19", ["bookworm", "trixie"]),  # go.mod's `go` line is a minimum
    ("go", "1.18", ["bookworm", "trixie"]),
    ("go", "1.21", ["trixie"]),
    ("go", "1.24.1", ["trixie"]),
    ("go", "1.25", []),
    ("ruby", "~> 3.1", ["bookworm", "trixie"]),
    ("ruby", "~> 3.0.2", []),
    ("ruby", "3.3.0", ["trixie"]),
    ("php", "^8.1", ["bookworm", "trixie"]),
    ("php", ">=8.3", ["trixie"]),
    ("php", "~8.2.0", ["bookworm"]),
    ("python", "latest", None),
    ("node", "lts/*", None),
])
def test_satisfying_suites(name, requested, suites):
    assert stacks.satisfying_suites(name, requested) == suites


@pytest.mark.parametrize(("name", "requested", "suite"), [
    ("python", "3.9", "bookworm"), ("python", "<3.11", "bookworm"), ("python", "3.12", "bookworm"),
    ("python", "3.14", "trixie"), ("python", ">=3.14", "trixie"), ("node", "16", "bookworm"), ("node", "22", "trixie"),
    ("node", "19", "bookworm"),  # a tie: the older suite
    ("go", "1.25", "trixie"), ("ruby", "2.7", "bookworm"), ("php", "8.5", "trixie"), ("python", "latest", None),
])
def test_nearest_suite(name, requested, suite):
    assert stacks.nearest_suite(name, requested) == suite


def test_default_suite_and_mismatch_policy_come_from_the_config(ctx):
    from paas.errors import ConfigError

    assert (stacks.default_suite(ctx.config), stacks.mismatch_policy(ctx.config)) == ("bookworm", "error")
    ctx.paths.config_file.write_text("stacks:\n  default_suite: trixie\n  version_mismatch: nearest\n")
    ctx.__dict__.pop("config", None)
    assert (stacks.default_suite(ctx.config), stacks.mismatch_policy(ctx.config)) == ("trixie", "nearest")
    assert stacks.stack_image(ctx, "node") == "paas/stack-node:trixie"
    ctx.paths.config_file.write_text("stacks:\n  default_suite: sid\n  version_mismatch: closest\n")
    ctx.__dict__.pop("config", None)
    with pytest.raises(ConfigError) as caught:
        stacks.default_suite(ctx.config)
    assert caught.value.one_line() == "stacks.default_suite is 'sid' (use one of: bookworm, trixie)"
    with pytest.raises(ConfigError, match="stacks.version_mismatch is 'closest'"):
        stacks.mismatch_policy(ctx.config)


def test_stacks_named_in_a_dockerfile():
    text = ("FROM paas/stack-go:trixie AS build\nRUN x\nfrom --platform=linux/amd64 paas/stack-base:trixie\n"
            "FROM paas/stack-python:bookworm\nFROM paas/stack-static:trixie\nFROM paas/stack-cobol:bookworm\n"
            "# FROM paas/stack-node:bookworm\nFROM paas/stack-go:trixie\n")
    assert stacks.stacks_named_in(text) == [("go", "trixie"), ("base", "trixie"), ("python", "bookworm")]


def test_one_line_and_deb822_sources_become_mirror_lines():
    one_line = """
# comment
deb http://mirror.example/debian/ bookworm main contrib
deb-src http://mirror.example/debian bookworm main
deb [arch=amd64 signed-by=/etc/apt/keyrings/x.gpg] http://mirror.example/debian bookworm-updates main
deb http://mirror.example/debian bookworm-backports main
deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main
"""
    deb822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.example/debian-security
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
"""
    sources = stacks.parse_one_line_sources(one_line) + stacks.parse_deb822_sources(deb822)
    assert stacks.mirror_lines(sources) == [
        "deb http://mirror.example/debian bookworm main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian bookworm main",
        "deb [signed-by=/etc/apt/keyrings/x.gpg] http://mirror.example/debian bookworm-updates main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian "
        "bookworm-updates main",
        "deb http://deb.example/debian-security bookworm-security main",
    ]
    # no trixie entries: the host's bookworm ones with the suite swapped in, backports and other archives left out
    assert stacks.mirror_lines(sources, "trixie") == [
        "deb http://mirror.example/debian trixie main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian trixie main",
        "deb [signed-by=/etc/apt/keyrings/x.gpg] http://mirror.example/debian trixie-updates main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.example/debian trixie-updates main",
        "deb http://deb.example/debian-security trixie-security main",
    ]
    # a host that names trixie itself: those entries only
    own = stacks.parse_one_line_sources("deb http://t.example/debian trixie main\n")
    assert stacks.mirror_lines(sources + own, "trixie") == ["deb http://t.example/debian trixie main"]
    assert stacks.mirror_lines(stacks.parse_one_line_sources("deb http://x.example/ubuntu noble main\n"),
                               "trixie") == []


def test_host_mirrors_reads_list_and_sources_files(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://a.example/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://b.example/debian\nSuites: bookworm\nComponents: main\n")
    (tmp_path / "sources.list.d" / "other.list.disabled").write_text("deb http://c.example/debian bookworm main\n")
    assert stacks.host_mirrors(tmp_path) == ["deb http://a.example/debian bookworm main",
                                             "deb http://b.example/debian bookworm main"]
    assert stacks.host_mirrors(tmp_path / "missing") == []


def test_mmdebstrap_argv():
    argv = stacks.mmdebstrap_argv(stacks.STACKS["python"], "/root/tmp/rootfs", MIRRORS)
    assert argv[:5] == ["mmdebstrap", "--variant=minbase", "--mode=unshare", "--format=directory", "--verbose"]
    assert "--include=ca-certificates,tzdata,python3,python3-venv" in argv
    assert "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr" in argv
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
    assert "--dpkgopt=path-include=/usr/share/doc/*/copyright" in argv
    assert '--aptopt=Acquire::Languages "none"' in argv
    assert argv[-4:] == ["bookworm", "/root/tmp/rootfs", *MIRRORS]
    # what every app repeated is done once in the root: the app user, /app it owns, python's venv
    assert [a for a in argv if a.startswith("--customize-hook=")] == [
        '--customize-hook=chroot "$1" useradd --create-home --uid 1000 --user-group app',
        '--customize-hook=chroot "$1" install -d -o app -g app /app',
        '--customize-hook=chroot "$1" python3 -m venv /opt/venv',
    ]
    assert stacks.mmdebstrap_argv(stacks.STACKS["base"], "/t", [])[-2:] == ["bookworm", "/t"]
    trixie = stacks.mmdebstrap_argv(stacks.STACKS["go"], "/t", ["deb http://m/debian trixie main"], suite="trixie")
    assert trixie[-3:] == ["trixie", "/t", "deb http://m/debian trixie main"]
    hooks = [a for a in trixie if a.startswith("--customize-hook=")]
    assert len(hooks) == 3 and "venv" not in " ".join(hooks)  # the app user, no venv; the standard library:
    assert hooks[2].endswith(f"GOCACHE={stacks.GO_STD_CACHE} CGO_ENABLED=0 GOFLAGS=-trimpath go build std")
    static = stacks.mmdebstrap_argv(stacks.STACKS["static"], "/t", [])
    assert not any(a.startswith("--customize-hook=") for a in static)  # busybox alone: left as it was
    with pytest.raises(NotFound):
        stacks.mmdebstrap_argv(stacks.STACKS["static"], "/t", [], suite="trixie")
    from paas.detect.model import APP_UID

    assert f"--uid {APP_UID} " in stacks.APP_USER_COMMANDS[0]
    assert "--mode=root" in stacks.mmdebstrap_argv(stacks.STACKS["base"], "/t", [], mode="root")


def test_keys_are_stable_and_follow_their_inputs():
    python = stacks.STACKS["python"]
    key = stacks.rootfs_key(python, MIRRORS)
    inputs = stacks.inputs_hash(python, MIRRORS)
    assert key == stacks.rootfs_key(python, list(MIRRORS)) and len(key) == 64
    assert inputs == stacks.inputs_hash(python, MIRRORS) and inputs.startswith("sha256:")
    # the target directory does not matter; packages, mirrors and the suite do
    assert stacks.rootfs_key(dataclasses.replace(python, packages=(*python.packages, "git")), MIRRORS) != key
    assert stacks.rootfs_key(python, MIRRORS[:1]) != key
    assert stacks.rootfs_key(python, MIRRORS, "trixie") != key
    assert stacks.inputs_hash(python, MIRRORS, "trixie") != inputs
    assert stacks.rootfs_key(dataclasses.replace(python, customize=()), MIRRORS) != key
    assert stacks.rootfs_key(stacks.STACKS["node"], MIRRORS) != key
    # Env changes the image, not the rootfs
    env_changed = dataclasses.replace(python, env=(("PYTHONUNBUFFERED", "0"),))
    assert stacks.rootfs_key(env_changed, MIRRORS) == key
    assert stacks.inputs_hash(env_changed, MIRRORS) != inputs


def test_recipe_version_changes_every_key(monkeypatch):
    base = stacks.STACKS["base"]
    key, inputs = stacks.rootfs_key(base, MIRRORS), stacks.inputs_hash(base, MIRRORS)
    monkeypatch.setattr(plan, "RECIPE_VERSION", plan.RECIPE_VERSION + 1)
    assert stacks.rootfs_key(base, MIRRORS) != key and stacks.inputs_hash(base, MIRRORS) != inputs


def test_image_config_labels():
    config = stacks.image_config(stacks.STACKS["node"], "sha256:" + "a" * 64)
    assert config["Labels"] == {"io.paas.stack": "node", "io.paas.stack.version": "18",
                                "io.paas.stack.suite": "bookworm", "io.paas.stack.inputs": "sha256:" + "a" * 64}
    assert config["Cmd"] == ["/bin/sh"]
    assert "NPM_CONFIG_UPDATE_NOTIFIER=false" in config["Env"]
    archive = {"trixie": "2026-11-21T09:15:44+00:00", "trixie-security": "2026-12-05T03:33:30+00:00"}
    config = stacks.image_config(stacks.STACKS["node"], "", "trixie", archive)
    assert config["Labels"]["io.paas.stack.version"] == "20" and config["Labels"]["io.paas.stack.suite"] == "trixie"
    assert json.loads(config["Labels"]["io.paas.stack.archive"]) == archive
    # the archive dates are not inputs: a stack does not go out of date because the archive moved on
    assert "io.paas.stack.archive" not in stacks.image_config(stacks.STACKS["node"], "", "trixie")["Labels"]


def test_configured_image_overrides_the_default(ctx):
    assert stacks.stack_image(ctx, "python") == "paas/stack-python:bookworm"
    ctx.paths.config_file.write_text("stacks:\n  python:\n    image: registry.example.com/python:3.12-slim\n")
    ctx.__dict__.pop("config", None)
    assert stacks.stack_image(ctx, "python") == "registry.example.com/python:3.12-slim"
    assert stacks.stack_image(ctx, "python", "trixie") == "registry.example.com/python:3.12-slim"
    assert stacks.stack_image(ctx, "node") == "paas/stack-node:bookworm"
    assert stacks.stack_image(ctx, "node", "trixie") == "paas/stack-node:trixie"
    assert stacks.ensure_stack(ctx, "python") == "registry.example.com/python:3.12-slim"  # nothing to build
    assert stacks.ensure_stack(ctx, "python", "trixie") == "registry.example.com/python:3.12-slim"
    rows = stacks.list_stacks(ctx)
    (python,) = [r for r in rows if r["name"] == "python"]  # one row: the configured image, whatever the suite
    assert python["configured"] and python["image"] == "registry.example.com/python:3.12-slim"
    assert python["suite"] is None
    node = {r["suite"]: r for r in rows if r["name"] == "node"}
    assert node["trixie"]["image"] == "paas/stack-node:trixie" and node["trixie"]["version"] == "20"
    assert not node["bookworm"]["present"] and node["bookworm"]["size"] is None
    with pytest.raises(NotFound):
        stacks.stack_image(ctx, "cobol")


def test_output_summary_keeps_phases_and_counts():
    summary = stacks.OutputSummary(every=2)
    lines = ["I: chroot architecture amd64 is equal to the host's architecture", "I: running apt-get update...",
             "Get:1 http://deb.debian.org/debian bookworm/main amd64 libc6 [2,758 kB]", "Get:2 x",
             "I: installing essential packages...", "Setting up a ...", "Setting up b ...", "Unpacking c ...",
             "W: something odd", "I: success in 44.3 seconds"]
    shown = [s for s in map(summary.feed, lines) if s]
    assert shown == ["running apt-get update...", "installing essential packages... (2 packages downloaded)",
                     "configured 2 packages", "W: something odd", "success in 44.3 seconds"]


def test_a_second_builder_of_a_stack_waits_and_says_so(tmp_path):
    """Two processes making the same stack: the second waits for the first's lock (however long its mmdebstrap
    takes) and says whom it waits for, once; it goes on when the lock is released."""
    path = tmp_path / "locks" / "stack-python-bookworm.lock"
    said: list[str] = []
    waiting, through = threading.Event(), threading.Event()

    def second() -> None:
        with cache.wait_for(path, "the python stack (bookworm)", lambda line: (said.append(line), waiting.set())):
            through.set()

    with locks.hold(path):  # the first builder (flock: a second open file conflicts, even in one process)
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting.wait(60)
        assert not through.is_set()
    thread.join(60)
    assert through.is_set()
    assert said == [f"waiting for another process building the python stack (bookworm) ({path})"]


def test_finish_rootfs_prunes(tmp_path):
    root = tmp_path / "rootfs"
    for rel in ("dev/pts", "etc", "var/cache/debconf", "var/lib/dpkg", "var/cache/apt"):
        (root / rel).mkdir(parents=True)
    (root / "dev" / "null").write_text("")
    (root / "etc" / "resolv.conf").write_text("nameserver 10.0.0.1\n")
    (root / "etc" / "hostname").symlink_to("/etc/host-hostname")
    (root / "var/cache/debconf/config.dat-old").write_text("x")
    (root / "var/cache/debconf/config.dat").write_text("x")
    (root / "var/lib/dpkg/status-old").write_text("x")
    (root / "var/cache/apt/pkgcache.bin").write_text("x")
    stacks.finish_rootfs(root)
    assert sorted(p.name for p in (root / "dev").iterdir()) == []
    assert (root / "etc/resolv.conf").read_text() == "" and not (root / "etc/hostname").is_symlink()
    assert [p.name for p in (root / "var/cache/debconf").iterdir()] == ["config.dat"]
    assert not list((root / "var/lib/dpkg").iterdir()) and not list((root / "var/cache/apt").iterdir())


def test_cli_rejects_unknown_and_missing_names(ctx):
    from tests.conftest import run_paas

    result = run_paas("stacks:build", check=False)
    assert result.returncode == 2 and "--all" in result.stderr
    result = run_paas("stacks:build", "cobol", check=False)
    assert result.returncode == 1 and "no stack named 'cobol'" in result.stderr
    result = run_paas("stacks:build", "python:trixie", "static:trixie", check=False)
    assert result.returncode == 1 and "the static stack has no trixie suite" in result.stderr
    assert "stack python" not in result.stderr  # checked before anything is built
    result = run_paas("stacks:build", "--all", "--suite", "sid", check=False)
    assert result.returncode == 2 and "--suite must be one of: bookworm, trixie" in result.stderr


def test_cli_lists_stacks_as_json(ctx):
    import json

    from tests.conftest import run_paas

    rows = json.loads(run_paas("stacks", "--json").stdout)
    assert [(r["name"], r["suite"]) for r in rows] == [(s.name, x) for s in stacks.STACKS.values() for x in s.suites]
    assert rows[2]["image"] == "paas/stack-python:bookworm" and rows[2]["present"] is False
    assert rows[3]["image"] == "paas/stack-python:trixie" and rows[3]["version"] == "3.13"
    out = run_paas("stacks").stdout
    assert "paas/stack-python:trixie" in out and "SUITE" in out.splitlines()[0]


# -- stacks:update: the archive's Release dates against what each stack was built from ------------------------------

OLD = {"trixie": "2026-11-21T09:15:44+00:00", "trixie-updates": "2026-11-30T02:00:00+00:00",
       "trixie-security": "2026-11-30T03:00:00+00:00"}
NEW = {**OLD, "trixie-security": "2026-12-05T03:33:30+00:00"}


def fake_stack(ctx, name: str, suite: str, archive: dict | None):
    """A stack image in the store with the labels a real build writes (no mmdebstrap: the content is a file)."""
    from paas.image.create import image_from_dirs

    root = ctx.paths.tmp / f"fake-{name}-{suite}"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "stack").write_text(f"{name} {suite}\n")
    stack = stacks.STACKS[name]
    inputs = stacks.inputs_hash(stack, stacks.host_mirrors(suite=suite), suite)
    return image_from_dirs(ctx.store, [root], tag=stack.ref(suite), **stacks.image_config(stack, inputs, suite,
                                                                                          archive))


def test_archive_dates_decide_which_stacks_are_behind(ctx):
    fake_stack(ctx, "node", "trixie", OLD)
    fake_stack(ctx, "python", "trixie", NEW)
    current = fake_stack(ctx, "python", "bookworm", None)  # built before stacks recorded dates
    asked = []

    def fetch(suite, mirrors):
        asked.append(suite)
        assert all(f" {suite}" in line for line in mirrors)  # the host's URIs, for this suite
        return NEW if suite == "trixie" else {"bookworm": "2026-07-11T10:16:37+00:00"}

    rows = {(r["name"], r["suite"]): r for r in stacks.update_stacks(ctx, check=True, fetch=fetch)}
    assert sorted(asked) == ["bookworm", "trixie"]  # once per suite that has stacks built
    assert set(rows) == {("node", "trixie"), ("python", "trixie"), ("python", "bookworm")}
    assert rows[("node", "trixie")]["status"] == "behind" and rows[("node", "trixie")]["behind"] == ["trixie-security"]
    assert rows[("python", "trixie")]["status"] == "current" and rows[("python", "trixie")]["behind"] == []
    assert rows[("python", "bookworm")]["status"] == "behind" and rows[("python", "bookworm")]["built_from"] is None
    assert stacks.get_stack("python") and ctx.store.get("paas/stack-python:bookworm").digest == current.digest


def test_update_with_nothing_built_reads_no_archive(ctx):
    def fetch(suite, mirrors):
        raise AssertionError("nothing to compare")

    assert stacks.update_stacks(ctx, check=True, fetch=fetch) == []


def test_archive_mirror_lines_become_dists_and_release_dates_compare():
    from paas import archive

    lines = stacks.mirror_lines(stacks.parse_deb822_sources(
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\n"
        "URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n"), "trixie")
    dists = archive.dists(lines)
    assert [(d.url, d.keyring) for d in dists] == [
        ("http://deb.debian.org/debian/dists/trixie/InRelease", "/usr/share/keyrings/debian-archive-keyring.gpg"),
        ("http://deb.debian.org/debian/dists/trixie-updates/InRelease",
         "/usr/share/keyrings/debian-archive-keyring.gpg"),
        ("http://deb.debian.org/debian-security/dists/trixie-security/InRelease", None),
    ]
    assert [d.name for d in stacks.archive_dists([], "trixie")] == ["trixie", "trixie-updates", "trixie-security"]
    release = "Origin: Debian\nSuite: stable\nDate: Sat, 21 Nov 2026 09:15:44 UTC\nValid-Until: x\n\nMD5Sum:\n"
    assert archive.release_date(release).isoformat() == "2026-11-21T09:15:44+00:00"
    with pytest.raises(ValueError):
        archive.release_date("Origin: Debian\n\nDate: Sat, 21 Nov 2026 09:15:44 UTC\n")  # not in the header
    assert archive.newer(NEW, OLD) == ["trixie-security"]
    assert archive.newer(OLD, NEW) == [] and archive.newer(NEW, NEW) == []
    assert archive.newer(NEW, None) == sorted(NEW)  # a stack that does not know is behind on everything
    assert archive.newer(NEW, {"trixie": OLD["trixie"]}) == ["trixie-security", "trixie-updates"]


def test_an_unsigned_or_forged_release_file_is_refused(tmp_path):
    from paas import archive
    from paas.errors import UserError

    forged = b"Origin: Debian\nDate: Sat, 21 Nov 2099 09:15:44 UTC\n"
    with pytest.raises(UserError) as caught:
        archive.verified_text(forged, None, "http://m/debian/dists/trixie/InRelease")
    assert caught.value.one_line().startswith("http://m/debian/dists/trixie/InRelease: the signature does not verify")

    def get(url):
        return 200, forged

    with pytest.raises(UserError, match="the signature does not verify"):
        archive.fetch_dates(archive.dists(["deb http://m/debian trixie main"]), get=get)
    with pytest.raises(UserError) as caught:
        archive.fetch_dates(archive.dists(["deb http://m/debian trixie main"]), get=lambda url: (404, b""))
    assert caught.value.one_line().startswith("cannot fetch http://m/debian/dists/trixie/InRelease: HTTP 404 (")


def test_mirror_unreachable_is_one_line(ctx):
    from paas import archive
    from paas.errors import UserError

    with pytest.raises(UserError) as caught:
        archive.fetch_dates(archive.dists(["deb http://127.0.0.1:9/debian trixie main"]))
    assert caught.value.one_line() == (
        "cannot reach the Debian mirror for http://127.0.0.1:9/debian/dists/trixie/InRelease: [Errno 111] "
        "Connection refused (check this host's network and its apt sources (/etc/apt), then run it again)")
