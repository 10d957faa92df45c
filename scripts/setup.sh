#!/usr/bin/env bash
# Sets ipvisor up on a Debian 12 machine (as root): the host tools it drives, its npm dependencies
# (better-sqlite3 compiles from source when no prebuilt binary is reachable: about 90 s), and the
# bundled CLI in dist/. With --test, also everything the test suite starts for real (libvirtd, qemu-ga,
# validators, PostgreSQL, chromium ...: the lists in .ci/apt-*.txt) and their set-up (.ci/setup-*.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup: ipvisor needs Node.js >= 20 (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

packages=(nftables iproute2 iptables iputils-ping python3 make g++)
if [ "$with_tests" = 1 ]; then
  for f in .ci/apt-*.txt; do
    [ -e "$f" ] || continue
    while read -r p; do
      p=${p%%#*}; p=${p//[[:space:]]/}
      [ -n "$p" ] && packages+=("$p")
    done < "$f"
  done
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  # Services must not start from postinst scripts here: tests start their own daemons.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
# The store: enforcement (serve, plan, apply, hooks) never creates one, so a fresh machine gets it
# here (IPVISOR_DB or the default path; an existing store is left as it is).
node bin/ipvisor init

if [ "$with_tests" = 1 ]; then
  for s in .ci/setup-*.sh; do
    [ -e "$s" ] || continue
    echo "setup: $s"
    bash "$s"
  done
fi
echo "setup: done"
