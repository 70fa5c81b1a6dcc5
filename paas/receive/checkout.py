"""A pushed commit's tree written into a build directory by git itself, and the size cap on pushes.

Git, not `git archive | tarfile`: git's checkout refuses unsafe paths (`..`, `.git`, absolute) and never writes
through a symlink, so a hostile tree cannot reach outside the directory (Python's tar filters have had bypasses,
CVE-2025-4517). The tree listing is checked first anyway, for a one-line error naming the path and for the cap.

Inside the pre-receive hook the pushed objects are still in git's quarantine; the git commands here inherit the
hook's GIT_OBJECT_DIRECTORY / GIT_ALTERNATE_OBJECT_DIRECTORIES, so the commit is checked out before git accepts it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import proc
from ..errors import CommandFailed, DiskFull, UserError

DEFAULT_MAX_PUSH_BYTES = 1 << 30  # deploy.max_push_bytes: a push's pack, and the tree it checks out
SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
SYMLINK, GITLINK, EXECUTABLE = "120000", "160000", "100755"


@dataclass(frozen=True)
class Entry:
    """One non-directory entry of `git ls-tree -r -l`."""

    mode: str
    size: int  # 0 for gitlinks
    path: str


def max_push_bytes(config: Any) -> int:
    value = config.get("deploy.max_push_bytes", DEFAULT_MAX_PUSH_BYTES)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"deploy.max_push_bytes is {value!r}, not a positive number of bytes",
                        "set it in paas.yml, e.g. 1073741824 for 1 GiB")
    return value


def receive_pack_env(config: Any) -> dict[str, str]:
    """Env for git-receive-pack: git stops reading a pack past the cap, before it fills the disk. unpackLimit=1
    sends every pack through index-pack, whose refusal names the cap (`remote: fatal: pack exceeds maximum
    allowed size (1.00 MiB)`); unpack-objects' does not."""
    settings = {"receive.maxInputSize": str(max_push_bytes(config)), "receive.unpackLimit": "1"}
    env = {"GIT_CONFIG_COUNT": str(len(settings))}
    for i, (key, value) in enumerate(settings.items()):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return env


def checkout_commit(repo: Path, commit: str, dest: Path, *, max_bytes: int = DEFAULT_MAX_PUSH_BYTES,
                    note: Callable[[str], None] | None = None) -> Path:
    """Write commit's tree (no .git) into dest, a new directory; file times are the commit's time and modes
    0644/0755, as `git archive` gave them, so the same commit builds the same layers. Submodules are left out
    (an empty directory), said once through note. Raises UserError for an unsafe or oversized tree."""
    if not SHA.fullmatch(commit):
        raise UserError(f"invalid commit id {commit!r}", "deploy a full commit id")
    entries = list_tree(repo, commit)
    check_tree(entries, commit, max_bytes)
    submodules = [e.path for e in entries if e.mode == GITLINK]
    if note and (submodules or any(e.path == ".gitmodules" for e in entries)):
        note(f"submodules are not checked out ({', '.join(submodules) or '.gitmodules'}): "
             "commit their files into the repository to deploy them")
    dest.mkdir(parents=True)
    read_tree(repo, commit, dest)
    _normalise(dest, entries, _commit_time(repo, commit))
    return dest


def _git(repo: Path, *args: str, desc: str, env: Mapping[str, str] | None = None) -> bytes:
    # the host's system/global git config (filters, fsmonitor, submodule.recurse) has no say in a deploy
    full_env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, **(env or {})}
    return proc.run(["git", f"--git-dir={repo}", *args], desc=desc, env=full_env).stdout


def list_tree(repo: Path, commit: str) -> list[Entry]:
    try:
        raw = _git(repo, "ls-tree", "-r", "-l", "-z", "--full-tree", commit, desc="git ls-tree")
    except CommandFailed as exc:
        raise UserError(f"cannot read commit {commit[:12]}: {exc.one_line()}", "push the commit again") from exc
    entries = []
    for record in raw.split(b"\0"):
        if record:
            meta, _, path = record.partition(b"\t")
            mode, _kind, _obj, size = meta.split()
            entries.append(Entry(mode.decode(), int(size) if size != b"-" else 0, os.fsdecode(path)))
    return entries


