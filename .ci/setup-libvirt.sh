#!/bin/bash
# CI set-up for the real-libvirtd tests (test/libvirt): build the tiny TCG guest from Debian
# packages into a cache dir and make /dev/kvm usable by libvirt-qemu (no udev here), which saves
# libvirt a QEMU capabilities re-probe on every daemon and domain start. The packages themselves
# come from .ci/apt-libvirt.txt. The test daemon runs inside its own network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v libvirtd >/dev/null; then
  bash test/support/libvirt/build-guest.sh /var/cache/ipvisor-test/guest
  if [ -c /dev/kvm ] && getent group kvm >/dev/null; then chgrp kvm /dev/kvm; chmod 0660 /dev/kvm; fi
fi
