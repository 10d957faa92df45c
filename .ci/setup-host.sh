#!/bin/bash
# Host-enforcement tests (test/netns) need root, nftables, iproute2 and the bridge/veth modules.
set -euo pipefail
for m in bridge veth nf_tables nft_chain_nat; do modprobe "$m" 2>/dev/null || true; done
mkdir -p /run/ipvisor
