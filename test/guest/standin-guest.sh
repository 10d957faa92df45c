#!/bin/bash
# A stand-in guest for the QEMU guest agent tests. Run as
#   ip netns exec NS unshare --mount --propagation private bash standin-guest.sh SOCKET STATEDIR [qemu-ga args...]
# so the agent sees only the namespace's network, and every config directory it could write
# (and /run) is a private tmpfs: nothing it writes reaches the test machine's /etc.
set -e
SOCK=$1; STATE=$2; shift 2
for d in /etc/network /etc/netplan /etc/NetworkManager/system-connections /etc/systemd/network /run; do
  if [ -d "$d" ]; then mount -t tmpfs -o mode=0755 tmpfs "$d"; fi
done
mkdir -p /etc/network/interfaces.d "$STATE"
# the guest's own resolver file (a push rewrites it in place): a copy bind-mounted over the host's
if [ -f /etc/resolv.conf ] && [ ! -L /etc/resolv.conf ]; then
  printf '# stand-in guest\nnameserver 198.51.100.53\n' > "$STATE/resolv.conf"
  mount --bind "$STATE/resolv.conf" /etc/resolv.conf
fi
printf 'source /etc/network/interfaces.d/*\n' > /etc/network/interfaces
exec qemu-ga -m unix-listen -p "$SOCK" -t "$STATE" "$@"
