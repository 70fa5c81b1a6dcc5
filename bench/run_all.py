"""Run every side-by-side benchmark and print one table of their figures; write it as JSON and markdown.

Each bench/<name>.py runs in turn as its own process, with $BENCH_REPORT naming a file where it appends its figures
(bench/report.py); its output goes to the terminal and to a log file. A script that cannot run here (a missing
tool, a failure) gives a row that says why, and the others still run. At the end: the table (figure, ours, peer,
ratio ours/peer, goal, verdict), and under bench/results/:

  <UTC time>.json   the run: when, mode, commit, the machine (CPU model, cores, RAM, kernel, Debian version, load
                    average at the start and end), each script's exit status and time, every figure;
  latest.json, latest.md   the same, and the table as markdown for the README (only a full run of all of them);
  logs/<UTC time>/<name>.log   each script's output.

--quick runs each script with few repetitions and small inputs, to check the harness (figures not comparable);
its results go to bench/results/quick/ and leave latest.* alone.

    bench/run_all.sh [--quick] [--only NAME,NAME] [--skip NAME,NAME] [--timeout MINUTES]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from report import REPORT_ENV, Figure, git_commit, machine_facts, read_figures, render_markdown, render_text

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
KILL_AFTER_S = 300  # after SIGTERM at the timeout, before SIGKILL

# every side-by-side benchmark, in the order they run; the value: its arguments for --quick
BENCHES: dict[str, list[str]] = {
    "registry_transfer": ["--reps", "1", "--warmup", "0", "--mb", "20"],
    "layer_extract": ["--reps", "1", "--warmup", "0", "--small-files", "2000"],
    "container_start": ["--reps", "2", "--warmup", "1", "--rss-containers", "2", "--profile-runs", "1"],
    "build": ["--reps", "1", "--warmup", "0", "--files", "1000", "--deps-files", "200"],
    "buildpacks": ["--reps", "1"],
    "deploy": ["--reps", "1", "--cold-reps", "1"],
    "routing": ["--seconds", "1", "--reps", "1"],
    "access": ["--reps", "200"],
    "dashboard": ["--containers", "5", "--rounds", "3", "--requests", "30", "--log-lines", "5"],
    "swarm": ["--reps", "1", "--scale-reps", "1"],
}


def names_of(text: str) -> list[str]:
    names = [n.strip().removesuffix(".py") for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"no benchmark named {', '.join(unknown)}: choose from {', '.join(BENCHES)}")
    return names


def last_line(log: Path) -> str:
    """The last line a script wrote that says something (its error, mostly)."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def run_one(name: str, args: list[str], log: Path, figures_file: Path, timeout_s: float) -> dict:
    """Run bench/<name>.py, its output to the terminal and to log; what happened, for the run's JSON."""
    print(f"== bench/{name}.py {' '.join(args)}   (log: {log.relative_to(REPO)})", flush=True)
    env = {**os.environ, REPORT_ENV: str(figures_file), "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    with open(log, "wb") as out, subprocess.Popen([sys.executable, str(BENCH / f"{name}.py"), *args], env=env,
                                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        # SIGTERM first: its workspace cleans up (after a peer tool's call in flight); SIGKILL if that hangs
        watchdogs = [threading.Timer(timeout_s, proc.terminate), threading.Timer(timeout_s + KILL_AFTER_S, proc.kill)]
        for watchdog in watchdogs:
            watchdog.daemon = True
            watchdog.start()
        try:
            for line in proc.stdout:
                out.write(line)
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            code = proc.wait()
        finally:
            for watchdog in watchdogs:
                watchdog.cancel()
        timed_out = time.monotonic() - started >= timeout_s
    seconds = time.monotonic() - started
    error = ""
    if timed_out:
        error = f"stopped after {timeout_s / 60:g} min (--timeout)"
    elif code != 0:
        error = last_line(log)
    return {"name": name, "args": args, "exit": code, "seconds": round(seconds, 1), "error": error,
            "log": str(log.relative_to(REPO))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions, small inputs: checks the harness")
    parser.add_argument("--only", default="", help="comma-separated benchmarks to run (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--timeout", type=float, default=90, help="minutes one benchmark may take (default 90)")
    args = parser.parse_args()
    chosen = names_of(args.only) if args.only else list(BENCHES)
    skipped = set(names_of(args.skip)) if args.skip else set()
    chosen = [n for n in chosen if n not in skipped]

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = BENCH / "results" / ("quick" if args.quick else "")
    logs = BENCH / "results" / "logs" / (stamp + ("-quick" if args.quick else ""))
    logs.mkdir(parents=True, exist_ok=True)
    run = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "mode": "quick" if args.quick else "full",
           "commit": git_commit(REPO), "machine": machine_facts(), "benches": [], "figures": []}
    started = time.monotonic()
    for name in chosen:
        figures_file = logs / f"{name}.figures.jsonl"
        bench_args = BENCHES[name] if args.quick else []
        outcome = run_one(name, bench_args, logs / f"{name}.log", figures_file, args.timeout * 60)
        figures = read_figures(figures_file)
        if outcome["exit"] != 0:
            why = outcome["error"] or f"exited {outcome['exit']}"
            figures.append(Figure(name, "(did not finish)" if figures else "(not run)", note=why))
        elif not figures:
            figures.append(Figure(name, "(no figures)", note="the script reported nothing"))
        run["benches"].append(outcome)
        run["figures"] += [f.to_dict() for f in figures]
    run["seconds"] = round(time.monotonic() - started, 1)
    run["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)

    results.mkdir(parents=True, exist_ok=True)
    text = json.dumps(run, indent=2) + "\n"
    markdown = render_markdown(run)
    (results / f"{stamp}.json").write_text(text)
    written = [f"{stamp}.json"]
    if chosen == list(BENCHES):
        (results / "latest.json").write_text(text)
        (results / "latest.md").write_text(markdown)
        written += ["latest.json", "latest.md"]
    print()
    print(markdown.split("\n", 1)[0])
    print()
    print(render_text([Figure.from_dict(f) for f in run["figures"]]), end="")
    print(f"\nwritten in {results.relative_to(REPO)}: {', '.join(written)}; logs in {logs.relative_to(REPO)}")
    if any(b["exit"] != 0 for b in run["benches"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
