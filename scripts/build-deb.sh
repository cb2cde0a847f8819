#!/usr/bin/env bash
# Builds a Debian package of what scripts/install.sh installs, with PREFIX /usr:
#   scripts/build-deb.sh [OUTDIR]      # default .build/deb; prints the package's path last
# Then: dpkg -i OUTDIR/tapestry_VERSION_ARCH.deb (apt-get install ./that.deb also pulls in
# libpcap0.8), and dpkg -r tapestry to remove it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.build/deb}
stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
DESTDIR="$stage" scripts/install.sh /usr > /dev/null
version=$("$stage/usr/bin/tapestry" --version | cut -d' ' -f1)
commit=$("$stage/usr/bin/tapestry" --version | sed -n 's/.*(commit \(.*\))/\1/p')
arch=$(dpkg --print-architecture)
size=$(du -sk "$stage/usr" | cut -f1)
mkdir -p "$stage/DEBIAN" "$out"
# Depends: what ldd shows besides libc (the Swift runtime is linked in); iproute2 for netns: ports.
cat > "$stage/DEBIAN/control" <<CONTROL
Package: tapestry
Version: $version
Architecture: $arch
Maintainer: Tapestry developers <tapestry@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), libstdc++6, libgcc-s1, libpcap0.8 (>= 1.10)
Recommends: iproute2
Suggests: graphviz, python3-jsonschema
Section: net
Priority: optional
Homepage: https://tapestry.invalid/
Description: userspace virtual switch and stateful firewall
 Tapestry connects VMs and containers to virtual networks (TAP devices, QEMU
 sockets, host interfaces, VXLAN tunnels) through one pipeline: VLANs, a
 stateful firewall, load balancers, L2 learning. The same YAML topology runs
 live, offline over pcap captures, or under declarative packet tests.
 Built from commit $commit.
CONTROL
package="$out/tapestry_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$package.tmp" > /dev/null
mv "$package.tmp" "$package"
echo "$package"
