#!/usr/bin/env bash
# The install as a user gets it (CI runs this as root): builds the Debian package
# (scripts/build-deb.sh), installs it with dpkg, runs the installed binary with the Swift
# toolchain's library directory hidden from it (a private mount namespace with an empty
# directory mounted over it), checks what the package put in place, then removes the package and
# checks that nothing of it is left. Prints "skipped" with the reason and passes when not root
# or when a `tapestry` package is already installed (it is not ours to remove).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "test-install: skipped: needs root (dpkg -i, and a mount namespace to hide the toolchain)"
  exit 0
fi
if dpkg-query -W -f='${Status}' tapestry 2>/dev/null | grep -q "install ok installed"; then
  echo "test-install: skipped: a tapestry package is already installed on this machine"
  exit 0
fi
package=$(scripts/build-deb.sh | tail -1)
echo "test-install: built $package ($(du -h "$package" | cut -f1))"
swift_lib=$(dirname "$(command -v swift)")/../lib/swift/linux
swift_lib=$(cd "$swift_lib" && pwd)
[ -e "$swift_lib/libswiftCore.so" ] || { echo "test-install: no libswiftCore.so in $swift_lib" >&2; exit 1; }
fail() { echo "test-install: FAILED: $*" >&2; dpkg -r tapestry > /dev/null 2>&1 || true; exit 1; }

dpkg -i "$package" > /dev/null || fail "dpkg -i"
# Everything below runs as the package installed it, away from the checkout and without the
# toolchain's libraries (an empty tmpfs mounted over their directory, in a namespace of its own).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/run.sh" <<SCRIPT
set -euo pipefail
mount -t tmpfs none "$swift_lib"
[ ! -e "$swift_lib/libswiftCore.so" ]
cd "$work"
tapestry --version
tapestry version
for file in /usr/share/tapestry/topologies/*.yaml /usr/share/tapestry/examples/office/topology.yaml; do
  tapestry check "\$file" > /dev/null
done
in=/usr/share/tapestry/examples/office/in
tapestry replay /usr/share/tapestry/examples/office/topology.yaml --in pc1=\$in/pc1.pcap --in pc2=\$in/pc2.pcap \
  --in db1=\$in/db1.pcap --in uplink=\$in/uplink.pcap --out out \
  --expect pc1=/usr/share/tapestry/examples/office/expect/pc1.pcap --expect uplink=/usr/share/tapestry/examples/office/expect/uplink.pcap
tapestry test /usr/share/tapestry/examples/tests | tail -1
tapestry schema > schema.json
cmp schema.json /usr/share/tapestry/topology.schema.json
tapestry graph /usr/share/tapestry/topologies/demo.yaml | head -1
# The demo finds the topology installed with it (no topologies/ here).
tapestry demo
SCRIPT
unshare --mount --propagation private bash "$work/run.sh" > "$work/out.txt" 2>&1 || { cat "$work/out.txt"; fail "the installed binary, toolchain hidden"; }
cat "$work/out.txt"
grep -q "^0\.1\.0 (commit " "$work/out.txt" || fail "--version"
grep -q "passed, 0 failed" "$work/out.txt" || fail "tapestry test on the installed examples"
# What else the package put in place.
[ "$(readlink -f "$(command -v tapestry)")" = /usr/bin/tapestry ] || fail "tapestry is not /usr/bin/tapestry on PATH"
man -w tapestry > /dev/null && man -w tapestry.ctl > /dev/null || fail "man pages"
grep -q "_tapestry" /usr/share/bash-completion/completions/tapestry || fail "bash completion"
[ -s /usr/share/zsh/vendor-completions/_tapestry ] && [ -s /usr/share/fish/vendor_completions.d/tapestry.fish ] || fail "zsh/fish completions"
grep -q "^ExecStart=/usr/bin/tapestry run /etc/tapestry/%i.yaml$" /usr/lib/systemd/system/tapestry@.service || fail "the unit's ExecStart"
grep -q "^Documentation=file:///usr/share/doc/tapestry/operations.md" /usr/lib/systemd/system/tapestry@.service || fail "the unit's Documentation"
[ -f /usr/share/doc/tapestry/operations.md ] || fail "the docs"
if command -v systemd-analyze > /dev/null; then
  cp /usr/lib/systemd/system/tapestry@.service "$work/tapestry@lab.service"
  verify=$(systemd-analyze verify "$work/tapestry@lab.service" 2>&1) || fail "systemd-analyze verify: $verify"
  [ -z "$verify" ] || fail "systemd-analyze verify: $verify"
fi
dpkg -r tapestry > /dev/null || fail "dpkg -r"
left=$(ls -d /usr/bin/tapestry /usr/share/tapestry /usr/share/doc/tapestry /usr/lib/systemd/system/tapestry@.service 2>/dev/null || true)
[ -z "$left" ] || { echo "test-install: FAILED: left after dpkg -r: $left" >&2; exit 1; }
echo "test-install: passed (installed, ran without the toolchain's libraries, removed)"
