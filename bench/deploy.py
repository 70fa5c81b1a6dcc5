"""A cold first `git push` of the Flask sample, and a one-line change, each timed until served through nginx.

A whole platform on a temp data root (tests.platformkit.Platform: a real paasd with its SSH server and nginx,
its own bridge, subnet and ports), driven by the real OpenSSH and git clients:

  cold:   the first push of tests/apps/python-pip (Flask + gunicorn from PyPI) on a new platform whose python
          stack is already in the store (`paas stacks:build python`, untimed) and whose build cache and pip
          cache are empty: detect, `pip install`, copy, container start, health check, route. Median of
          --cold-reps, each on a new data root;
  change: N pushes, each changing one line of app.py; timed from `git push` until a GET through nginx (Host
          header, polled every 10 ms from another thread) returns the new text. The deploy prints its own
          phase times (`took receive ..., build ..., start ..., health ..., switch ..., retire ...`); the rest
          of the push (SSH connection, pack transfer, hook start-up) is reported as "ssh+git".

The peer, measured in the same run: Piku's way of deploying a python app (Piku itself is not installable here: no
GitHub). A `git push` (local transport, no SSH) into a bare repository whose post-receive hook checks the code
out, makes a virtualenv, `pip install -r requirements.txt` from PyPI with an empty pip cache, and starts gunicorn
on the host: no image, no isolation, no proxy; timed until GET / answers on its port. The issue's figure for
Piku on this kind of machine (4.6-6.7 s) is printed beside it.

    python bench/deploy.py [--reps 5] [--cold-reps 3]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from _common import REPO, log, measured, median, report, workspace

from tests.platformkit import Platform
from tests.services import free_port

GOAL_S = 1.3       # one-line change -> served
COLD_GOAL_S = 5.0  # cold first push -> served
PIKU_COLD_S = "4.6-6.7"  # the measurement of Piku on this kind of machine
SAMPLE = REPO / "tests" / "apps" / "python-pip"
PHASES_RE = re.compile(r"took (.*)")


def phases_of(output: str) -> dict[str, float]:
    match = PHASES_RE.search(output)
    if not match:
        return {}
    out = {}
    for part in match.group(1).split(","):
        name, _, value = part.strip().partition(" ")
        out[name] = float(value.rstrip("s").strip())
    return out


def served_after(platform: Platform, app: str, expected: str, started: float, stop: threading.Event) -> list[float]:
    """Poll GET / through nginx until it returns expected; the seconds since started go into the result."""
    found: list[float] = []

    def poll() -> None:
        while not stop.is_set():
            try:
                if platform.get(app)[1] == expected:
                    found.append(time.monotonic() - started)
                    return
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.01)

    threading.Thread(target=poll, daemon=True).start()
    return found


def push_and_time(platform: Platform, repo: Path, app: str, expected: str) -> tuple[float, float, dict[str, float]]:
    stop = threading.Event()
    started = time.monotonic()
    found = served_after(platform, app, expected, started, stop)
    pushed = platform.push(repo, app)
    push_s = time.monotonic() - started
    deadline = time.monotonic() + 30
    while not found and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    if pushed.returncode != 0 or not found:
        raise RuntimeError(f"push failed or the new response never came:\n{pushed.output}")
    return found[0], push_s, phases_of(pushed.output)


PEER_HOOK = """#!/bin/sh
# Piku's steps for a python app: check out, virtualenv, pip install, start the server (here: gunicorn)
set -e
while read old new ref; do :; done
git --work-tree="$PEER_APP" checkout -f main
python3 -m venv "$PEER_ENV"
"$PEER_ENV/bin/pip" install -q --no-cache-dir -r "$PEER_APP/requirements.txt"
setsid "$PEER_ENV/bin/gunicorn" app:app --chdir "$PEER_APP" --bind "127.0.0.1:$PEER_PORT" \\
  --pid "$PEER_PID" >"$PEER_LOG" 2>&1 </dev/null &
