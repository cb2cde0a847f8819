#!/usr/bin/env bash
# Builds a release `tapestry` with the Swift standard library and Foundation linked in statically
# (it then runs on a machine without Swift: it needs only libc, libstdc++ and libpcap) and
# installs it with its man pages, shell completions, systemd unit, docs, schema and examples.
#
#   scripts/install.sh [PREFIX]          # default /usr/local; as root (sudo) for a system prefix
#   DESTDIR=/tmp/stage scripts/install.sh /usr   # stage the files (scripts/build-deb.sh does)
#   TAPESTRY_BINARY=path scripts/install.sh ...  # install an already built static binary
#
# Layout under PREFIX: bin/tapestry; share/man/man1/tapestry*.1; bash, zsh and fish
# completions; lib/systemd/system/tapestry@.service (systemd reads /usr/local/lib/systemd/system
# and /usr/lib/systemd/system); share/doc/tapestry/ (README.md, docs/*.md); share/tapestry/
# (topologies/, examples/, topology.schema.json), where `tapestry demo` finds its topology.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
case "$prefix" in /*) ;; *) echo "install.sh: PREFIX must be an absolute path, not '$prefix'" >&2; exit 64 ;; esac
prefix=${prefix%/}
dest=${DESTDIR:-}
root="$dest$prefix"

if [ -n "${TAPESTRY_BINARY:-}" ]; then
  binary=$TAPESTRY_BINARY
else
  echo "building tapestry (release, static Swift runtime) ..."
  swift build -c release --product tapestry --static-swift-stdlib
  binary=.build/release/tapestry
fi
if ldd "$binary" | grep -q 'libswift\|libFoundation'; then
  echo "install.sh: $binary links the Swift runtime dynamically; build it with --static-swift-stdlib" >&2
  exit 1
fi
swift build -c release --product generate-manual --static-swift-stdlib > /dev/null
generate_manual=.build/release/generate-manual

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/man"
# The manual's date is the commit's, so two builds of one commit install the same pages.
date=$(git log -1 --format=%cs 2>/dev/null || date -u +%F)
"$generate_manual" "$binary" --multi-page --date "$date" --output-directory "$work/man" > /dev/null

# The unit names the binary and the docs where this prefix puts them.
sed -e "s|/usr/local/bin/tapestry|$prefix/bin/tapestry|g" \
  -e "s|file:///usr/local/share/doc/tapestry/|file://$prefix/share/doc/tapestry/|g" \
  deploy/tapestry@.service > "$work/tapestry@.service"

zsh_dir=share/zsh/site-functions
if [ "$prefix" = /usr ]; then zsh_dir=share/zsh/vendor-completions; fi  # Debian's place for packages

install -d "$root/bin" "$root/share/man/man1" "$root/share/bash-completion/completions" "$root/$zsh_dir" \
  "$root/share/fish/vendor_completions.d" "$root/lib/systemd/system" "$root/share/doc/tapestry" \
  "$root/share/tapestry"
install -m 0755 -s "$binary" "$root/bin/tapestry"
install -m 0644 "$work"/man/*.1 "$root/share/man/man1/"
"$binary" completions bash > "$work/tapestry.bash"
"$binary" completions zsh > "$work/_tapestry"
"$binary" completions fish > "$work/tapestry.fish"
install -m 0644 "$work/tapestry.bash" "$root/share/bash-completion/completions/tapestry"
install -m 0644 "$work/_tapestry" "$root/$zsh_dir/_tapestry"
install -m 0644 "$work/tapestry.fish" "$root/share/fish/vendor_completions.d/tapestry.fish"
install -m 0644 "$work/tapestry@.service" "$root/lib/systemd/system/tapestry@.service"
install -m 0644 README.md docs/*.md "$root/share/doc/tapestry/"
install -m 0644 docs/topology.schema.json "$root/share/tapestry/topology.schema.json"
# Topologies and examples keep their relative places: the test files name ../../topologies/.
rm -rf "$root/share/tapestry/topologies" "$root/share/tapestry/examples"
cp -R topologies examples "$root/share/tapestry/"
chmod -R u=rwX,go=rX "$root/share/tapestry"

echo "installed tapestry $("$binary" --version) under $root"
if [ -z "$dest" ]; then
  echo "  try: $prefix/bin/tapestry check $prefix/share/tapestry/topologies/office.yaml; man tapestry"
  echo "  as a service: put a topology in /etc/tapestry/NAME.yaml, then systemctl daemon-reload; systemctl enable --now tapestry@NAME"
fi
