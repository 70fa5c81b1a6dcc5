"""The figures of the side-by-side benchmarks, as data: each bench script hands its figures to report() (through
_common), which appends them as JSON lines to the file named by $BENCH_REPORT; bench/run_all.py gathers them from
every script and renders one table (text for the terminal, markdown for the README) and one JSON document.

A Figure is one line of the table: what was measured, our value, the peer's value and name, the ratio ours/peer
(one direction for every row: below 1 means ours is smaller, which is better for times and worse for throughput;
the goal says which way is good), the goal and whether it was met. A figure that could not be measured here
carries no values and says why in its note.

Pure apart from report() (appends to a file) and machine_facts() (reads /proc and /etc): no paas imports, so that
run_all.py and the unit tests load it without a data root.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

REPORT_ENV = "BENCH_REPORT"


@dataclass(frozen=True)
class Figure:
    bench: str  # the script: registry_transfer, layer_extract, ...
    figure: str  # what was measured
    unit: str = ""
    ours: float | None = None
    peer: float | None = None
    peer_name: str = ""
    goal: str = ""  # "ratio <= 1.3x", ">= 0.8x of peer", "<= 5 s", "" (no goal)
    ok: bool | None = None  # None: no goal, or nothing measured
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """ours / peer."""
        if self.ours is None or not self.peer:
            return None
        return self.ours / self.peer

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}

    @classmethod
    def from_dict(cls, data: dict) -> Figure:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def figure(bench: str, what: str, ours: float | None, unit: str, *, peer: float | None = None, peer_name: str = "",
           max_ratio: float | None = None, min_ratio: float | None = None, at_most: float | None = None,
           at_least: float | None = None, note: str = "") -> Figure:
    """A measured figure with its goals: max_ratio/min_ratio bound ours/peer, at_most/at_least bound ours (in unit).
    ok is whether every goal given is met (None without goals, or when a value a goal needs is missing)."""
    goals: list[str] = []
    checks: list[bool | None] = []
    ratio = ours / peer if ours is not None and peer else None
    for bound, text, holds in ((max_ratio, "ratio <= {:g}x", lambda r, b: r <= b),
                               (min_ratio, "ratio >= {:g}x", lambda r, b: r >= b)):
        if bound is not None:
            goals.append(text.format(bound))
            checks.append(None if ratio is None else holds(ratio, bound))
    for bound, text, holds in ((at_most, "<= {:g} {}", lambda v, b: v <= b),
                               (at_least, ">= {:g} {}", lambda v, b: v >= b)):
        if bound is not None:
            goals.append(text.format(bound, unit).rstrip())
            checks.append(None if ours is None else holds(ours, bound))
    ok = None if not checks or None in checks else all(checks)
    return Figure(bench, what, unit, ours, peer, peer_name, ", ".join(goals), ok, note)


def not_measured(bench: str, what: str, why: str) -> Figure:
    return Figure(bench, what, note=why)


# -- writing and reading the figures of one run ------------------------------------------------------------------


def report(*figures: Figure, path: str | None = None) -> None:
    """Append the figures to $BENCH_REPORT (or path) as JSON lines, at once: a script that fails later keeps what
    it measured. Without a file to write to (a script run by hand) nothing is written."""
    target = path or os.environ.get(REPORT_ENV)
    if not target:
        return
    with open(target, "a", encoding="utf-8") as fh:
        for fig in figures:
            fh.write(json.dumps(fig.to_dict()) + "\n")


def read_figures(path: Path) -> list[Figure]:
    if not path.exists():
        return []
    return [Figure.from_dict(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


# -- rendering ---------------------------------------------------------------------------------------------------


def format_value(value: float | None, unit: str) -> str:
    """Three significant figures or so, with the unit: 1234 req/s, 45.6 ms, 0.123 %."""
    if value is None:
        return "-"
    size = abs(value)
    if size >= 100 or (size == int(size) and unit in ("", "requests")):
        text = f"{value:.0f}"
    elif size >= 10:
        text = f"{value:.1f}"
    elif size >= 1 or size == 0:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def verdict(fig: Figure) -> str:
    if fig.ours is None and fig.peer is None:
        return "not measured"
    if fig.ok is None:
        return "no goal" if not fig.goal else "-"
    return "ok" if fig.ok else "MISSED"


def table_rows(figures: list[Figure]) -> list[list[str]]:
    """Header plus one row per figure: bench, figure, ours, peer, ratio, goal, verdict, note."""
    rows = [["bench", "figure", "ours", "peer", "ratio", "goal", "verdict", "note"]]
    for fig in figures:
        peer = format_value(fig.peer, fig.unit)
        if fig.peer is not None and fig.peer_name:
            peer = f"{fig.peer_name} {peer}"
        ratio = "-" if fig.ratio is None else f"{fig.ratio:.2f}x"
        rows.append([fig.bench, fig.figure, format_value(fig.ours, fig.unit), peer, ratio, fig.goal or "-",
                     verdict(fig), fig.note])
    return rows


def render_text(figures: list[Figure]) -> str:
    """A plain table for the terminal: aligned columns, the note last and unpadded."""
    rows = table_rows(figures)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for n, row in enumerate(rows):
        padded = zip(row[:-1], widths, strict=True)
        cells = [cell.rjust(w) if i in (2, 3, 4) else cell.ljust(w) for i, (cell, w) in enumerate(padded)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  ----")
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def machine_line(machine: dict) -> str:
    return (f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {machine.get('ram_gib', '?')} GiB RAM, "
            f"{machine.get('os', '?')} (Debian {machine.get('debian', '?')}), kernel {machine.get('kernel', '?')}")


def render_markdown(run: dict) -> str:
    """The run as markdown: when, where, which commit, then the table (for the README)."""
    machine = run.get("machine", {})
    load = machine.get("loadavg_start"), machine.get("loadavg_end")
    lines = [f"Run {run.get('started', '?')} ({run.get('mode', 'full')} mode, commit {run.get('commit', '?')}, "
             f"{run.get('seconds', 0):.0f} s) on {machine_line(machine)}; load average "
             f"{load[0] if load[0] is not None else '?'} at the start, {load[1] if load[1] is not None else '?'} "
             "at the end. Ratio = ours / peer.", ""]
    rows = table_rows([Figure.from_dict(f) for f in run.get("figures", [])])
    lines.append("| " + " | ".join(rows[0]) + " |")
    lines.append("|" + "|".join("---:" if i in (2, 3, 4) else "---" for i in range(len(rows[0]))) + "|")
    for row in rows[1:]:
        lines.append("| " + " | ".join(_md_cell(cell) for cell in row) + " |")
    failed = [b for b in run.get("benches", []) if b.get("exit") != 0]
    if failed:
        lines.append("")
        for bench in failed:
            lines.append(f"- `bench/{bench['name']}.py` exited {bench.get('exit')}: {bench.get('error') or '?'}")
    return "\n".join(lines) + "\n"


# -- where it ran ------------------------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_facts() -> dict:
    """CPU model, cores, RAM, kernel, Debian version, Python, load average now."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal:")), 0)
    os_release = dict(line.split("=", 1) for line in _read("/etc/os-release").splitlines() if "=" in line)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / (1 << 20), 1),
        "kernel": platform.release(),
        "debian": _read("/etc/debian_version").strip() or "?",
        "os": os_release.get("PRETTY_NAME", "?").strip('"'),
        "python": sys.version.split()[0],
        "loadavg_start": round(os.getloadavg()[0], 2),
    }


def git_commit(repo: Path) -> str:
    """The checkout's commit, with `+changes` when the tree differs from it."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+changes" if dirty else "")
