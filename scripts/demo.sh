#!/usr/bin/env bash
# The Quickstart's main job: install what is needed, build, and run the live demonstration
# (`tapestry demo` on topologies/demo.yaml) as root, through sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
swift build --product tapestry
if [ "$(id -u)" -eq 0 ]; then
  .build/debug/tapestry demo topologies/demo.yaml
else
  sudo .build/debug/tapestry demo topologies/demo.yaml
fi
