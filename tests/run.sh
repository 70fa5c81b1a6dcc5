#!/usr/bin/env bash
# README command 2: install test prerequisites (idempotent), lint, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
VENV="${PAAS_VENV:-$PWD/.venv}"
"$VENV/bin/ruff" check paas tests bench
set +e
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$code"
