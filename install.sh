#!/usr/bin/env bash
# README command 1: install paas on a fresh Debian 12 machine (as root), start paasd (SSH + nginx) and deploy the
# bundled demo app with a real `git push` over SSH, ending with its URL and a curl of it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install-deps.sh
VENV="${PAAS_VENV:-$PWD/.venv}"
ln -sf "$VENV/bin/paas" /usr/local/bin/paas
ln -sf "$VENV/bin/paasd" /usr/local/bin/paasd
export PAAS_ROOT="${PAAS_ROOT:-/var/lib/paas}"
paas init
paasd --check

setting() { "$VENV/bin/python" -c "from paas.config import load_config, paths_from_env as p; print(load_config(p()).get('$1'))"; }
ssh_port=$(setting ssh.port)
http_port=$(setting proxy.http_port)

# paasd in the background (on real servers: scripts/paasd.service under systemd instead)
if ! (exec 3<>"/dev/tcp/127.0.0.1/$ssh_port") 2>/dev/null; then
  echo "-----> starting paasd (log: $PAAS_ROOT/logs/paasd.log)"
  setsid paasd >>"$PAAS_ROOT/logs/paasd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    (exec 3<>"/dev/tcp/127.0.0.1/$ssh_port") 2>/dev/null && break
    sleep 0.5
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$ssh_port") 2>/dev/null || { tail -20 "$PAAS_ROOT/logs/paasd.log"; exit 1; }
fi

# the stack the demo app builds on (Debian's python3, made here with mmdebstrap; cached afterwards)
paas stacks:build python

# a key for pushing: the user's own, else one made for the demo
key="$HOME/.ssh/id_ed25519"
if [ ! -f "$key" ]; then
  key="$HOME/.ssh/paas_demo_ed25519"
  [ -f "$key" ] || { mkdir -p "$HOME/.ssh"; ssh-keygen -t ed25519 -N "" -q -C "paas demo" -f "$key"; }
fi
fingerprint=$(ssh-keygen -lf "$key.pub" | awk '{print $2}')
keys=$(paas ssh-keys:list --json)
if ! grep -qF "\"$fingerprint\"" <<<"$keys"; then
  name="$(hostname)-$(id -un)"
  # the name may hold an earlier key of this user (a re-install after the key changed): keep both
  grep -qF "\"name\": \"$name\"" <<<"$keys" && name="$name-$(printf %s "$fingerprint" | sha256sum | cut -c1-8)"
  paas ssh-keys:add "$name" "$key.pub"
fi

# the dashboard (served by paasd with the API): the admin's password, made and printed once
api_port=$(setting api.port)
if [ "$api_port" != 0 ] && password=$(paas users:passwd admin --generate --keep-existing) && [ -n "$password" ]; then
  dashboard="http://paas.$(setting domain)"
  [ "$http_port" = 80 ] || dashboard="$dashboard:$http_port"
  echo "-----> dashboard: $dashboard/ (also http://$(setting api.listen):$api_port/) user admin, password: $password"
  echo "       (shown once; change it with: paas users:passwd admin)"
fi

# the demo app, pushed like any app: git over SSH to paasd, which builds, starts and routes it
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r demo/python-app/. "$work/"
git -C "$work" init -q -b main
git -C "$work" add -A
git -C "$work" -c user.name=paas -c user.email=demo@paas.invalid commit -q -m "demo app"
# paasd's host key is right here: trust exactly it (a data root made anew has a new key; no trust on first use)
known="$HOME/.ssh/known_hosts_paas"
printf '[127.0.0.1]:%s %s\n' "$ssh_port" "$(cut -d' ' -f1,2 "$PAAS_ROOT/ssh/ssh_host_ed25519_key.pub")" >"$known"
export GIT_SSH_COMMAND="ssh -i $key -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$known"
git -C "$work" push --force "ssh://paas@127.0.0.1:$ssh_port/demo" main

url="http://demo.paas.localhost"
[ "$http_port" = 80 ] || url="$url:$http_port"
echo "-----> demo deployed: $url"
curl -fsS "$url/"
