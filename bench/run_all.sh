#!/usr/bin/env bash
# Run every side-by-side benchmark (paas vs skopeo/umoci/crun/runc/podman/buildah/Piku's steps/nginx reloads/
# docker service scale) with the project's virtualenv and print one table of their figures; JSON and markdown go to
# bench/results/
# (bench/run_all.py says what is written where).
#   bench/run_all.sh [--quick] [--only NAME,NAME] [--skip NAME,NAME] [--timeout MINUTES]
# --quick: few repetitions and small inputs, to check the harness (results in bench/results/quick/).
# PAAS_VENV picks the virtualenv (default ./.venv); BENCH_TMPDIR picks where the scripts' temp data goes (e.g.
# /dev/shm to take the disk out of the comparison).
# Needs root. Tools: skopeo, umoci, docker-registry, buildah, crun, runc, cc, wrk, nginx, git, ssh, dockerd + docker
# (Debian's docker.io: bench/swarm.py starts its own dockerd in a network namespace); podman,
# chromium and pebble add rows when installed. A script whose tool is missing gives a row saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PAAS_VENV:-$PWD/.venv}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  echo "no python at $PY: set PAAS_VENV to the virtualenv (bash install.sh makes ./.venv)" >&2
  exit 1
fi
exec "$PY" bench/run_all.py "$@"
