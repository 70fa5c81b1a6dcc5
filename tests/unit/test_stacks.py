"""Stacks without building anything: the table, version notes, apt sources, argv, keys, overrides."""

from __future__ import annotations

import dataclasses

import pytest

from paas import stacks
from paas.errors import NotFound

MIRRORS = [
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main",
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security "
    "bookworm-security main",
]


def test_table_has_every_language_with_debian_12_versions():
    assert list(stacks.STACKS) == ["base", "python", "node", "go", "ruby", "php", "static"]
    versions = {name: stacks.provided_version(name) for name in stacks.STACKS}
    assert versions == {"base": "12", "python": "3.11", "node": "18", "go": "1.19", "ruby": "3.1",
                        "php": "8.2", "static": "1.35"}
    for stack in stacks.STACKS.values():
        assert stack.image == f"paas/stack-{stack.name}:bookworm"
        env = dict(item.split("=", 1) for item in stack.image_env())
        assert env["LANG"] == "C.UTF-8" and env["PATH"].endswith("/usr/bin:/sbin:/bin")
        assert stack.version_cmd
    assert "ca-certificates" in stacks.STACKS["python"].packages
    assert dict(stacks.STACKS["python"].env)["PYTHONUNBUFFERED"] == "1"
    assert dict(stacks.STACKS["python"].env)["PIP_DISABLE_PIP_VERSION_CHECK"] == "1"
    assert "/usr/lib/go-1.19/bin" in stacks.STACKS["go"].path


def test_unknown_stack_names_the_known_ones():
    with pytest.raises(NotFound) as caught:
        stacks.get_stack("cobol")
    assert caught.value.one_line() == "no stack named 'cobol' (stacks are: base, python, node, go, ruby, php, static)"


@pytest.mark.parametrize(("name", "requested", "note"), [
    ("python", None, None),
    ("python", "", None),
    ("python", "3.11", None),
    ("python", "3.11.4", None),
    ("python", "3", None),
    ("python", "3.x", None),
    ("python", ">=3.8", None),
    ("python", ">=3.9,<3.13", None),
    ("python", "~=3.10", None),
    ("python", "==3.11.*", None),
    ("python", "3.12", "python 3.12 requested; this stack provides 3.11"),
    ("python", ">=3.12", "python >=3.12 requested; this stack provides 3.11"),
    ("python", "<3.11", "python <3.11 requested; this stack provides 3.11"),
    ("python", "~=3.12.1", "python ~=3.12.1 requested; this stack provides 3.11"),
    ("python", "!=3.11", "python !=3.11 requested; this stack provides 3.11"),
    ("node", "18", None),
    ("node", "18.x", None),
    ("node", "^18.12.0", None),
    ("node", "~18.2", None),
    ("node", ">=16 <20", None),
    ("node", "16 || 18", None),
    ("node", "*", None),
    ("node", "v18.19.0", None),
    ("node", "20", "node 20 requested; this stack provides 18"),
    ("node", "^20.1", "node ^20.1 requested; this stack provides 18"),
    ("node", ">=20.0.0", "node >=20.0.0 requested; this stack provides 18"),
    ("go", "1.19", None),
    ("go", "1.18", None),  # go.mod's `go 1.18` is a minimum
    ("go", "1.19.3", None),
    ("go", "1.21", "go 1.21 requested; this stack provides 1.19"),
    ("ruby", "~> 3.1", None),
    ("ruby", "~> 3.0", None),
    ("ruby", "~> 3.0.2", "ruby ~> 3.0.2 requested; this stack provides 3.1"),
    ("ruby", "3.3.0", "ruby 3.3.0 requested; this stack provides 3.1"),
    ("php", "^8.1", None),
    ("php", ">=8.3", "php >=8.3 requested; this stack provides 8.2"),
    ("python", "latest", "python version 'latest' not understood; this stack provides 3.11"),
])
def test_nearest_version(name, requested, note):
    assert stacks.nearest_version(name, requested) == (stacks.provided_version(name), note)


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
    assert stacks.mirror_lines(sources, "trixie") == []


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
    assert stacks.mmdebstrap_argv(stacks.STACKS["base"], "/t", [])[-2:] == ["bookworm", "/t"]
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
    assert stacks.rootfs_key(stacks.STACKS["node"], MIRRORS) != key
    # Env changes the image, not the rootfs
    env_changed = dataclasses.replace(python, env=(("PYTHONUNBUFFERED", "0"),))
    assert stacks.rootfs_key(env_changed, MIRRORS) == key
    assert stacks.inputs_hash(env_changed, MIRRORS) != inputs


