"""Checking out a pushed commit (paas.receive.checkout) from crafted bare repos: git writes the tree, hostile
trees are refused with one line, and nothing lands outside the build directory.

Hostile trees are made with plumbing (`git hash-object -t tree --literally`), since git's porcelain refuses
to make them; each test checks a canary outside the build directory stays untouched.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from paas.errors import UserError
from paas.receive.checkout import checkout_commit, max_push_bytes, read_tree, receive_pack_env

COMMIT_TIME = 1_500_000_000
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_AUTHOR_DATE": f"{COMMIT_TIME} +0000",
            "GIT_COMMITTER_DATE": f"{COMMIT_TIME} +0000"}


def git(repo: Path, *args: str, data: bytes | None = None) -> str:
    result = subprocess.run(["git", f"--git-dir={repo}", *args], input=data, capture_output=True, check=True,
                            env={**os.environ, **IDENTITY})
    return result.stdout.decode().strip()


def blob(repo: Path, data: bytes) -> str:
    return git(repo, "hash-object", "-w", "--stdin", data=data)


def tree(repo: Path, *entries: tuple[str, str, str]) -> str:
    """A tree of (mode, name, sha) entries written as given: no name checks, duplicates allowed."""
    raw = b"".join(f"{mode} {name}".encode() + b"\0" + bytes.fromhex(sha) for mode, name, sha in entries)
    return git(repo, "hash-object", "-t", "tree", "--literally", "-w", "--stdin", data=raw)


def commit(repo: Path, tree_sha: str) -> str:
    return git(repo, "commit-tree", "-m", "crafted", tree_sha)


@pytest.fixture
def repo(tmp_path) -> Path:
    path = tmp_path / "app.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


@pytest.fixture
def build(tmp_path) -> Path:
    """The build directory's parent: a canary written beside it would show an escape."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def everything_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_a_commit_is_checked_out_with_modes_symlinks_and_the_commit_time(repo, build, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    lib = tree(repo, ("100644", "x.py", blob(repo, b"x = 1\n")))
    sha = commit(repo, tree(repo, ("100644", "app.py", blob(repo, b"print('hi')\n")),
                            ("040000", "lib", lib),
                            ("100755", "run.sh", blob(repo, b"#!/bin/sh\n")),
                            ("120000", "shadow", blob(repo, b"/etc/shadow")),
                            ("120000", "to-outside", blob(repo, str(outside).encode())),
                            ("120000", "up", blob(repo, b"../../../.."))))
    src = checkout_commit(repo, sha, build / "src")
    assert everything_under(src) == ["app.py", "lib", "lib/x.py", "run.sh", "shadow", "to-outside", "up"]
    assert (src / "lib" / "x.py").read_text() == "x = 1\n"
    assert os.readlink(src / "shadow") == "/etc/shadow"  # absolute symlinks are content, kept as links
    assert os.readlink(src / "to-outside") == str(outside) and os.readlink(src / "up") == "../../../.."
    assert stat.S_IMODE((src / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((src / "app.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((src / "lib").stat().st_mode) == 0o755
    assert {int(p.lstat().st_mtime) for p in [src, *src.rglob("*")]} == {COMMIT_TIME}  # as git archive gave
    assert everything_under(build) == ["src", *(f"src/{p}" for p in everything_under(src))]  # no index left
    assert everything_under(outside) == []


def test_checkout_refuses_a_commit_that_is_not_there_or_not_an_id(repo, build):
    with pytest.raises(UserError, match="cannot read commit 000000000000"):
        checkout_commit(repo, "0" * 40, build / "src")
    with pytest.raises(UserError, match="invalid commit id"):
        checkout_commit(repo, "--output=/tmp/x", build / "src")
    assert everything_under(build) == []


def dotdot(repo: Path, content: str) -> str:
    return tree(repo, ("040000", "..", tree(repo, ("100644", "canary", content))))


@pytest.mark.parametrize("shape, shown", [
    ("top", "../canary"),
    ("nested", "a/../../canary"),
    ("dotgit", ".git/hooks/post-checkout"),
    ("DOTGIT", ".GIT/config"),
])
def test_unsafe_paths_are_refused_and_nothing_is_written(repo, build, shape, shown):
    content = blob(repo, b"pwned\n")
    ok = ("100644", "ok", content)
    if shape == "top":
        root = tree(repo, ("040000", "..", tree(repo, ("100644", "canary", content))), ok)
    elif shape == "nested":
        up = tree(repo, ("040000", "..", tree(repo, ("100644", "canary", content))))
        root = tree(repo, ("040000", "a", tree(repo, ("040000", "..", up))), ok)
    elif shape == "dotgit":
        root = tree(repo, ("040000", ".git", tree(repo, ("040000", "hooks", tree(
            repo, ("100755", "post-checkout", content))))), ok)
    else:
        root = tree(repo, ("040000", ".GIT", tree(repo, ("100644", "config", content))), ok)
    sha = commit(repo, root)
    with pytest.raises(UserError, match=f"commit {sha[:12]} has an unsafe path '{shown}'"):
        checkout_commit(repo, sha, build / "src")
    assert everything_under(build) == []
    assert not (build.parent / "canary").exists()


def test_git_itself_refuses_dotdot_paths_too(repo, build):
    """The second line of defence: git's checkout, without our listing check in front of it."""
    content = blob(repo, b"pwned\n")
    sha = commit(repo, tree(repo, ("040000", "..", tree(repo, ("100644", "canary", content))),
                            ("100644", "ok", content)))
    (build / "src").mkdir()
    with pytest.raises(UserError, match=r"git refused to check out .*invalid path '\.\./canary'"):
        read_tree(repo, sha, build / "src")
    assert everything_under(build) == ["src"]
    assert not (build / "canary").exists() and not (build.parent / "canary").exists()


def test_a_file_path_through_a_symlinked_directory_cannot_write_outside(repo, build, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    content = blob(repo, b"pwned\n")
    # `link -> victim` and `link/file` in one tree: git's porcelain never makes this; a crafted push can
    sha = commit(repo, tree(repo, ("120000", "link", blob(repo, str(victim).encode())),
                            ("040000", "link", tree(repo, ("100644", "file", content)))))
    with pytest.raises(UserError, match="has both 'link' and 'link/file'"):
        checkout_commit(repo, sha, build / "src")
    assert everything_under(build) == [] and everything_under(victim) == []

    (build / "src").mkdir()  # git alone: it never writes through the link either
    read_tree(repo, sha, build / "src")
    assert not (build / "src" / "link").is_symlink()
    assert everything_under(victim) == []


def test_a_duplicate_entry_is_refused(repo, build):
    sha = commit(repo, tree(repo, ("100644", "a", blob(repo, b"1")), ("100644", "a", blob(repo, b"2"))))
    with pytest.raises(UserError, match="has 'a' twice"):
        checkout_commit(repo, sha, build / "src")
    assert everything_under(build) == []


def test_submodules_are_left_out_with_one_note(repo, build):
    modules = blob(repo, b'[submodule "vendor/lib"]\n\tpath = vendor/lib\n\turl = https://example.invalid/x.git\n')
    vendor = tree(repo, ("160000", "lib", "1" * 40))
    sha = commit(repo, tree(repo, ("100644", ".gitmodules", modules), ("100644", "app.py", blob(repo, b"")),
                            ("040000", "vendor", vendor)))
    notes: list[str] = []
    src = checkout_commit(repo, sha, build / "src", note=notes.append)
    assert len(notes) == 1 and "submodules are not checked out (vendor/lib)" in notes[0]
    assert not list((src / "vendor" / "lib").iterdir())  # an empty directory, nothing fetched
    assert (src / "app.py").exists()


def test_a_tree_over_the_size_cap_is_refused_before_anything_is_written(repo, build):
    """Compressible content makes a tiny pack (under receive.maxInputSize) of a big tree: the checkout counts."""
    sha = commit(repo, tree(repo, ("100644", "zeros", blob(repo, b"\0" * 20_000)),
                            ("100644", "small", blob(repo, b"x"))))
    with pytest.raises(UserError, match=r"holds 20001 bytes of files, over deploy.max_push_bytes \(10000\)"):
        checkout_commit(repo, sha, build / "src", max_bytes=10_000)
    assert everything_under(build) == []
    assert checkout_commit(repo, sha, build / "src", max_bytes=20_001).exists()


class Config(dict):
    def get(self, dotted, default=None):
        return super().get(dotted, default)


def test_max_push_bytes_comes_from_the_config():
    assert max_push_bytes(Config()) == 1 << 30
    assert max_push_bytes(Config({"deploy.max_push_bytes": 5})) == 5
    for bad in ("1g", 0, True):
        with pytest.raises(UserError, match="deploy.max_push_bytes is"):
            max_push_bytes(Config({"deploy.max_push_bytes": bad}))


def work_repo(tmp_path: Path, files: dict[str, bytes]) -> Path:
    work = tmp_path / "work-repo"
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    env = {**os.environ, **IDENTITY}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", "-C", str(work), *args], check=True, env=env, capture_output=True)
    return work


def push(work: Path, repo: Path, receive_pack: str = "git-receive-pack") -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(work), "push", f"--receive-pack={receive_pack}", str(repo), "main"],
                          capture_output=True, text=True, env={**os.environ, **IDENTITY})


def test_receive_pack_stops_reading_a_pack_over_the_cap(repo, tmp_path):
    work = work_repo(tmp_path, {"random.bin": os.urandom(200_000)})
    env = receive_pack_env(Config({"deploy.max_push_bytes": 100_000}))
    # git clears GIT_CONFIG_* for a local receive-pack: hand them over the way paasd's SSH session does
    pushed = push(work, repo, "env " + " ".join(f"{k}={v}" for k, v in env.items()) + " git-receive-pack")
    assert pushed.returncode != 0
    assert "remote: fatal: pack exceeds maximum allowed size (97.66 KiB)" in pushed.stderr
    assert git(repo, "for-each-ref") == "" and not list((repo / "objects" / "pack").glob("*.pack"))
    env = receive_pack_env(Config({"deploy.max_push_bytes": 300_000}))
    pushed = push(work, repo, "env " + " ".join(f"{k}={v}" for k, v in env.items()) + " git-receive-pack")
    assert pushed.returncode == 0, pushed.stderr


HOOK = """#!/bin/sh
exec {python} -c '
import sys
from pathlib import Path
from paas.receive.checkout import checkout_commit
old, new, ref = sys.stdin.read().split()
checkout_commit(Path("."), new, Path(sys.argv[1]))
sys.exit(1)  # reject: the objects never leave the quarantine
' {dest}
"""


def test_checkout_reads_the_pushed_objects_from_the_pre_receive_quarantine(repo, tmp_path):
    dest = tmp_path / "checked-out"
    hook = repo / "hooks" / "pre-receive"
    hook.write_text(HOOK.format(python=sys.executable, dest=dest))
    hook.chmod(0o755)
    work = work_repo(tmp_path, {"app.py": b"print('quarantined')\n", "lib/x.py": b""})
    sha = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    pushed = push(work, repo)
    assert pushed.returncode != 0 and "pre-receive hook declined" in pushed.stderr
    assert (dest / "app.py").read_text() == "print('quarantined')\n" and (dest / "lib" / "x.py").exists()
    missing = subprocess.run(["git", f"--git-dir={repo}", "cat-file", "-e", sha], capture_output=True)
    assert missing.returncode != 0  # it was only ever in the quarantine