def check_tree(entries: list[Entry], commit: str, max_bytes: int) -> None:
    """Refuse what git's own checkout refuses too (a second line of defence), with a clear one-line error."""
    files: set[str] = set()
    for entry in entries:
        parts = entry.path.split("/")
        if any(p in ("", ".", "..") or p.lower() == ".git" for p in parts):
            raise UserError(f"commit {commit[:12]} has an unsafe path {entry.path!r}",
                            "remove it from the repository's history and push again")
        if entry.path in files:
            raise UserError(f"commit {commit[:12]} has {entry.path!r} twice (a malformed tree)",
                            "rewrite the commit with a regular git client and push again")
        files.add(entry.path)
    for entry in entries:  # a path both a file (or symlink) and a directory: a crafted tree
        parts = entry.path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in files:
                raise UserError(f"commit {commit[:12]} has both {'/'.join(parts[:i])!r} and {entry.path!r} "
                                "(a malformed tree)", "rewrite the commit with a regular git client and push again")
    total = sum(e.size for e in entries)
    if total > max_bytes:
        raise UserError(f"commit {commit[:12]} holds {total} bytes of files, over deploy.max_push_bytes "
                        f"({max_bytes})", "remove large files from the repository or raise deploy.max_push_bytes")


def _no_room_for(repo: Path, commit: str, message: str, dest: Path) -> bool:
    """git's `unable to write file PATH` came from a full filesystem: PATH is larger than the space left (git
    removed what it had written of it)."""
    unwritten = re.search(r"unable to write file (.+?)\s*$", message, re.M)
    if unwritten is None:
        return False
    try:
        size = int(_git(repo, "cat-file", "-s", f"{commit}:{unwritten.group(1)}", desc="git cat-file"))
    except (CommandFailed, ValueError):
        return False
    return size >= shutil.disk_usage(dest.parent).free


def read_tree(repo: Path, commit: str, dest: Path) -> None:
    """git's own checkout (read-tree -u into a private index): hooks never run, the repo's index is not touched."""
    with tempfile.TemporaryDirectory(prefix="paas-index-", dir=dest.parent) as tmp:
        try:
            _git(repo, f"--work-tree={dest}", "read-tree", "-u", "--reset", commit, desc="git read-tree",
                 env={"GIT_INDEX_FILE": os.path.join(tmp, "index")})
        except CommandFailed as exc:
            if _no_room_for(repo, commit, str(exc), dest):
                raise DiskFull(str(dest.parent)) from exc  # git's message names the file, not the cause
            raise UserError(f"git refused to check out commit {commit[:12]}: {exc.one_line()}",
                            "fix the named path in the repository and push again") from exc


def _commit_time(repo: Path, commit: str) -> int:
    return int(_git(repo, "show", "-s", "--format=%ct", f"{commit}^{{commit}}", desc="git show"))


def _normalise(dest: Path, entries: list[Entry], mtime: int) -> None:
    """Modes independent of the umask, times of the commit (as `git archive` gives them). Every directory on
    these paths was made by git (check_tree refused a symlink on a path), so nothing here leaves dest."""
    times = (mtime, mtime)
    dirs: set[str] = set()
    for entry in entries:
        path = os.path.join(dest, entry.path)
        if entry.mode == GITLINK:  # an empty directory, if git made one
            dirs.add(entry.path)
        elif entry.mode != SYMLINK:
            os.chmod(path, 0o755 if entry.mode == EXECUTABLE else 0o644)
        if os.path.lexists(path):
            os.utime(path, times, follow_symlinks=False)
        parent = os.path.dirname(entry.path)
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = os.path.dirname(parent)
    for rel in dirs:
        path = os.path.join(dest, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o755)
            os.utime(path, times)
    os.utime(dest, times)
