#!/usr/bin/env bash
# README command 1: install paas on a fresh Debian 12 machine (as root) and bring it up.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install-deps.sh
VENV="${PAAS_VENV:-$PWD/.venv}"
ln -sf "$VENV/bin/paas" /usr/local/bin/paas
ln -sf "$VENV/bin/paasd" /usr/local/bin/paasd
paas init
paasd --check
# A first image in the store: busybox-static in a scratch image, made by our own layer writer.
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/bin"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in sh hostname ls cat; do ln -s busybox "$rootfs/bin/$applet"; done
paas images:create demo/busybox:latest "$rootfs" --cmd /bin/sh
paas images
# ...a first isolated container from it, on the bridge network
paas container:run --rm demo/busybox:latest sh -c 'echo "hello from a paas container: $(hostname)"'
# ...and an image built from a Dockerfile by our layered builder (RUN steps in containers, cached layers)
paas build -t demo/hello:latest demo/hello
paas container:run --rm demo/hello:latest
