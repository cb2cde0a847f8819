#!/usr/bin/env bash
# Builds what the real-VM test boots: a Debian kernel (from the linux-image package, downloaded,
# not installed) and a small initramfs with busybox and the virtio-net modules. The guest's /init
# reads its address and the peer to ping from the kernel command line:
#   tapestry.ip=10.0.0.1/24 tapestry.ping=10.0.0.2
# prints what ping printed and "TAPESTRY-PING-RESULT <status>" on the serial console, then idles.
#
# Usage: scripts/vm/build-image.sh [DIR]   (default .build/vm; prints DIR's kernel and initrd)
# Needs: apt-get (Debian), busybox-static, cpio or busybox's, gzip.
set -euo pipefail
dir=${1:-.build/vm}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [[ -s $dir/vmlinuz && -s $dir/initrd.gz ]]; then
    echo "$dir/vmlinuz $dir/initrd.gz"
    exit 0
fi
busybox=$(command -v busybox || true)
if [[ -z $busybox ]] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    [[ -x /bin/busybox ]] && busybox=/bin/busybox
fi
[[ -x $busybox ]] || { echo "build-image: busybox-static is not installed (apt-get install busybox-static)" >&2; exit 1; }

work=$(mktemp -d "$dir/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
# linux-image-amd64 is a metapackage; its first dependency is the versioned kernel package.
package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[[ -n $package ]] || { echo "build-image: cannot find the kernel package behind linux-image-amd64 (apt-get update?)" >&2; exit 1; }
(cd "$work" && apt-get download "$package" >/dev/null 2>&1)
dpkg-deb -x "$work"/"$package"_*.deb "$work/root"
modules=$(echo "$work"/root/lib/modules/*)

mkdir -p "$work/initrd"/{bin,mod,proc,sys,dev}
cp "$busybox" "$work/initrd/bin/busybox"
# Load order: each module after the ones it needs.
for module in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net; do
    found=$(find "$modules" -name "$module.ko" -o -name "$module.ko.xz" -o -name "$module.ko.zst" | head -1)
    [[ -n $found ]] || { echo "build-image: module $module not in $package" >&2; exit 1; }
    case $found in
        *.xz) xz -dc "$found" > "$work/initrd/mod/$module.ko" ;;
        *.zst) zstd -qdc "$found" > "$work/initrd/mod/$module.ko" ;;
        *) cp "$found" "$work/initrd/mod/$module.ko" ;;
    esac
done
cat > "$work/initrd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for module in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net; do
    insmod /mod/$module.ko
done
for arg in $(cat /proc/cmdline); do
    case $arg in
        tapestry.ip=*) ip=${arg#tapestry.ip=} ;;
        tapestry.ping=*) peer=${arg#tapestry.ping=} ;;
    esac
done
ip link set lo up
ip link set eth0 up
ip addr add "$ip" dev eth0
echo "TAPESTRY-VM-UP $ip $(cat /sys/class/net/eth0/address)"
if [ -n "$peer" ]; then
    # The peer may still be booting: keep asking for up to 90 seconds, stop at 3 replies.
    ping -c 3 -w 90 "$peer"
    echo "TAPESTRY-PING-RESULT $?"
fi
# Stay up (answering the peer's pings) until the test stops this VM.
while true; do sleep 3600; done
INIT
chmod +x "$work/initrd/init"
(cd "$work/initrd" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1 > "$work/initrd.gz")
cp "$work"/root/boot/vmlinuz-* "$work/vmlinuz"
mv "$work/vmlinuz" "$dir/vmlinuz"
mv "$work/initrd.gz" "$dir/initrd.gz"
echo "$dir/vmlinuz $dir/initrd.gz"
