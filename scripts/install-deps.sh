#!/usr/bin/env bash
# Install what paas and its tests need on Debian 12 (idempotent): apt packages and the virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc git
  crun runc umoci skopeo buildah docker-registry busybox-static zstd mmdebstrap
  apache2-utils iproute2 nftables iptables tini util-linux
  nginx openssh-client curl
  pebble  # ACME test server (and pebble-challtestsrv, its DNS) for the certificate tests
  wrk  # bench/routing.py
  chromium  # the dashboard's browser tests (Playwright drives it; no browser download)
  docker.io  # dockerd for the swarm tests, run only in namespaces they create (policy-rc.d keeps its service off)
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "-----> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # packages must not start their own services (Debian's nginx would take port 80 with its default
  # site): paasd runs nginx with its own config tree
  policy=/usr/sbin/policy-rc.d
  [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; trap 'rm -f "$policy"' EXIT; }
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # nor start at boot: docker.io enables docker.service and docker.socket, and a dockerd in the host's network
  # namespace would add docker0 and set iptables' FORWARD policy to DROP (only a docker.io this run installed)
  if [[ " ${missing[*]} " == *" docker.io "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --quiet docker.service docker.socket
  fi
fi

VENV="${PAAS_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "-----> creating virtualenv $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.paas-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "-----> installing paas and test dependencies into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[test]'
  touch "$stamp"
fi

# the container supervisor (C) is compiled now, not on the first container start (a no-op when up to date)
"$VENV/bin/python" -m paas.runtime.supervisor
