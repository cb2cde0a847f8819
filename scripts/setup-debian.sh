#!/usr/bin/env bash
# Installs the system packages Tapestry builds and tests with on Debian 12 (Swift 6 is assumed
# installed). Idempotent; uses sudo when not run as root.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# qemu-system-x86 and busybox-static: the real-VM test (scripts/vm/test-vms.sh) and the QEMU socket-port tests;
# busybox also serves the demo's web pages. python3-jsonschema and python3-yaml: the schema test.
packages=(libpcap-dev tcpdump tshark iproute2 iputils-ping iperf3 ethtool curl python3 python3-jsonschema python3-yaml qemu-system-x86 busybox-static graphviz)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi
