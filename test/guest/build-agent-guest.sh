#!/bin/bash
# Adds the real QEMU guest agent to the tiny direct-boot guest of the libvirt tests
# (test/support/libvirt/build-guest.sh: Debian cloud kernel + busybox initramfs). Output:
# $OUT/agent-initrd.img = that initrd + a second cpio with qemu-ga, iproute2 and dash (the host's Debian
# binaries with their libraries), virtio_console.ko and /agent-init. Boot it with rdinit=/agent-init:
# it gives eth0 198.51.100.10/24 and runs qemu-ga on the org.qemu.guest_agent.0 virtio port.
# usage: build-agent-guest.sh GUEST_DIR OUT
set -euo pipefail
GUEST=$1; OUT=$2
if [ -s "$OUT/agent-initrd.img" ]; then exit 0; fi
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT; cd "$W"
KPKG=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
apt-get download "$KPKG" >/dev/null
dpkg-deb -x "$KPKG"_*.deb kx
mkdir -p root/sbin root/lib/mods root/tmp
# virtio_console for the agent port; bonding and 8021q with what they may depend on, so pushes
# can create bonds and VLANs inside the guest (init loads them in several passes, in any order)
for m in virtio_console bonding tls 8021q garp mrp stp llc; do
  f=$(find kx/lib/modules -name "$m.ko" -o -name "$m.ko.xz" | head -1)
  if [ -z "$f" ]; then echo "no $m module in $KPKG" >&2; exit 1; fi
  cp "$f" root/lib/mods/
done
cp /usr/sbin/qemu-ga root/sbin/qemu-ga
cp /bin/ip root/sbin/ip
# dash as /bin/sh: busybox's shell runs its own (smaller) ip applet in preference to /sbin/ip,
# while a real guest's scripts get iproute2
mkdir -p root/bin; cp /bin/dash root/bin/sh
for lib in $(ldd /usr/sbin/qemu-ga /bin/ip /bin/dash | awk '/=>/ {print $3} /ld-linux/ {print $1}' | grep '^/' | sort -u); do
  mkdir -p "root$(dirname "$lib")"; cp -L "$lib" "root$lib"
done
mkdir -p root/lib64; cp -L /lib64/ld-linux-x86-64.so.2 root/lib64/
cat > root/agent-init <<'EOG'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for pass in 1 2 3 4 5; do for m in /lib/mods/*.ko; do grep -q "^$(basename $m .ko) " /proc/modules || insmod $m 2>/dev/null; done; done
ip link set lo up
for n in $(ls /sys/class/net | grep -v '^lo$'); do ip link set $n up; done
ip addr add 198.51.100.10/24 dev eth0
ip addr add 198.51.101.10/24 dev eth1
ip route add default via 198.51.100.1 dev eth0
mkdir -p /etc/network/interfaces.d /run /tmp/qga
PORT=
for i in $(seq 1 100); do
  for p in /sys/class/virtio-ports/*; do
    [ -e "$p/name" ] && [ "$(cat $p/name)" = org.qemu.guest_agent.0 ] && PORT=/dev/$(basename $p)
  done
  [ -n "$PORT" ] && [ -e "$PORT" ] && break
  sleep 0.1
done
echo "GUEST: agent port $PORT"
qemu-ga -m virtio-serial -p "$PORT" -t /tmp/qga &
echo GUEST-READY
while true; do sleep 3600; done
EOG
chmod 755 root/agent-init
mkdir -p "$OUT"
(cd root && find . | "$GUEST/busybox" cpio -o -H newc 2>/dev/null | gzip -1) > extra.cpio.gz
cat "$GUEST/initrd.gz" extra.cpio.gz > "$OUT/agent-initrd.img.tmp"
chmod 0644 "$OUT/agent-initrd.img.tmp"; mv "$OUT/agent-initrd.img.tmp" "$OUT/agent-initrd.img"
