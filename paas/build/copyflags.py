"""COPY/ADD flags and sources: which ones this builder refuses, and what --link means (pure).

The executor asks `copy_refusal` before it computes a step's cache key, so a refused instruction fails at
once with its line, and `linked` to pick the step's root: the stage's filesystem, or an empty tree.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ..errors import DockerfileError
from . import instructions as I


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


_GIT_SCP = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:")


def is_git_source(source: str) -> bool:
    """A source BuildKit's ADD clones as a git repository (dfgitutil.ParseGitRef): git://, ssh://,
    user@host:path, or an http(s) URL whose path ends in .git."""
    if source.startswith(("git://", "ssh://")) or _GIT_SCP.match(source):
        return True
    if source.startswith(("http://", "https://")):
        return urlsplit(source).path.endswith(".git")
    return False


def copy_refusal(instruction: I.Copy | I.Add) -> DockerfileError | None:
    """Why this builder refuses an (expanded) COPY/ADD before running it, or None.

    BuildKit's own checks come first, with its words (dispatchCopy). Then what this builder does not do:
    clone git sources (BuildKit's ADD does; --keep-git-dir only means something for them); --parents and
    --exclude (out of BuildKit's labs since late 2025, moby/buildkit#6282 and #6232; their pattern rules,
    `**` and the `/./` pivot, are BuildKit's patternmatcher's); --link with a --chown name (BuildKit copies
    a --link step into an empty tree, where no /etc/passwd names the user: it fails with "invalid user
    index: -1", and rejects it while parsing since moby/buildkit#7134).
    """
    keyword = instruction.KEYWORD
    sources = instruction.sources
    if isinstance(instruction, I.Copy):
        if any(is_git_source(s) for s in sources):
            return instruction.error("source can't be a git ref for COPY", "clone it in a RUN step instead")
        if any(is_url(s) for s in sources):
            return instruction.error("source can't be a URL for COPY", "use ADD URL DEST, or curl in a RUN step")
    if isinstance(instruction, I.Add) and instruction.checksum is not None:
        if len(sources) != 1:
            return instruction.error("checksum can't be specified for multiple sources",
                                     "give each URL its own ADD --checksum")
        if not is_url(sources[0]):
            return instruction.error("checksum requires HTTP(S) or Git sources", "drop --checksum for local files")
    no_git = "clone the repository in a RUN step (git clone URL DIR), or add its files to the build context"
    if isinstance(instruction, I.Add) and instruction.keep_git_dir is not None:
        return instruction.error("ADD --keep-git-dir: this builder does not add git repositories", no_git)
    if any(is_git_source(s) for s in sources):
        return instruction.error(f"ADD {next(s for s in sources if is_git_source(s))}: this builder "
                                 "does not add git repositories", no_git)
    if isinstance(instruction, I.Copy) and instruction.parents:
        return instruction.error("COPY --parents is not supported by this builder",
                                 "copy each source to its own destination (COPY x/a.txt /app/x/), or copy the "
                                 "directory that holds them")
    if instruction.excludes:
        return instruction.error(f"{keyword} --exclude is not supported by this builder",
                                 "exclude the files in .dockerignore, or list the sources you want")
    if instruction.link and instruction.chmod is None and instruction.chown and not _numeric_owner(instruction.chown):
        return instruction.error(f"{keyword} --link --chown={instruction.chown}: --link copies into an empty tree, "
                                 "which has no users or groups to look names up in",
                                 "write a numeric --chown=UID:GID, or drop --link")
    return None


def _numeric_owner(chown: str) -> bool:
    return all(part == "root" or part.isdigit() for part in chown.split(":"))


def linked(instruction: I.Instruction) -> bool:
    """COPY/ADD --link: copied into an empty tree whose layer goes over the stage (BuildKit's MergeOp),
    not into the stage's filesystem. BuildKit ignores --link when --chmod is given."""
    return isinstance(instruction, (I.Copy, I.Add)) and instruction.link and instruction.chmod is None
