"""Stacks: base images built on this machine from Debian packages (`FROM paas/stack-python:trixie`).

A stack is a row of STACKS: Debian packages, the language version each Debian release (suite) ships, image
Env. Every stack but `static` is built for each suite in SUITES (bookworm = Debian 12, trixie = Debian 13);
the app's requested language version picks the suite (paas.detect.versions), the default suite
(`stacks.default_suite`) when it asks for none. mmdebstrap builds the root from this host's Debian mirrors (for
another suite the same URIs), pruned (docs, man pages, locales, apt lists never land), as a one-layer image
`paas/stack-<name>:<suite>` in the store.

What every app of a language repeats is done once here, in the stack: the `app` user (uid APP_UID, group app,
a home) and /app owned by it in every stack that runs apps, and for python a ready virtualenv at /opt/venv
(VIRTUAL_ENV and PATH in the image Env). Both are mmdebstrap customize hooks run through chroot inside the
new root, so nothing from the root runs on the host.

Reuse, cheapest first: the store (an image with the same `io.paas.stack.inputs` label, unless rebuild), the
machine cache (`PAAS_STACK_CACHE`: the layer tar of every built root, keyed by the mmdebstrap inputs; another data
root loads it in a second or two, same image digest), mmdebstrap (about a minute per stack). A built stack
records the Release dates of its dists (label `io.paas.stack.archive`); `paas stacks:update` rebuilds the ones
whose suite has newer packages. The operator can point a stack at a registry image instead
(`stacks: {python: {image: REF}}`); nothing is built here then.

One module per concern:
- table: the stacks, suites and the operator's choices about them (data);
- versions: which suite's version meets a request (pure);
- mirrors: this host's apt sources -> mmdebstrap mirror lines; the archive's Release dates;
- plan: the mmdebstrap argv, pruning, reuse keys, image config and labels (pure);
- build: mmdebstrap, finishing the root, the image (side effects);
- cache: the machine cache; make: a stack image in the store, cheapest first; update: `stacks:update`.
"""

from __future__ import annotations

from .build import OutputSummary, finish_rootfs
from .cache import CACHE_ENV, MachineCache
from .make import StackBuild, ensure_stack, ensure_stacks_for, list_stacks, make_stack
from .mirrors import (
    AptSource,
    archive_dists,
    archive_now,
    host_mirrors,
    mirror_lines,
    parse_deb822_sources,
    parse_one_line_sources,
)
from .plan import built_from, image_config, inputs_hash, mmdebstrap_argv, rootfs_key
from .table import (
    APP_USER_COMMANDS,
    DEFAULT_SUITE,
    GO_STD_CACHE,
    MISMATCH_POLICIES,
    STACKS,
    SUITES,
    Progress,
    Stack,
    configured_image,
    default_suite,
    get_stack,
    mismatch_policy,
    parse_stack_name,
    stack_image,
    stacks_named_in,
)
from .update import update_stacks
from .versions import nearest_suite, provided_versions, satisfying_suites, version_satisfies

__all__ = [
    "APP_USER_COMMANDS", "CACHE_ENV", "DEFAULT_SUITE", "GO_STD_CACHE", "MISMATCH_POLICIES", "STACKS", "SUITES",
    "AptSource", "MachineCache", "OutputSummary", "Progress", "Stack", "StackBuild",
    "archive_dists", "archive_now", "built_from", "configured_image", "default_suite", "ensure_stack",
    "ensure_stacks_for", "finish_rootfs", "get_stack", "host_mirrors", "image_config", "inputs_hash",
    "list_stacks", "make_stack", "mirror_lines", "mismatch_policy", "mmdebstrap_argv",
    "nearest_suite", "parse_deb822_sources", "parse_one_line_sources", "parse_stack_name", "provided_versions",
    "rootfs_key", "satisfying_suites", "stack_image", "stacks_named_in", "update_stacks", "version_satisfies",
]
