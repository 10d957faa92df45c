#!/usr/bin/env bash
# CI: build the Debian package from this checkout, install it with apt-get, smoke-test the installed
# /usr/bin/ipvisor, purge it (test/package/deb-smoke.ts). lintian's findings land in dist/lintian.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-deb.sh
IPVISOR_TEST_NO_SKIP=1 node --import tsx --test test/package/deb-smoke.ts
