#!/bin/bash
# XAPI tests: the simulator needs nothing; the dom0 binder tests (root) need network namespaces
# with bridge and veth links, and ping. The bundled dist/ipvisor-dom0.cjs is built by the test.
set -euo pipefail
for m in bridge veth; do modprobe "$m" 2>/dev/null || true; done