"""


def peer_cold_push(base: Path, expected: str) -> float:
    """The Piku-style deploy of the sample: seconds from `git push` until GET / answers `expected`."""
    work = base / f"peer-{secrets.token_hex(3)}"
    bare, app_dir, clone = work / "app.git", work / "app", work / "clone"
    port = free_port()
    pid_file = work / "gunicorn.pid"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    hook = bare / "hooks" / "post-receive"
    hook.write_text(PEER_HOOK)
    hook.chmod(0o755)
    app_dir.mkdir(parents=True)
    shutil.copytree(SAMPLE, clone)
    git = ["git", "-C", str(clone), "-c", "user.name=bench", "-c", "user.email=bench@paas.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "sample"], check=True)
    env = {**os.environ, "PEER_APP": str(app_dir), "PEER_ENV": str(work / "env"), "PEER_PORT": str(port),
           "PEER_PID": str(pid_file), "PEER_LOG": str(work / "gunicorn.log")}
    env.pop("PIP_FIND_LINKS", None)  # the host's local wheels: the peer downloads from PyPI as our build does
    started = time.monotonic()
    try:
        subprocess.run([*git, "push", "-q", str(bare), "main"], check=True, env=env, timeout=300, capture_output=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    if answer.read().decode() == expected:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"the peer never answered: {(work / 'gunicorn.log').read_text(errors='replace')[-2000:]}")
    finally:
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        shutil.rmtree(work, ignore_errors=True)


def cold_push(base: Path) -> tuple[float, dict[str, float]]:
    """A new platform with the python stack in its store; its first push of the sample, timed until served."""
    platform = Platform(base / f"cold-{secrets.token_hex(3)}")
    try:
        platform.init()
        platform.start()
        platform.paas("stacks:build", "python")
        app = f"cold-{secrets.token_hex(3)}"
        repo = platform.repo_from(SAMPLE, app)
        seconds, _, phases = push_and_time(platform, repo, app, "hello from python-pip\n")
        return seconds, phases
    finally:
        platform.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="one-line changes (default 5)")
    parser.add_argument("--cold-reps", type=int, default=3, help="cold first pushes, each on a new data root")
    args = parser.parse_args()
    with workspace("deploy") as (base, stack):
        colds, cold_phases, peers = [], [], []
        for rep in range(1, args.cold_reps + 1):
            seconds, phases = cold_push(base)
            colds.append(seconds)
            cold_phases.append(phases)
            log(f"cold {rep}: served after {seconds:.2f}s: {phases}")
            peer = peer_cold_push(base, "hello from python-pip\n")
            peers.append(peer)
            log(f"peer (Piku's steps) {rep}: served after {peer:.2f}s")

        platform = Platform(base / "changes")
        stack.callback(platform.stop)
        platform.init()
        platform.start()
        app = f"bench-{secrets.token_hex(3)}"
        repo = platform.repo_from(SAMPLE, app)
        push_and_time(platform, repo, app, "hello from python-pip\n")

        served, pushes, phases = [], [], []
        current = "hello from python-pip"
        for rep in range(1, args.reps + 1):
            new = f"hello edit {rep} {secrets.token_hex(3)}"
            platform.commit_change(repo, "app.py", current, new)
            current = new
            seconds, push_s, split = push_and_time(platform, repo, app, f"{new}\n")
            served.append(seconds)
            pushes.append(push_s)
            phases.append(split)
            log(f"change {rep}: served after {seconds:.2f}s (push returned after {push_s:.2f}s): {split}")

        print()
        print(f"python sample (Flask + gunicorn from PyPI), cold first push, median of {args.cold_reps}:")
        cold = median(colds)
        peer = median(peers)
        names = [n for n in cold_phases[0] if all(n in p for p in cold_phases)]
        print(f"  paas:                 {cold:.2f}s  (each: " + ", ".join(f"{s:.2f}" for s in colds) + "; "
              + ", ".join(f"{n} {median([p[n] for p in cold_phases]):.2f}s" for n in names) + ")")
        print(f"  Piku's steps on host: {peer:.2f}s  (each: " + ", ".join(f"{s:.2f}" for s in peers)
              + f"; the issue's Piku figure: {PIKU_COLD_S}s)")
        print(f"  ratio paas / peer: {cold / peer:.2f}x; goal <= {COLD_GOAL_S:.1f}s: "
              + ("ok" if cold <= COLD_GOAL_S else "MISSED"))
        report(measured("deploy: cold first push -> served (Flask)", cold, "s", peer=peer,
                        peer_name="Piku's steps on the host", at_most=COLD_GOAL_S,
                        note=f"median of {args.cold_reps}; the issue's Piku figure {PIKU_COLD_S} s"))
        print()
        print(f"one-line change, {args.reps} pushes, medians:")
        names = [n for n in phases[0] if all(n in p for p in phases)]
        medians = {n: median([p[n] for p in phases]) for n in names}
        inside = sum(medians.values())
        print(f"  push -> new response served: {median(served):.2f}s  (each: "
              + ", ".join(f"{s:.2f}" for s in served) + ")")
        print(f"  push returned after:         {median(pushes):.2f}s (includes retiring the old container)")
        print("  split: ssh+git " + f"{max(0.0, median(pushes) - inside):.2f}s, "
              + ", ".join(f"{n} {v:.2f}s" for n, v in medians.items()))
        print(f"  goal <= {GOAL_S:.1f}s: " + ("ok" if median(served) <= GOAL_S else "MISSED"))
        report(measured("deploy: one-line change push -> served", median(served), "s", at_most=GOAL_S,
                        note=f"median of {args.reps}; the push returned after {median(pushes):.2f} s"))
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
