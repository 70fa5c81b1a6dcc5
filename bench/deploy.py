"""`git push` of a one-line change of the python sample -> the new response served through nginx.

A whole platform on a temp data root (tests.platformkit.Platform: a real paasd with its SSH server and nginx,
its own bridge, subnet and ports), driven by the real OpenSSH and git clients:

  cold:   the first push of tests/apps/python-pip (Flask + gunicorn): stack from the machine cache (or built),
          `pip install` of the dependencies, container start, health check, route;
  change: N pushes, each changing one line of app.py; timed from `git push` until a GET through nginx (Host
          header, polled every 10 ms from another thread) returns the new text. The deploy prints its own
          phase times (`took receive ..., build ..., start ..., health ..., switch ..., retire ...`); the rest
          of the push (SSH connection, pack transfer, hook start-up) is reported as "ssh+git".

Peers: Dokku and Piku are not installable here (no GitHub, no Docker Hub); the goal (<= 2 s) and Piku's figure
from the issue (~4.2 s for the same change, no image built, no container started) are printed for scale.

    python bench/deploy.py [--reps 5]
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import threading
import time
from pathlib import Path

from _common import REPO, log, median, workspace

from tests.platformkit import Platform

GOAL_S = 2.0
PIKU_S = 4.2
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    with workspace("deploy") as (base, stack):
        platform = Platform(base)
        stack.callback(platform.stop)
        platform.init()
        platform.start()
        app = f"bench-{secrets.token_hex(3)}"
        repo = platform.repo_from(SAMPLE, app)
        log("cold push (first deploy: stack, pip install, start, route)")
        cold, cold_push, cold_phases = push_and_time(platform, repo, app, "hello from python-pip\n")
        log(f"cold: served after {cold:.2f}s (push returned after {cold_push:.2f}s): {cold_phases}")

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
        print(f"python sample (Flask + gunicorn), {args.reps} one-line changes, medians:")
        names = [n for n in phases[0] if all(n in p for p in phases)]
        medians = {n: median([p[n] for p in phases]) for n in names}
        inside = sum(medians.values())
        print(f"  push -> new response served: {median(served):.2f}s  (each: "
              + ", ".join(f"{s:.2f}" for s in served) + ")")
        print(f"  push returned after:         {median(pushes):.2f}s (includes retiring the old container)")
        print("  split: ssh+git " + f"{max(0.0, median(pushes) - inside):.2f}s, "
              + ", ".join(f"{n} {v:.2f}s" for n, v in medians.items()))
        verdict = "ok" if median(served) <= GOAL_S else "MISSED"
        print(f"  goal <= {GOAL_S:.1f}s: {verdict}; for scale, Piku ~{PIKU_S}s for the same change "
              f"(ratio {median(served) / PIKU_S:.2f}x, not measured here)")
        print(f"  cold first deploy: served after {cold:.2f}s ({cold_phases})")
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
