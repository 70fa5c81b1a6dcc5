"""Which suite's stack meets a requested language version: the version each suite provides, requests read as
the ecosystems write them (">=3.8,<3.13", "^18", "~> 3.1", "18.x", "||"), and the nearest suite when none
does. Pure: paas.detect.versions calls these to pick a suite."""

from __future__ import annotations

import re

from .table import get_stack


def provided_versions(name: str) -> list[tuple[str, str]]:
    """(suite, version) for each suite the stack is built for, oldest first."""
    return list(get_stack(name).versions)

_CONSTRAINT = re.compile(r"(>=|<=|~>|~=|==|!=|>|<|=|\^|~)?\s*v?(\d+(?:\.(?:\d+|[xX*]))*|[xX*])")


def _numbers(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("."):
        if not part.isdigit():
            break  # a wildcard ends the version: 3.x -> (3,)
        out.append(int(part))
    return tuple(out)


def _satisfies(provided: tuple[int, ...], op: str, wanted: tuple[int, ...]) -> bool:
    """Does the provided major.minor meet `op wanted`? Compared at the provided precision."""
    if not wanted:
        return True  # "*" / "x"
    n = len(provided)
    cut = wanted[:n] + (0,) * (n - len(wanted))
    prefix = provided[:len(wanted)] == wanted[:n]
    if op in ("", "=", "=="):
        return prefix
    if op == "!=":
        return not prefix
    if op == ">=":
        return provided >= cut
    if op == ">":
        return provided > cut
    if op == "<=":
        return provided <= cut or prefix
    if op == "<":
        return provided < cut
    if op == "^":  # npm caret: same leftmost non-zero part, not older
        lead = next((i for i, v in enumerate(wanted) if v), len(wanted) - 1)
        return provided[:lead + 1] == wanted[:lead + 1][:n] and provided >= cut
    if op == "~":  # npm tilde: same major.minor (or major when only that is given)
        return provided[:min(len(wanted), 2)] == wanted[:min(len(wanted), 2, n)] and provided >= cut
    # ~> (ruby) and ~= (python): the last given part may grow
    keep = max(len(wanted) - 1, 1)
    return provided[:keep] == wanted[:keep] and provided >= cut


def version_satisfies(provided: str, requested: str, *, bare_is_minimum: bool = False) -> bool | None:
    """Whether `provided` (major.minor) meets `requested` (a version, a range such as ">=3.8,<3.13",
    "^18", "~> 3.1", "18.x", alternatives with "||"). None when requested is not understood.

    A bare version matches as a prefix ("3.11.4" and "3" both match 3.11), or as a minimum when
    bare_is_minimum (Go: `go 1.18` in go.mod builds with 1.19)."""
    have = _numbers(provided)
    alternatives = [a for a in requested.split("||") if a.strip()]
    if not alternatives:
        return None
    for alternative in alternatives:
        text = alternative.replace(",", " ").strip()
        pos, constraints = 0, []
        while pos < len(text):
            if text[pos].isspace():
                pos += 1
                continue
            match = _CONSTRAINT.match(text, pos)
            if not match:
                return None
            op = match.group(1) or (">=" if bare_is_minimum else "")
            constraints.append((op, _numbers(match.group(2))))
            pos = match.end()
        if constraints and all(_satisfies(have, op, want) for op, want in constraints):
            return True
    return False


def satisfying_suites(name: str, requested: str) -> list[str] | None:
    """The suites whose version of the stack meets requested, oldest first; None when it is not understood."""
    stack = get_stack(name)
    verdicts = {suite: version_satisfies(version, requested, bare_is_minimum=stack.bare_is_minimum)
                for suite, version in stack.versions}
    if any(verdict is None for verdict in verdicts.values()):
        return None
    return [suite for suite, verdict in verdicts.items() if verdict]


def nearest_suite(name: str, requested: str) -> str | None:
    """The suite whose version is next to the first version written in requested: the closest of its neighbours
    below and above (the older one on a tie); None when no version can be read from it."""
    match = _CONSTRAINT.search(requested.split("||")[0])
    wanted = _numbers(match.group(2)) if match else ()
    if not wanted:
        return None
    stack = get_stack(name)
    have = {suite: _numbers(version) for suite, version in stack.versions}

    def cut(version: tuple[int, ...]) -> tuple[int, ...]:
        return (wanted + (0,) * len(version))[:len(version)]

    ordered = sorted(have, key=lambda suite: have[suite])
    below = [suite for suite in ordered if have[suite] <= cut(have[suite])]
    above = [suite for suite in ordered if have[suite] > cut(have[suite])]
    neighbours = below[-1:] + above[:1]
    return min(neighbours, key=lambda suite: tuple(abs(h - w) for h, w in zip(have[suite], cut(have[suite]),
                                                                                strict=True)))
