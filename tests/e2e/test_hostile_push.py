"""Hostile repositories pushed to a real paasd: symlinks out of the repo, crafted trees, submodules, a push over
deploy.max_push_bytes. Nothing may be written outside the build directory and a refused push leaves the running
release serving.

The apps are Dockerfile apps on a busybox image made here (no stack build), served by busybox httpd.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.imagekit import runnable_rootfs
from tests.platformkit import Platform, running_platform

MAX_PUSH_BYTES = 256 * 1024
DOCKERFILE = """FROM bb:1
COPY . /srv/app
EXPOSE 8080
CMD ["httpd", "-f", "-p", "8080", "-h", "/srv/app"]
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    def set_up(p: Platform) -> None:
        config = p.root / "paas.yml"
        config.write_text(config.read_text().replace("deploy:\n", f"deploy:\n  max_push_bytes: {MAX_PUSH_BYTES}\n"))
        _busybox_image(p)

    with running_platform(tmp_path_factory.mktemp("platform"), tools=("nginx", "ssh", "ssh-keygen", "git"),
                          before_start=set_up) as p:
        yield p


def _busybox_image(p: Platform) -> None:
    from paas.context import open_context
    from paas.image.create import image_from_dirs

    ctx = open_context(p.root)
    try:
        image_from_dirs(ctx.store, [runnable_rootfs(p.base / "bb-rootfs")], tag="bb:1", Cmd=["/bin/sh"])
    finally:
        ctx.close()


def unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


def app_repo(platform: Platform, app: str, files: dict[str, str], links: dict[str, str] | None = None) -> Path:
    repo = platform.base / "work" / app
    for name, text in {"Dockerfile": DOCKERFILE, **files}.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    for name, target in (links or {}).items():
        os.symlink(target, repo / name)
    platform.git(repo, "init", "-q", "-b", "main")
    platform.git(repo, "add", "-A")
    platform.git(repo, "commit", "-q", "-m", "first")
    return repo


def git_out(platform: Platform, repo: Path, *args: str, data: bytes | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, check=True,
                          env=env).stdout.decode().strip()


def release(platform: Platform, app: str) -> dict | None:
    return json.loads(platform.paas("apps:info", app, "--json").stdout)["release"]


def image_entries(platform: Platform, digest: str) -> dict[str, tarfile.TarInfo]:
    """Every layer entry of an image in the platform's store, by path (later layers win)."""
    blobs = platform.root / "images" / "blobs" / "sha256"
    manifest = json.loads((blobs / digest.split(":")[1]).read_text())
    entries: dict[str, tarfile.TarInfo] = {}
    for layer in manifest["layers"]:
        with tarfile.open(blobs / layer["digest"].split(":")[1], "r:*") as tar:
            entries.update({m.name.removeprefix("./"): m for m in tar})
    return entries


def test_a_symlink_to_etc_shadow_is_deployed_as_a_link_and_submodules_are_noted(platform, tmp_path):
    app = unique("links")
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = app_repo(platform, app, {"index.html": "hello links\n"},
                    {"shadow": "/etc/shadow", "host-dir": str(outside)})
    # a submodule: a gitlink entry and .gitmodules (git add of a nested repo's commit, as `git submodule add` does)
    (repo / ".gitmodules").write_text('[submodule "vendor/lib"]\n\tpath = vendor/lib\n\turl = https://example.invalid/x\n')
    git_out(platform, repo, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},vendor/lib")
    git_out(platform, repo, "add", ".gitmodules")
    git_out(platform, repo, "commit", "-q", "-m", "submodule")

    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output  # absolute symlinks are content: the deploy succeeds
    notes = [line for line in pushed.output.splitlines() if "submodules are not checked out" in line]
    assert len(notes) == 1 and "(vendor/lib)" in notes[0] and notes[0].startswith("remote:"), pushed.output
    assert platform.get(app, "/index.html") == (200, "hello links\n")

    entries = image_entries(platform, release(platform, app)["image_digest"])
    shadow = entries["srv/app/shadow"]
    assert shadow.issym() and shadow.linkname == "/etc/shadow"  # the link, not the host's file
    assert entries["srv/app/host-dir"].issym() and entries["srv/app/host-dir"].linkname == str(outside)
    status, body = platform.get(app, "/shadow")  # inside the container it points at the image's own /etc
    assert status != 200 and "root:" not in body
    assert list(outside.iterdir()) == []


def crafted_commit(platform: Platform, repo: Path, shape: str, victim: Path) -> str:
    """A commit git's porcelain refuses to make: `..` in a path, or `link -> victim` and then `link/file`."""
    def blob(data: bytes) -> str:
        return git_out(platform, repo, "hash-object", "-w", "--stdin", data=data)

    def tree(*entries: tuple[str, str, str]) -> str:
        raw = b"".join(f"{mode} {name}".encode() + b"\0" + bytes.fromhex(sha) for mode, name, sha in entries)
        return git_out(platform, repo, "hash-object", "-t", "tree", "--literally", "-w", "--stdin", data=raw)

    content = blob(b"pwned\n")
    if shape == "dotdot":
        root = tree(("040000", "..", tree(("100644", "canary-dotdot", content))), ("100644", "Dockerfile", content))
    else:
        root = tree(("120000", "link", blob(str(victim).encode())),
                    ("040000", "link", tree(("100644", "canary-link", content))))
    return git_out(platform, repo, "commit-tree", "-p", "HEAD", "-m", shape, root)


@pytest.mark.parametrize("shape, says", [("dotdot", "has an unsafe path '../canary-dotdot'"),
                                         ("link-then-file", "has both 'link' and 'link/canary-link'")])