def test_recipe_version_changes_every_key(monkeypatch):
    base = stacks.STACKS["base"]
    key, inputs = stacks.rootfs_key(base, MIRRORS), stacks.inputs_hash(base, MIRRORS)
    monkeypatch.setattr(stacks, "RECIPE_VERSION", stacks.RECIPE_VERSION + 1)
    assert stacks.rootfs_key(base, MIRRORS) != key and stacks.inputs_hash(base, MIRRORS) != inputs


def test_image_config_labels():
    config = stacks.image_config(stacks.STACKS["node"], "sha256:" + "a" * 64)
    assert config["Labels"] == {"io.paas.stack": "node", "io.paas.stack.version": "18",
                                "io.paas.stack.suite": "bookworm", "io.paas.stack.inputs": "sha256:" + "a" * 64}
    assert config["Cmd"] == ["/bin/sh"]
    assert "NPM_CONFIG_UPDATE_NOTIFIER=false" in config["Env"]


def test_configured_image_overrides_the_default(ctx):
    assert stacks.stack_image(ctx, "python") == "paas/stack-python:bookworm"
    ctx.paths.config_file.write_text("stacks:\n  python:\n    image: registry.example.com/python:3.12-slim\n")
    ctx.__dict__.pop("config", None)
    assert stacks.stack_image(ctx, "python") == "registry.example.com/python:3.12-slim"
    assert stacks.stack_image(ctx, "node") == "paas/stack-node:bookworm"
    assert stacks.ensure_stack(ctx, "python") == "registry.example.com/python:3.12-slim"  # nothing to build
    rows = {r["name"]: r for r in stacks.list_stacks(ctx)}
    assert rows["python"]["configured"] and rows["python"]["image"] == "registry.example.com/python:3.12-slim"
    assert not rows["node"]["present"] and rows["node"]["size"] is None
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


def test_mounts_under_deepest_first():
    mountinfo = "\n".join([
        "22 1 0:21 / / rw - ext4 /dev/vda rw",
        "40 22 0:5 / /tmp/x/rootfs/dev rw - tmpfs tmpfs rw",
        "41 40 0:6 / /tmp/x/rootfs/dev/pts rw - devpts devpts rw",
        "42 22 0:7 / /tmp/x/rootfs/proc rw - proc proc rw",
        "43 22 0:8 / /tmp/x/rootfs2/proc rw - proc proc rw",
        r"44 22 0:9 / /tmp/x/root\040fs/sys rw - sysfs sysfs rw",
    ])
    assert stacks.mounts_under(mountinfo, "/tmp/x/rootfs") == [
        "/tmp/x/rootfs/dev/pts", "/tmp/x/rootfs/dev", "/tmp/x/rootfs/proc"]
    assert stacks.mounts_under(mountinfo, "/tmp/x/root fs/") == ["/tmp/x/root fs/sys"]
    assert stacks.mounts_under(mountinfo, "/elsewhere") == []


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


def test_cli_lists_stacks_as_json(ctx):
    import json

    from tests.conftest import run_paas

    rows = json.loads(run_paas("stacks", "--json").stdout)
    assert [r["name"] for r in rows] == list(stacks.STACKS)
    assert rows[1]["image"] == "paas/stack-python:bookworm" and rows[1]["present"] is False
    assert "python" in run_paas("stacks").stdout
