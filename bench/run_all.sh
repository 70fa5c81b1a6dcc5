#!/usr/bin/env bash
# Run every side-by-side benchmark (paas vs skopeo/umoci/crun/runc/podman) with the project's virtualenv.
# PAAS_VENV picks the virtualenv (default ./.venv); extra arguments go to each script (e.g. --reps 5);
# BENCH_TMPDIR picks where their temp data goes (e.g. /dev/shm to take the disk out of the comparison).
# Needs root (umoci unpack, skopeo in a private mount namespace) plus skopeo, umoci and docker-registry;
# container_start also needs crun, runc and cc, and compares with podman when it is installed (apt-get install podman).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PAAS_VENV:-$PWD/.venv}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  echo "no python at $PY: set PAAS_VENV to the virtualenv (bash install.sh makes ./.venv)" >&2
  exit 1
fi
status=0
for script in registry_transfer layer_extract container_start build buildpacks; do
  echo "== bench/$script.py $*"
  "$PY" "bench/$script.py" "$@" || status=1
done
exit "$status"