def test_a_crafted_tree_is_refused_and_nothing_is_written_outside(platform, tmp_path, shape, says):
    app = unique(shape)
    repo = app_repo(platform, app, {"index.html": "v1\n"})
    assert platform.push(repo, app).returncode == 0
    victim = tmp_path / "victim"
    victim.mkdir()
    sha = crafted_commit(platform, repo, shape, victim)
    pushed = platform.git(repo, "push", platform.remote(app), f"{sha}:refs/heads/main", check=False)
    output = pushed.stderr + pushed.stdout
    assert pushed.returncode != 0, output
    assert f"remote:  !     deploy failed: commit {sha[:12]} {says}" in output
    assert "the running release (if any) is unchanged" in output
    assert list(victim.iterdir()) == []
    assert not list(platform.base.rglob("canary-*"))
    assert platform.get(app, "/index.html") == (200, "v1\n") and release(platform, app)["version"] == 1


def test_a_push_over_max_push_bytes_is_refused_and_the_release_keeps_serving(platform):
    app = unique("big")
    repo = app_repo(platform, app, {"index.html": "small\n"})
    assert platform.push(repo, app).returncode == 0
    head = git_out(platform, repo, "rev-parse", "HEAD")
    (repo / "big.bin").write_bytes(os.urandom(2 * MAX_PUSH_BYTES))  # random: the pack is as big
    git_out(platform, repo, "add", "big.bin")
    git_out(platform, repo, "commit", "-q", "-m", "big")
    pushed = platform.push(repo, app)
    assert pushed.returncode != 0, pushed.output
    assert "remote: fatal: pack exceeds maximum allowed size (256.00 KiB)" in pushed.output
    assert platform.get(app, "/index.html") == (200, "small\n") and release(platform, app)["version"] == 1
    remote = platform.git(repo, "ls-remote", platform.remote(app), "refs/heads/main").stdout.split()
    assert remote[0] == head  # the branch did not move


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def _wait(condition, what: str, bound_s: float = 120) -> None:
    deadline = time.monotonic() + bound_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {bound_s:g}s: {what}"
        time.sleep(0.2)


def test_a_client_leaving_mid_push_cancels_the_deploy_and_the_next_push_works(platform):
    """The push's ssh dies while its build runs: the build stops, no release is made, the old one keeps serving,
    and the app's lock is free for the next push. The cancelled deploy's version is recorded as aborted."""
    app = unique("leaves")
    repo = app_repo(platform, app, {"index.html": "v1\n"})
    assert platform.push(repo, app).returncode == 0
    marker = f"slow-build-{secrets.token_hex(4)}"
    # a command after the sleep keeps the shell (whose argv names the marker) from exec'ing sleep
    (repo / "Dockerfile").write_text(DOCKERFILE.replace("COPY . /srv/app", f"RUN sleep 600; echo {marker}\n"
                                                                           "COPY . /srv/app"))
    (repo / "index.html").write_text("v2\n")
    git_out(platform, repo, "commit", "-q", "-am", "slow")
    env = {**os.environ, "GIT_SSH_COMMAND": platform.ssh_command(), "GIT_TERMINAL_PROMPT": "0"}
    output = platform.base / f"{app}.push.log"
    with output.open("wb") as log:
        push = subprocess.Popen(["git", "-C", str(repo), "push", platform.remote(app), "HEAD:refs/heads/main"],
                                env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        _wait(lambda: _processes_mentioning(marker) or push.poll() is not None, "the slow RUN step to start")
        assert push.poll() is None, output.read_text()
    finally:
        os.killpg(push.pid, signal.SIGKILL)  # git and its ssh: the connection drops mid-build
        push.wait()

    _wait(lambda: not _processes_mentioning(marker), "the build step to be stopped")
    assert platform.get(app, "/index.html") == (200, "v1\n") and release(platform, app)["version"] == 1
    _wait(lambda: json.loads(platform.paas("releases", app, "--json").stdout)[-1]["finished_at"],
          "the cancelled deploy to be recorded as ended")
    (repo / "Dockerfile").write_text(DOCKERFILE)
    (repo / "index.html").write_text("v3\n")
    git_out(platform, repo, "commit", "-q", "-am", "fast again")
    pushed = platform.push(repo, app)
    assert pushed.returncode == 0, pushed.output  # the lock was released
    assert platform.get(app, "/index.html") == (200, "v3\n") and release(platform, app)["version"] == 3
    releases = {r["version"]: r for r in json.loads(platform.paas("releases", app, "--json").stdout)}
    cancelled = releases[2]  # recorded as what it was: aborted, without an image, never active
    assert cancelled["status"] == "failed" and cancelled["image_digest"] is None, cancelled
    assert cancelled["error"].startswith("aborted:") and "undone" in cancelled["error"], cancelled


def test_a_push_to_a_branch_named_like_shell_code_runs_nothing_and_deploys_nothing(platform, tmp_path):
    """Git allows `$`, `;`, backticks, braces, quotes and unicode in branch names; they reach the hook and the
    push output as data only."""
    app = unique("branches")
    repo = app_repo(platform, app, {"index.html": "v1\n"})
    assert platform.push(repo, app).returncode == 0
    canary = tmp_path / f"pwned-{secrets.token_hex(3)}"
    for branch in (f"x$(touch${{IFS}}{canary})", f"y`touch${{IFS}}{canary}`", f"z;touch${{IFS}}{canary};'\"é{{}}"):
        pushed = platform.push(repo, app, branch=branch)
        assert pushed.returncode == 0, pushed.output
        assert "Traceback" not in pushed.output and "internal error" not in pushed.output, pushed.output
    assert not canary.exists()
    assert release(platform, app)["version"] == 1 and platform.get(app, "/index.html") == (200, "v1\n")
