#!/bin/bash
# Builds a tiny direct-boot Linux guest for the real-libvirtd tests from Debian packages only:
# the Debian cloud kernel plus a busybox initramfs. The guest loads virtio_net, runs udhcpc on
# every NIC (printing "GUEST: <if> bound <ip>/<mask>" on ttyS0), prints GUEST-READY and serves a
# root shell on TCP 2323 so tests can run commands inside it:
#   echo 'ip -4 addr' | ip netns exec <ns> busybox nc <guest-ip> 2323
# Output: $OUT/vmlinuz, $OUT/initrd.gz, $OUT/busybox. Skips the build when they already exist.
set -euo pipefail
OUT=${1:-${OUT:-/var/cache/ipvisor-test/guest}}
if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.gz" ] && [ -s "$OUT/busybox" ]; then exit 0; fi
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT; chmod 755 "$W"; cd "$W"   # 755: apt-get download runs as _apt
kernel_pkg() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'; }
KPKG=$(kernel_pkg)
if [ -z "$KPKG" ]; then apt-get update -qq; KPKG=$(kernel_pkg); fi   # fresh machine: no package lists yet
[ -n "$KPKG" ] || { echo "build-guest: cannot find the Debian cloud kernel package" >&2; exit 1; }
apt-get download "$KPKG" busybox-static >/dev/null
dpkg-deb -x "$KPKG"_*.deb kx; dpkg-deb -x busybox-static_*.deb bb
BB=$W/bb/bin/busybox
mkdir -p root/{bin,proc,sys,dev,lib/mods,tmp}; cp "$BB" root/bin/busybox
for m in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  f=$(find kx/lib/modules -name "$m.ko" -o -name "$m.ko.xz" | head -1)
  [ -n "$f" ] && cp "$f" root/lib/mods/
done
cat > root/init <<'EOG'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for pass in 1 2 3; do for m in /lib/mods/*.ko; do grep -q "^$(basename $m .ko) " /proc/modules || insmod $m 2>/dev/null; done; done
ip link set lo up
for n in $(ls /sys/class/net | grep -v '^lo$'); do
  ip link set $n up
  udhcpc -i $n -s /udhcpc.sh -t 20 -T 1 -n -q || echo "GUEST: dhcp failed on $n"
done
ip -4 addr; ip route
(while true; do nc -l -p 2323 -e /bin/sh; done) &
echo GUEST-READY
while true; do sleep 3600; done
EOG
cat > root/udhcpc.sh <<'EOG'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev $interface
    ip addr add $ip/${mask:-24} dev $interface
    [ -n "$router" ] && ip route add default via ${router%% *} dev $interface
    echo "GUEST: $interface bound $ip/$mask router=$router" ;;
esac
exit 0
EOG
chmod 755 root/init root/udhcpc.sh
mkdir -p "$OUT"
(cd root && find . | "$BB" cpio -o -H newc 2>/dev/null | gzip -1) > "$OUT/initrd.gz.tmp"
cp kx/boot/vmlinuz-* "$OUT/vmlinuz.tmp"; cp "$BB" "$OUT/busybox.tmp"
chmod 0644 "$OUT/initrd.gz.tmp" "$OUT/vmlinuz.tmp"; chmod 0755 "$OUT/busybox.tmp" "$OUT"
mv "$OUT/initrd.gz.tmp" "$OUT/initrd.gz"; mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"; mv "$OUT/busybox.tmp" "$OUT/busybox"
